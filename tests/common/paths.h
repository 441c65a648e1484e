#pragma once
// Where tests find their inputs: committed fixtures in the source tree, and the project's shared
// reference material beside the checkout (../shared), which may be absent.
#include <QDir>
#include <QFileInfo>
#include <QString>

namespace pkvtest {

inline QString sourceDir() { return QStringLiteral(PKV_SOURCE_DIR); }
inline QString fixturesDir() { return sourceDir() + "/tests/fixtures"; }
// ../shared relative to the checkout; empty when it is not there.
inline QString sharedDir() {
    QString d = QFileInfo(sourceDir() + "/../shared").canonicalFilePath();
    return (!d.isEmpty() && QDir(d).exists()) ? d : QString();
}
inline std::string str(const QString& s) { return s.toStdString(); }

}  // namespace pkvtest
