// The model downloader against a small hub stand-in on 127.0.0.1: it lists, checks sizes and
// sha256 from HEAD headers, resumes an interrupted transfer with a Range request, and refuses a
// file whose checksum differs.
#include <QCryptographicHash>
#include <QRandomGenerator>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTemporaryDir>
#include <QtTest>

#include "ui/hub_downloader.h"

using namespace pkvui;

namespace {

// Speaks just enough HTTP/1.1 for the downloader: one request per connection.
class MiniHub : public QObject {
    Q_OBJECT
public:
    QByteArray weights, config = "{\"model_type\": \"llava\"}";
    QString advertisedSha;
    qint64 cutAfter = -1;  // send only this many body bytes of the next weights GET, then hang up
    QList<QByteArray> ranges;

    MiniHub() {
        weights.resize(300000);
        for (auto& c : weights) c = char(QRandomGenerator::global()->bounded(256));
        advertisedSha = QCryptographicHash::hash(weights, QCryptographicHash::Sha256).toHex();
        server.listen(QHostAddress::LocalHost);
        connect(&server, &QTcpServer::newConnection, this, [this] {
            while (QTcpSocket* s = server.nextPendingConnection()) {
                connect(s, &QTcpSocket::readyRead, this, [this, s] { serve(s); });
                connect(s, &QTcpSocket::disconnected, s, &QObject::deleteLater);
            }
        });
    }
    QUrl url() const { return QUrl(QString("http://127.0.0.1:%1").arg(server.serverPort())); }

private:
    void reply(QTcpSocket* s, const QByteArray& status, const QList<QByteArray>& headers, const QByteArray& body,
               qint64 contentLength, bool sendBody) {
        QByteArray out = "HTTP/1.1 " + status + "\r\n";
        for (const QByteArray& h : headers) out += h + "\r\n";
        out += "Content-Length: " + QByteArray::number(contentLength) + "\r\nConnection: close\r\n\r\n";
        if (sendBody) out += body;
        s->write(out);
        s->flush();
        s->disconnectFromHost();
    }

    void serve(QTcpSocket* s) {
        buffer[s] += s->readAll();
        if (!buffer[s].contains("\r\n\r\n")) return;
        const QList<QByteArray> lines = buffer.take(s).split('\n');
        const QList<QByteArray> first = lines[0].trimmed().split(' ');
        const QByteArray method = first.value(0), path = first.value(1);
        QByteArray range;
        for (const QByteArray& l : lines)
            if (l.toLower().startsWith("range:")) range = l.mid(6).trimmed();
        const bool head = method == "HEAD";
        if (path == "/api/models/test/tiny") {
            const QByteArray body = R"({"id":"test/tiny","siblings":[{"rfilename":"config.json"},)"
                                    R"({"rfilename":"model.safetensors"},{"rfilename":"README.md"},)"
                                    R"({"rfilename":"pytorch_model.bin"}]})";
            return reply(s, "200 OK", {"Content-Type: application/json"}, body, body.size(), true);
        }
        if (path == "/test/tiny/resolve/main/config.json")
            return reply(s, "200 OK", {"ETag: \"0123456789abcdef0123456789abcdef01234567\""}, config, config.size(), !head);
        if (path == "/test/tiny/resolve/main/model.safetensors") {
            if (head)
                return reply(s, "302 Found",
                             {"Location: /cdn/weights", "X-Linked-Etag: \"" + advertisedSha.toLatin1() + "\"",
                              "X-Linked-Size: " + QByteArray::number(weights.size())},
                             {}, 0, false);
            qint64 from = 0;
            if (!range.isEmpty()) {
                ranges << range;
                from = range.mid(6, range.indexOf('-') - 6).toLongLong();
            }
            const QByteArray body = weights.mid(from);
            QList<QByteArray> headers;
            if (from > 0)
                headers << "Content-Range: bytes " + QByteArray::number(from) + "-" +
                               QByteArray::number(weights.size() - 1) + "/" + QByteArray::number(weights.size());
            if (cutAfter >= 0) {
                const qint64 n = cutAfter;
                cutAfter = -1;
                return reply(s, from > 0 ? "206 Partial Content" : "200 OK", headers, body.left(n), body.size(), true);
            }
            return reply(s, from > 0 ? "206 Partial Content" : "200 OK", headers, body, body.size(), true);
        }
        reply(s, "404 Not Found", {}, {}, 0, false);
    }

