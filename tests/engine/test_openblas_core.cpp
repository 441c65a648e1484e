// Which OpenBLAS kernels the programs run (engine/common/openblas_core.h): the kernel-set table,
// the choice for a CPU, and who set OPENBLAS_CORETYPE. The end-to-end check (a prefixkv process
// started without the variable runs kernels as wide as the CPU's) is in tests/app/test_cli.cpp.
#include <QtTest>
#include <cstdlib>

#include "engine/common/openblas_core.h"

using pkv::VectorLevel;

class TestOpenBlasCore : public QObject {
    Q_OBJECT

    // Restores the two variables each test touches.
    struct SavedEnvironment {
        QByteArray core = qgetenv("OPENBLAS_CORETYPE"), ours = qgetenv(pkv::kOpenBlasCoreSetBy);
        bool hadCore = qEnvironmentVariableIsSet("OPENBLAS_CORETYPE");
        bool hadOurs = qEnvironmentVariableIsSet(pkv::kOpenBlasCoreSetBy);
        ~SavedEnvironment() {
            hadCore ? qputenv("OPENBLAS_CORETYPE", core) : qunsetenv("OPENBLAS_CORETYPE");
            hadOurs ? qputenv(pkv::kOpenBlasCoreSetBy, ours) : qunsetenv(pkv::kOpenBlasCoreSetBy);
        }
    };

private slots:
    // The names openblas_get_corename() gives, by the widest instructions of their GEMM kernels.
    void kernelSetLevels() {
        QCOMPARE(pkv::openBlasCoreLevel("Prescott"), VectorLevel::Sse);  // the fallback for unknown CPUs
        QCOMPARE(pkv::openBlasCoreLevel("Nehalem"), VectorLevel::Sse);
        QCOMPARE(pkv::openBlasCoreLevel("Sandybridge"), VectorLevel::Avx);
        QCOMPARE(pkv::openBlasCoreLevel("Haswell"), VectorLevel::Avx2);
        QCOMPARE(pkv::openBlasCoreLevel("Zen"), VectorLevel::Avx2);
        QCOMPARE(pkv::openBlasCoreLevel("SkylakeX"), VectorLevel::Avx512);
        QCOMPARE(pkv::openBlasCoreLevel("Cooperlake"), VectorLevel::Avx512Bf16);
        QCOMPARE(pkv::openBlasCoreLevel("haswell"), VectorLevel::Avx2);  // OPENBLAS_CORETYPE's spelling varies
        QCOMPARE(pkv::openBlasCoreLevel("PRESCOTT"), VectorLevel::Sse);
        // A name from a newer OpenBLAS is never taken for a narrow one.
        QCOMPARE(pkv::openBlasCoreLevel("GraniteRapids"), VectorLevel::Avx512Bf16);
    }

    // The kernels asked for a CPU are OpenBLAS's own pick for such a CPU, of exactly its level.
    void kernelSetForEachLevel() {
        QCOMPARE(pkv::openBlasCoreFor(VectorLevel::Avx512Bf16), std::string("Cooperlake"));
        QCOMPARE(pkv::openBlasCoreFor(VectorLevel::Avx512), std::string("SkylakeX"));
        QCOMPARE(pkv::openBlasCoreFor(VectorLevel::Avx2), std::string("Haswell"));
        QCOMPARE(pkv::openBlasCoreFor(VectorLevel::Avx), std::string("Sandybridge"));
        QVERIFY(pkv::openBlasCoreFor(VectorLevel::Sse).empty());  // nothing better to ask for
        for (VectorLevel l : {VectorLevel::Avx, VectorLevel::Avx2, VectorLevel::Avx512, VectorLevel::Avx512Bf16})
            QCOMPARE(pkv::openBlasCoreLevel(pkv::openBlasCoreFor(l)), l);
    }

    void thisProcessNamesItsKernels() {
        const std::string core = pkv::openBlasCore();
        QVERIFY(!core.empty());
        QVERIFY2(core != "unknown", core.c_str());
    }

    // A variable the user set is kept, whatever it names.
    void userSettingIsKept() {
        SavedEnvironment saved;
        qputenv("OPENBLAS_CORETYPE", "Prescott");
        qunsetenv(pkv::kOpenBlasCoreSetBy);
        QVERIFY(!pkv::setOpenBlasCoreEnvironment());
        QCOMPARE(qgetenv("OPENBLAS_CORETYPE"), QByteArray("Prescott"));
        QVERIFY(!qEnvironmentVariableIsSet(pkv::kOpenBlasCoreSetBy));
        QVERIFY(pkv::openBlasCorePinnedByUser());
        QVERIFY2(QString::fromStdString(pkv::openBlasCoreDescription()).contains("as OPENBLAS_CORETYPE=Prescott asks"),
                 pkv::openBlasCoreDescription().c_str());
        // Our record naming other kernels than the variable: the user changed it since; theirs.
        qputenv(pkv::kOpenBlasCoreSetBy, "Cooperlake/Prescott");
        QVERIFY(pkv::openBlasCorePinnedByUser());
    }

    // Unset: the variable is set exactly when this process's kernels are narrower than the CPU's,
    // and then to the kernels for the CPU's level, with a record that prefixkv chose them.
    void unsetIsFilledOnlyWhenOpenBlasFellBack() {
        SavedEnvironment saved;
        qunsetenv("OPENBLAS_CORETYPE");
        qunsetenv(pkv::kOpenBlasCoreSetBy);
        const std::string running = pkv::openBlasCore();
        const bool fellBack = pkv::openBlasCoreLevel(running) < pkv::cpuVectorLevel() &&
                              pkv::cpuVectorLevel() > VectorLevel::Sse;
        QCOMPARE(pkv::setOpenBlasCoreEnvironment(), fellBack);
        if (!fellBack) {
            QVERIFY(!qEnvironmentVariableIsSet("OPENBLAS_CORETYPE"));
            QVERIFY(!pkv::openBlasCorePinnedByUser());
            QVERIFY2(QString::fromStdString(pkv::openBlasCoreDescription()).contains("its own choice"),
                     pkv::openBlasCoreDescription().c_str());
            return;
        }
        const std::string asked = pkv::openBlasCoreFor(pkv::cpuVectorLevel());
        QCOMPARE(qgetenv("OPENBLAS_CORETYPE").toStdString(), asked);
        QCOMPARE(qgetenv(pkv::kOpenBlasCoreSetBy).toStdString(), asked + "/" + running);
        QVERIFY(!pkv::openBlasCorePinnedByUser());
        // A second call (the re-executed program) changes nothing.
        QVERIFY(!pkv::setOpenBlasCoreEnvironment());
    }

    // The record alone (no variable) is not a pin: a child started without OPENBLAS_CORETYPE.
    void recordWithoutVariableIsNotAPin() {
        SavedEnvironment saved;
        qunsetenv("OPENBLAS_CORETYPE");
        qputenv(pkv::kOpenBlasCoreSetBy, "Cooperlake/Prescott");
        QVERIFY(!pkv::openBlasCorePinnedByUser());
        qputenv("OPENBLAS_CORETYPE", "Cooperlake");
        QVERIFY(!pkv::openBlasCorePinnedByUser());
    }
};

QTEST_GUILESS_MAIN(TestOpenBlasCore)
#include "test_openblas_core.moc"
