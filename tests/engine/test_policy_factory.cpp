// The factory names every method the UI and CLI offer and builds a policy for each.
#include <QtTest>

#include "engine/common/error.h"
#include "engine/kv/policy_factory.h"

using namespace pkv;

class TestPolicyFactory : public QObject {
    Q_OBJECT
private slots:
    void everyKnownMethodBuilds() {
        QCOMPARE(knownMethods().size(), size_t(9));
        for (const std::string& m : knownMethods()) {
            for (bool faithful : {true, false}) {
                PolicySpec spec;
                spec.method = m;
                spec.faithful = faithful;
                spec.budget = Budget::keptPercent(20);
                auto policy = makePolicy(spec, 32);
                QVERIFY(policy != nullptr);
                // A policy names itself by its method, with the variant where there is one.
                QVERIFY2(QString::fromStdString(policy->name()).startsWith(QString::fromStdString(m)), policy->name().c_str());
                if (methodHasVariants(m))
                    QVERIFY(QString::fromStdString(policy->name()).contains(faithful ? "faithful" : "fixed"));
            }
        }
    }

    void descriptions() {
        PolicySpec spec;
        QCOMPARE(describePolicy(spec), std::string("full"));
        spec.method = "prefixkv";
        spec.budget = Budget::keptPercent(20);
        QCOMPARE(describePolicy(spec), std::string("prefixkv (online), 20% kept"));
        spec.method = "elastic";
        spec.faithful = false;
        spec.budget = Budget::keptTokens(128);
        QCOMPARE(describePolicy(spec), std::string("elastic (fixed), 128 tokens kept"));
    }

    void unknownMethod() {
        PolicySpec spec;
        spec.method = "magic";
        try {
            makePolicy(spec, 32);
            QFAIL("no error");
        } catch (const Error& e) {
            QVERIFY(QString(e.what()).contains("magic"));
            QVERIFY(QString(e.what()).contains("prefixkv"));
        }
    }

    void profileWithWrongLayerCountNamesTheFile() {
        PolicySpec spec;
        spec.method = "prefixkv";
        spec.profilePath = PKV_SOURCE_DIR "/tests/fixtures/golden/prefixkv_conf_tiny_0.5.json";  // 3 layers
        QVERIFY(makePolicy(spec, 3) != nullptr);
        try {
            makePolicy(spec, 32);
            QFAIL("no error");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains("prefixkv_conf_tiny_0.5.json"), e.what());
        }
    }
};

QTEST_APPLESS_MAIN(TestPolicyFactory)
#include "test_policy_factory.moc"
