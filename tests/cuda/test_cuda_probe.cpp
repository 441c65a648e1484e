// The CUDA toolkit links and the probe answers with a reason either way; on a machine with a
// device the reported memory must be plausible.
#include <QtTest>

#include "cuda/cuda_probe.h"

class TestCudaProbe : public QObject {
    Q_OBJECT
private slots:
    void probe() {
        const pkv::cuda::DeviceProbe p = pkv::cuda::probeDevice();
        QVERIFY(!p.reason.empty());
        if (!p.usable) QSKIP(qPrintable(QString("no CUDA device: ") + QString::fromStdString(p.reason)));
        QVERIFY(!p.name.empty());
        QVERIFY(p.totalBytes > 0);
        QVERIFY(p.freeBytes > 0 && p.freeBytes <= p.totalBytes);
    }
};

QTEST_APPLESS_MAIN(TestCudaProbe)
#include "test_cuda_probe.moc"
