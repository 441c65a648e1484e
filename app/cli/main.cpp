// prefixkv: the headless face of PrefixKV Studio, for scripts and clusters.
#include <QCoreApplication>
#include <cstdio>

#include "app/cli/cli_common.h"
#include "engine/common/process_environment.h"
#ifdef PKV_HAVE_CUDA
#include "cuda/register.h"
#endif

namespace {

const char* kUsage =
    "usage: prefixkv <command> [options]\n"
    "\n"
    "commands:\n"
    "  generate   answer an instruction about an image, streaming the answer\n"
    "  info       summarise a model folder and estimate its memory\n"
    "  bench      measure speed and memory on a model beside this machine's limits\n"
    "  eval       PPL and ROUGE-L of compression methods over a dataset (resumable; 'eval merge')\n"
    "  profile    estimate PrefixKV's per-layer budgets on calibration samples\n"
    "  score      ROUGE-L of text files ('score rouge') or PPL of a dataset ('score ppl')\n"
    "\n"
    "Run 'prefixkv <command> --help' for the options of a command.\n"
    "Without --model, the embedded demo model (random weights, meaningless output) is used.\n";

}  // namespace

int main(int argc, char** argv) {
    pkv::ensureProcessEnvironment(argv);
#ifdef PKV_HAVE_CUDA
    pkv::cuda::registerBackend();  // --device auto then uses a capable GPU, or says why not
#endif
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName("prefixkv");
    QCoreApplication::setApplicationVersion(PKV_VERSION);
    QStringList args = app.arguments();
    if (args.size() < 2 || args[1] == "--help" || args[1] == "-h") {
        std::fputs(kUsage, args.size() < 2 ? stderr : stdout);
        return args.size() < 2 ? pkvcli::Usage : pkvcli::Ok;
    }
    if (args[1] == "--version") {
        std::printf("prefixkv %s\n", PKV_VERSION);
        return pkvcli::Ok;
    }
    const QString command = args.takeAt(1);
    if (command == "generate") return pkvcli::runGenerate(args);
    if (command == "info") return pkvcli::runInfo(args);
    if (command == "bench") return pkvcli::runBench(args);
    if (command == "eval") return pkvcli::runEval(args);
    if (command == "profile") return pkvcli::runProfile(args);
    if (command == "score") return pkvcli::runScore(args);
    std::fprintf(stderr, "prefixkv: unknown command \"%s\".\n\n%s", qPrintable(command), kUsage);
    return pkvcli::Usage;
}
