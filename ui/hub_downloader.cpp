#include "ui/hub_downloader.h"

#include <QCryptographicHash>
#include <QDir>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QNetworkReply>
#include <QRegularExpression>

namespace pkvui {
namespace {

QString etagSha256(const QNetworkReply* r) {
    static const QRegularExpression hex64("^[0-9a-f]{64}$");
    for (const char* h : {"X-Linked-Etag", "ETag"}) {
        QString v = QString::fromLatin1(r->rawHeader(h)).trimmed();
        if (v.startsWith("W/")) v = v.mid(2);
        v.remove('"');
        v = v.toLower();
        if (hex64.match(v).hasMatch()) return v;
    }
    return {};
}

qint64 statedSize(const QNetworkReply* r) {
    bool ok = false;
    const qint64 linked = r->rawHeader("X-Linked-Size").toLongLong(&ok);
    if (ok) return linked;
    const QVariant len = r->header(QNetworkRequest::ContentLengthHeader);
    return len.isValid() ? len.toLongLong() : -1;
}

QString sha256Of(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) return {};
    QCryptographicHash h(QCryptographicHash::Sha256);
    h.addData(&f);
    return QString::fromLatin1(h.result().toHex());
}

}  // namespace

std::vector<KnownModel> knownHubModels() {
    return {{"llava-hf/llava-1.5-7b-hf", "LLaVA-1.5 7B (about 14 GB, fp16)"},
            {"llava-hf/llava-1.5-13b-hf", "LLaVA-1.5 13B (about 27 GB, fp16)"}};
}

HubDownloader::HubDownloader(QObject* parent) : QObject(parent) {}

bool HubDownloader::wanted(const QString& file) {
    if (file.contains('/')) return false;  // the engine reads a flat folder
    return file.endsWith(".json") || file.endsWith(".safetensors") || file == "tokenizer.model";
}

QUrl HubDownloader::fileUrl(const QString& file) const {
    QUrl u = base_;
    u.setPath(base_.path() + "/" + repo_ + "/resolve/main/" + file);
    return u;
}

QNetworkReply* HubDownloader::track(QNetworkReply* reply) {
    reply_ = reply;
    return reply;
}

void HubDownloader::start(const QString& repo, const QString& destDir) {
    if (running_) return;
    running_ = true;
    repo_ = repo;
    dest_ = destDir;
    items_.clear();
    index_ = 0;
    doneBefore_ = total_ = 0;
    if (!QDir().mkpath(dest_)) return fail("Cannot create the folder " + dest_ + ".");
    listFiles();
}

void HubDownloader::cancel() {
    if (!running_) return;
    running_ = false;
    if (reply_) {
        reply_->disconnect(this);
        reply_->abort();
        reply_->deleteLater();
    }
    if (part_.isOpen()) part_.close();
    emit cancelled();
}

void HubDownloader::fail(const QString& sentence) {
    running_ = false;
    if (part_.isOpen()) part_.close();
    emit failed(sentence);
}

void HubDownloader::listFiles() {
    QUrl u = base_;
    u.setPath(base_.path() + "/api/models/" + repo_);
    QNetworkReply* r = track(net_.get(QNetworkRequest(u)));
    connect(r, &QNetworkReply::finished, this, [this, r] {
        r->deleteLater();
        if (!running_) return;
        if (r->error() != QNetworkReply::NoError)
            return fail(QString("Cannot list the files of %1: %2.").arg(repo_, r->errorString()));
        const QJsonArray siblings = QJsonDocument::fromJson(r->readAll()).object()["siblings"].toArray();
        for (const QJsonValue& s : siblings) {
            const QString name = s.toObject()["rfilename"].toString();
            if (wanted(name)) items_.push_back({name, -1, {}});
        }
        if (items_.empty()) return fail(QString("%1 lists no safetensors model files.").arg(repo_));
        headNext();
    });
}

