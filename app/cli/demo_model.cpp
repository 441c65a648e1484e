#include "app/cli/demo_model.h"

#include <QDir>
#include <QDirIterator>
#include <QFile>
#include <QTemporaryDir>

#include "engine/common/error.h"

namespace pkvcli {

std::string extractDemoModel() {
    static QTemporaryDir dir;  // removed when the process exits
    static bool done = false;
    if (!dir.isValid()) throw pkv::Error("Cannot create a temporary folder for the demo model.");
    if (!done) {
        QDirIterator it(":/demo-model", QDir::Files);
        while (it.hasNext()) {
            const QString src = it.next();
            const QString dst = dir.filePath(QFileInfo(src).fileName());
            if (!QFile::copy(src, dst))
                throw pkv::Error("Cannot write the demo model to " + dst.toStdString() + ".");
        }
        done = true;
    }
    return dir.path().toStdString();
}

}  // namespace pkvcli