    QTcpServer server;
    QHash<QTcpSocket*, QByteArray> buffer;
};

}  // namespace

class TestHubDownloader : public QObject {
    Q_OBJECT

private slots:
    void onlyEngineFilesAreWanted() {
        QVERIFY(HubDownloader::wanted("model-00001-of-00003.safetensors"));
        QVERIFY(HubDownloader::wanted("tokenizer.model"));
        QVERIFY(HubDownloader::wanted("config.json"));
        QVERIFY(!HubDownloader::wanted("pytorch_model.bin"));
        QVERIFY(!HubDownloader::wanted("README.md"));
        QVERIFY(!HubDownloader::wanted("onnx/model.json"));
    }

    void resumesAfterAnInterruptedTransfer() {
        MiniHub hub;
        hub.cutAfter = 120000;
        QTemporaryDir dir;
        HubDownloader d;
        d.setBaseUrl(hub.url());
        QSignalSpy failed(&d, &HubDownloader::failed);
        QSignalSpy finished(&d, &HubDownloader::finished);
        d.start("test/tiny", dir.path());
        QVERIFY(failed.wait(20000));
        QVERIFY(failed.first().first().toString().contains("resume"));
        const qint64 part = QFileInfo(dir.filePath("model.safetensors.part")).size();
        QVERIFY(part > 0 && part <= 120000);
        QVERIFY(!QFile::exists(dir.filePath("model.safetensors")));
        QVERIFY(QFile::exists(dir.filePath("config.json")));

        d.start("test/tiny", dir.path());
        QVERIFY(finished.wait(20000));
        QCOMPARE(hub.ranges, QList<QByteArray>{"bytes=" + QByteArray::number(part) + "-"});
        QFile f(dir.filePath("model.safetensors"));
        QVERIFY(f.open(QIODevice::ReadOnly));
        QCOMPARE(f.readAll(), hub.weights);
        QVERIFY(!QFile::exists(dir.filePath("model.safetensors.part")));
        QVERIFY(!QFile::exists(dir.filePath("README.md")));
        QVERIFY(!QFile::exists(dir.filePath("pytorch_model.bin")));
    }

    void rejectsAWrongChecksum() {
        MiniHub hub;
        hub.advertisedSha = QString(64, 'a');
        QTemporaryDir dir;
        HubDownloader d;
        d.setBaseUrl(hub.url());
        QSignalSpy failed(&d, &HubDownloader::failed);
        d.start("test/tiny", dir.path());
        QVERIFY(failed.wait(20000));
        QVERIFY(failed.first().first().toString().contains("checksum"));
        QVERIFY(!QFile::exists(dir.filePath("model.safetensors")));
        QVERIFY(!QFile::exists(dir.filePath("model.safetensors.part")));
    }

    void cancelKeepsThePartialFile() {
        MiniHub hub;
        QTemporaryDir dir;
        HubDownloader d;
        d.setBaseUrl(hub.url());
        QSignalSpy cancelled(&d, &HubDownloader::cancelled);
        connect(&d, &HubDownloader::progress, &d, [&d](qint64, qint64, const QString& file) {
            if (file == "model.safetensors") d.cancel();
        });
        d.start("test/tiny", dir.path());
        QTRY_COMPARE_WITH_TIMEOUT(cancelled.count(), 1, 20000);
        QVERIFY(!d.isRunning());
        QVERIFY(!QFile::exists(dir.filePath("model.safetensors")));
    }
};

QTEST_GUILESS_MAIN(TestHubDownloader)
#include "test_hub_downloader.moc"