// Sizes and checksums first, so the progress bar knows the whole amount from the start.
void HubDownloader::headNext() {
    if (index_ == items_.size()) {
        for (const Item& it : items_) total_ += std::max<qint64>(0, it.size);
        index_ = 0;
        return downloadNext();
    }
    QNetworkRequest req(fileUrl(items_[index_].name));
    // The hub answers an LFS file with a redirect to its CDN; the checksum is on that first answer.
    req.setAttribute(QNetworkRequest::RedirectPolicyAttribute, QNetworkRequest::ManualRedirectPolicy);
    QNetworkReply* r = track(net_.head(req));
    connect(r, &QNetworkReply::finished, this, [this, r] {
        r->deleteLater();
        if (!running_) return;
        const int status = r->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
        if (r->error() != QNetworkReply::NoError && !(status >= 300 && status < 400))
            return fail(QString("Cannot reach %1: %2.").arg(items_[index_].name, r->errorString()));
        items_[index_].size = statedSize(r);
        items_[index_].sha256 = etagSha256(r);
        ++index_;
        headNext();
    });
}

void HubDownloader::downloadNext() {
    if (index_ == items_.size()) {
        running_ = false;
        emit finished(dest_);
        return;
    }
    const Item& item = items_[index_];
    const QString final = dest_ + "/" + item.name;
    if (QFileInfo(final).exists() && (item.size < 0 || QFileInfo(final).size() == item.size)) {
        doneBefore_ += std::max<qint64>(0, item.size);
        ++index_;
        return downloadNext();
    }
    part_.setFileName(final + ".part");
    if (!part_.open(QIODevice::ReadWrite)) return fail("Cannot write " + part_.fileName() + ".");
    const qint64 have = part_.size();
    if (item.size >= 0 && have == item.size) {
        part_.close();
        return verifyAndFinish(item);
    }
    part_.seek(have);
    QNetworkRequest req(fileUrl(item.name));
    if (have > 0) req.setRawHeader("Range", "bytes=" + QByteArray::number(have) + "-");
    QNetworkReply* r = track(net_.get(req));
    connect(r, &QNetworkReply::readyRead, this, [this, r, have] {
        if (!running_) return;
        const int status = r->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
        // A server that ignores the range sends the whole file again: start the part over.
        if (have > 0 && status == 200 && part_.pos() == have) {
            part_.resize(0);
            part_.seek(0);
        }
        part_.write(r->readAll());
        emit progress(doneBefore_ + part_.pos(), total_, items_[index_].name);
    });
    connect(r, &QNetworkReply::finished, this, [this, r] {
        r->deleteLater();
        if (!running_) return;
        part_.write(r->readAll());
        part_.close();
        const Item& it = items_[index_];
        if (r->error() != QNetworkReply::NoError)
            return fail(QString("The download of %1 stopped (%2); start it again to resume from %3.")
                            .arg(it.name, r->errorString(), QString::number(QFileInfo(part_.fileName()).size())));
        if (it.size >= 0 && QFileInfo(part_.fileName()).size() < it.size)
            return fail(QString("The download of %1 ended early at %2 of %3 bytes; start it again to resume.")
                            .arg(it.name).arg(QFileInfo(part_.fileName()).size()).arg(it.size));
        verifyAndFinish(it);
    });
}

void HubDownloader::verifyAndFinish(const Item& item) {
    const QString partPath = dest_ + "/" + item.name + ".part";
    const qint64 got = QFileInfo(partPath).size();
    if (item.size >= 0 && got != item.size) {
        QFile::remove(partPath);
        return fail(QString("%1 has %2 bytes but the hub states %3; the partial file was removed.")
                        .arg(item.name).arg(got).arg(item.size));
    }
    if (!item.sha256.isEmpty()) {
        const QString actual = sha256Of(partPath);
        if (actual != item.sha256) {
            QFile::remove(partPath);
            return fail(QString("%1 failed its checksum (sha256 %2, the hub states %3); the file was removed, "
                                "download it again.").arg(item.name, actual.left(12) + "…", item.sha256.left(12) + "…"));
        }
    }
    const QString final = dest_ + "/" + item.name;
    QFile::remove(final);
    if (!QFile::rename(partPath, final)) return fail("Cannot rename " + partPath + " to " + final + ".");
    doneBefore_ += got;
    emit progress(doneBefore_, total_, item.name);
    ++index_;
    downloadNext();
}

}  // namespace pkvui
