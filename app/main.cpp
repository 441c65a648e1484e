// prefixkv-studio: the desktop application. Opens on the embedded demo model so it works on a
// fresh machine; a real llava-hf folder can be given on the command line or chosen in the window.
#include <QApplication>
#include <QCommandLineParser>
#include <QIcon>

#include "engine/common/process_environment.h"
#include "ui/main_window.h"
#ifdef PKV_HAVE_CUDA
#include "cuda/register.h"
#endif

int main(int argc, char** argv) {
    pkv::ensureProcessEnvironment(argv);
#ifdef PKV_HAVE_CUDA
    pkv::cuda::registerBackend();  // the device readout then says which device, or why not
#endif
    QApplication app(argc, argv);
    QApplication::setApplicationName("PrefixKV Studio");
    QApplication::setOrganizationName("PrefixKV");
    QApplication::setApplicationVersion(PKV_VERSION);
    QApplication::setDesktopFileName("prefixkv-studio");
    QApplication::setWindowIcon(QIcon(":/icons/prefixkv-studio.svg"));

    QCommandLineParser p;
    p.setApplicationDescription("Watch LLaVA answer while PrefixKV compresses its KV cache.");
    p.addHelpOption();
    p.addVersionOption();
    p.addOptions({{"model", "llava-hf model folder to open (default: the embedded demo model).", "dir"},
                  {"image", "Image to show at start.", "file"}});
    p.process(app);

    pkvui::MainWindow w;
    w.show();
    if (p.isSet("model")) w.loadModel(p.value("model"), false);
    else w.loadDemoModel();
    if (p.isSet("image")) w.imageView()->loadFile(p.value("image"));
    return app.exec();
}
