#pragma once
// Choosing the model: a folder on disk (checked and summarised, with a memory estimate, before
// anything is loaded), a recent one, the embedded demo model, or a llava-hf download.
#include <QDialog>

#include "ui/engine_types.h"

class QComboBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QProgressBar;
class QPushButton;

namespace pkvui {

class HubDownloader;

class ModelManagerDialog : public QDialog {
    Q_OBJECT
public:
    explicit ModelManagerDialog(QWidget* parent = nullptr);

    // Checks a folder with ModelFolder::open; shows its summary or the reason it cannot be used.
    bool inspect(const QString& dir);
    QString summaryText() const;
    QString errorText() const;
    HubDownloader* downloader() const { return downloader_; }

    static QStringList recentModels();
    static void rememberModel(const QString& dir);

signals:
    void loadRequested(const QString& dir, bool demo, int device);

private:
    void refreshRecent();

    QLabel* summary_;
    QLabel* error_;
    QListWidget* recent_;
    QComboBox* device_;
    QComboBox* kvDtype_;
    QComboBox* weights_;
    QPushButton* load_;
    QComboBox* hubModel_;
    QLineEdit* hubDest_;
    QPushButton* download_;
    QPushButton* cancelDownload_;
    QProgressBar* downloadBar_;
    QLabel* downloadStatus_;
    HubDownloader* downloader_;
    QString candidate_;
};

}  // namespace pkvui
