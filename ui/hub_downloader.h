#pragma once
// Downloads a llava-hf model folder from the Hugging Face hub (or any server speaking its URLs):
//   GET  /api/models/<repo>               the file list ("siblings")
//   HEAD /<repo>/resolve/main/<file>      size, and for LFS files the sha256 in X-Linked-Etag
//   GET  /<repo>/resolve/main/<file>      the bytes, with "Range: bytes=N-" to resume a .part file
// Every file lands as <file>.part and is renamed only once its size and sha256 match, so an
// interrupted download resumes where it stopped and a corrupt one is never taken for a model.
#include <QFile>
#include <QNetworkAccessManager>
#include <QObject>
#include <QPointer>
#include <QUrl>

class QNetworkReply;

namespace pkvui {

struct KnownModel {
    QString repo;
    QString description;
};
std::vector<KnownModel> knownHubModels();

class HubDownloader : public QObject {
    Q_OBJECT
public:
    explicit HubDownloader(QObject* parent = nullptr);

    void setBaseUrl(const QUrl& url) { base_ = url; }
    // Fetches the file list, then every file the engine needs (*.json, *.safetensors,
    // tokenizer.model) into destDir/. Files already complete are kept.
    void start(const QString& repo, const QString& destDir);
    void cancel();
    bool isRunning() const { return running_; }

    // Which hub files a model folder needs (pickled .bin weights are never fetched).
    static bool wanted(const QString& file);

signals:
    void progress(qint64 bytesDone, qint64 bytesTotal, const QString& file);
    void finished(const QString& destDir);
    void failed(const QString& sentence);
    void cancelled();

private:
    struct Item {
        QString name;
        qint64 size = -1;
        QString sha256;  // empty when the server states none (small git files)
    };
    QUrl fileUrl(const QString& file) const;
    void listFiles();
    void headNext();
    void downloadNext();
    void verifyAndFinish(const Item& item);
    void fail(const QString& sentence);
    QNetworkReply* track(QNetworkReply* reply);

    QNetworkAccessManager net_;
    QUrl base_{"https://huggingface.co"};
    QString repo_, dest_;
    std::vector<Item> items_;
    size_t index_ = 0;
    qint64 doneBefore_ = 0, total_ = 0;
    QFile part_;
    QPointer<QNetworkReply> reply_;
    bool running_ = false;
};

}  // namespace pkvui
