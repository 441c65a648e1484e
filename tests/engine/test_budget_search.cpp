// PrefixKV's budget rules (spec 2.2-2.5) on score vectors small enough to check by hand. Every
// expected number is worked out in the comment beside it; tests/fixtures/prefixkv_reference.py
// gives the same numbers.
#include <QtTest>

#include "common/errors.h"

#include <cmath>
#include <functional>
#include <limits>

#include "engine/common/error.h"
#include "engine/kv/budget.h"
#include "engine/kv/budget_search.h"
#include "engine/kv/prefixkv_policy.h"

using namespace pkv;
using pkvtest::errorOf;
using Counts = std::vector<int64_t>;

namespace {

// Layer A holds its mass in a few tokens, powers of two so every curve value is exact:
// total 128, C = .5 .75 .875 .9375 .96875 .984375 .9921875 1 1 1.
const std::vector<float> kSteep{64, 32, 16, 8, 4, 2, 1, 1, 0, 0};
// Layer B is flat: C = .1 .2 .30000000000000004 .4 .5 .6 .7 .7999999999999999 .8999999999999999
// .9999999999999999 (running sums of 0.1 in double).
const std::vector<float> kFlat(10, 1.f);


}  // namespace

class TestBudgetSearch : public QObject {
    Q_OBJECT
private slots:
    void retentionCurveIsCumulativeShare() {
        const std::vector<double> c = retentionCurve({1, 8, 4, 2, 1});  // sorted 8 4 2 1 1, total 16
        QCOMPARE(c, (std::vector<double>{0.5, 0.75, 0.875, 0.9375, 1.0}));
        const std::vector<double> flat = retentionCurve(kFlat);
        QCOMPARE(flat[2], 0.30000000000000004);
        QCOMPARE(flat[9], 0.9999999999999999);
    }

    // An all-zero layer would divide by zero; it is treated as uniform instead.
    void allZeroLayerIsUniform() {
        QCOMPARE(retentionCurve({0, 0, 0, 0}), (std::vector<double>{0.25, 0.5, 0.75, 1.0}));
        const BudgetSearchResult r = searchPrefixBudgets({{0, 0, 0, 0, 0, 0, 0, 0}}, 0.5);
        for (int64_t e : r.evict) QVERIFY(e >= 0 && e <= 6);
    }

    // e(p) = max(0, N - (k+1) - 2) with k the first index where C[k] >= p.
    void evictCountAtThreshold_data() {
        QTest::addColumn<double>("p");
        QTest::addColumn<qint64>("evict");
        // N = 5, C = .5 .75 .875 .9375 1: e = 2 - k.
        QTest::newRow("p=0") << 0.0 << qint64(2);
        QTest::newRow("p=C[0] exactly (searchsorted left)") << 0.5 << qint64(2);
        QTest::newRow("just above C[0]") << 0.5000001 << qint64(1);
        QTest::newRow("p=0.8") << 0.8 << qint64(0);
        QTest::newRow("p=1") << 1.0 << qint64(0);
        QTest::newRow("p above every C") << 1.5 << qint64(0);
    }
    void evictCountAtThreshold() {
        QFETCH(double, p);
        QFETCH(qint64, evict);
        QCOMPARE(evictCountAt(retentionCurve({8, 4, 2, 1, 1}), p), int64_t(evict));
    }

    void search_data() {
        QTest::addColumn<double>("r");
        QTest::addColumn<double>("target");
        QTest::addColumn<double>("threshold");
        QTest::addColumn<int>("iterations");
        QTest::addColumn<Counts>("atThreshold");
        QTest::addColumn<Counts>("evict");
        // Layers A and B, N = 10, target = r * 2 * 10.
        // p=.5: A k=0 -> 7, B k=4 -> 3; E = 10 = target: done at once.
        QTest::newRow("r=0.5") << 0.5 << 10.0 << 0.5 << 1 << Counts{7, 3} << Counts{7, 3};
        // p=.5: E=10, 6 too many -> lo=.5. p=.75: A k=1 -> 6, B k=7 -> 0; |6-4| < 5: done.
        // Rescale 6*4/6 = 4.
        QTest::newRow("r=0.2") << 0.2 << 4.0 << 0.75 << 2 << Counts{6, 0} << Counts{4, 0};
        // 100% kept: p=.5 E=10, p=.75 E=6, p=.875 E=5+0 (not < 5 away), p=.9375 E=4+0: done.
        // Rescaled to the target 0.
        QTest::newRow("r=0 (100% kept)") << 0.0 << 0.0 << 0.9375 << 4 << Counts{4, 0} << Counts{0, 0};
        // 0% kept: E never exceeds 14 < 20, so p halves until the cap; every layer saturates
        // (7 each); the rescale 7*20/14 = 10 is clipped to the 8 candidates.
        QTest::newRow("r=1 (0% kept, capped)")
            << 1.0 << 20.0 << std::ldexp(1.0, -100) << 100 << Counts{7, 7} << Counts{8, 8};
    }
    void search() {
        QFETCH(double, r);
        QFETCH(double, target);
        QFETCH(double, threshold);
        QFETCH(int, iterations);
        QFETCH(Counts, atThreshold);
        QFETCH(Counts, evict);
        const BudgetSearchResult res = searchPrefixBudgets({kSteep, kFlat}, r);
        QCOMPARE(res.target, target);
        QCOMPARE(res.threshold, threshold);
        QCOMPARE(res.iterations, iterations);
        QCOMPARE(res.evictAtThreshold, atThreshold);
        QCOMPARE(res.evict, evict);
    }

    void iterationCapIsAParameter() {
        // p = .5, .25, .125: E = 10, then 7 + (B k=2 -> 5) = 12, then 7 + (k=1 -> 6) = 13.
        const BudgetSearchResult res = searchPrefixBudgets({kSteep, kFlat}, 1.0, 3);
        QCOMPARE(res.iterations, 3);
        QCOMPARE(res.threshold, 0.125);
        QCOMPARE(res.evictAtThreshold, (Counts{7, 6}));
    }

    // N = 3: the only candidate is token 1, but e(p) = 3 - (k+1) - 2 <= 0 for every p: the
    // online search never evicts. E = 0 is within 5 of 2.7 at once.
    void tinyPrompt() {
        const BudgetSearchResult res = searchPrefixBudgets({{1, 2, 3}}, 0.9);
        QCOMPARE(res.iterations, 1);
        QCOMPARE(res.evict, (Counts{0}));
        QCOMPARE(maxEvictCount(3), int64_t(1));
        QCOMPARE(maxEvictCount(2), int64_t(0));
        QCOMPARE(maxEvictCount(1), int64_t(0));
    }

    void rescale_data() {
        QTest::addColumn<Counts>("counts");
        QTest::addColumn<double>("target");
        QTest::addColumn<qint64>("cap");
        QTest::addColumn<Counts>("expected");
        // 3*10/8 = 3.75, 5*10/8 = 6.25: floors undershoot the target by one.
        QTest::newRow("up, floored") << Counts{3, 5, 0} << 10.0 << qint64(100) << Counts{3, 6, 0};
        QTest::newRow("down") << Counts{97, 97, 97} << 288.9 << qint64(100) << Counts{96, 96, 96};
        QTest::newRow("clipped") << Counts{5, 5} << 20.0 << qint64(6) << Counts{6, 6};
        QTest::newRow("zero sum") << Counts{0, 0} << 3.0 << qint64(100) << Counts{0, 0};
    }
    void rescale() {
        QFETCH(Counts, counts);
        QFETCH(double, target);
        QFETCH(qint64, cap);
        QFETCH(Counts, expected);
        QCOMPARE(rescaleCounts(counts, target, cap), expected);
    }

    void roundsHalfToEven_data() {
        QTest::addColumn<double>("x");
        QTest::addColumn<qint64>("rounded");
        QTest::newRow("0.5") << 0.5 << qint64(0);
        QTest::newRow("1.5") << 1.5 << qint64(2);
        QTest::newRow("2.5") << 2.5 << qint64(2);
        QTest::newRow("3.5") << 3.5 << qint64(4);
        QTest::newRow("2.4999") << 2.4999 << qint64(2);
        QTest::newRow("2.5001") << 2.5001 << qint64(3);
        QTest::newRow("52.5") << 52.5 << qint64(52);
        QTest::newRow("53.5") << 53.5 << qint64(54);
    }
    void roundsHalfToEven() {
        QFETCH(double, x);
        QFETCH(qint64, rounded);
        QCOMPARE(roundHalfEven(x), int64_t(rounded));
    }

    // e_l = round_half_even(f_l * N): 0.25*10 = 2.5 -> 2, 0.35*10 = 3.5 -> 4, 0.45*10 = 4.5 -> 4;
    // 1.0*10 = 10 is clipped to the 8 candidates.
    void countsFromProfileFractions() {
        QCOMPARE(countsFromFractions({0.25, 0.35, 0.45, 0.0, 1.0}, 10), (Counts{2, 4, 4, 0, 8}));
        QCOMPARE(countsFromFractions({0.5}, 3), (Counts{1}));  // 1.5 -> 2, clipped to 1 candidate
        QCOMPARE(countsFromFractions({0.9}, 2), (Counts{0}));
    }

    void rejectsBadImportance() {
        const float nan = std::numeric_limits<float>::quiet_NaN();
        QString m = errorOf([&] { searchPrefixBudgets({{1, 2, 3}, {1, nan, 3}}, 0.5); });
        QVERIFY2(m.contains("layer 1") && m.contains("token 1"), qPrintable(m));
        m = errorOf([&] { searchPrefixBudgets({{1, 2, std::numeric_limits<float>::infinity()}}, 0.5); });
        QVERIFY2(m.contains("layer 0") && m.contains("token 2"), qPrintable(m));
        m = errorOf([&] { searchPrefixBudgets({{1, -2, 3}}, 0.5); });
        QVERIFY2(m.contains("token 1"), qPrintable(m));
        m = errorOf([&] { searchPrefixBudgets({{1, 2, 3}, {1, 2}}, 0.5); });
        QVERIFY2(m.contains("layer 1"), qPrintable(m));
        m = errorOf([&] { searchPrefixBudgets({{1, 2, 3}}, 1.5); });
        QVERIFY2(m.contains("evicted fraction"), qPrintable(m));
    }

    // Spec 2.4: candidates [1, N-1); the lowest scores go, ties earliest first.
    void selection_data() {
        QTest::addColumn<std::vector<float>>("importance");
        QTest::addColumn<qint64>("evict");
        QTest::addColumn<Counts>("kept");
        QTest::newRow("lowest go") << std::vector<float>{0, 5, 1, 4, 2, 0} << qint64(2) << Counts{0, 1, 3, 5};
        // BOS and the last token stay even with the lowest scores.
        QTest::newRow("protected") << std::vector<float>{0, 5, 6, 7, 0} << qint64(1) << Counts{0, 2, 3, 4};
        QTest::newRow("ties: earliest first")
            << std::vector<float>{9, 1, 1, 1, 5, 1, 9} << qint64(2) << Counts{0, 3, 4, 5, 6};
        QTest::newRow("all equal") << std::vector<float>(6, 1.f) << qint64(3) << Counts{0, 4, 5};
        QTest::newRow("evict none") << std::vector<float>{3, 1, 2} << qint64(0) << Counts{0, 1, 2};
        QTest::newRow("evict all candidates") << std::vector<float>{3, 1, 2, 4} << qint64(2) << Counts{0, 3};
        QTest::newRow("count above candidates") << std::vector<float>{3, 1, 2, 4} << qint64(9) << Counts{0, 3};
        QTest::newRow("N=3") << std::vector<float>{3, 1, 2} << qint64(1) << Counts{0, 2};
        QTest::newRow("N=2") << std::vector<float>{3, 1} << qint64(1) << Counts{0, 1};
        QTest::newRow("N=1") << std::vector<float>{3} << qint64(1) << Counts{0};
    }
    void selection() {
        QFETCH(std::vector<float>, importance);
        QFETCH(qint64, evict);
        QFETCH(Counts, kept);
        QCOMPARE(selectKeptPositions(importance, evict), kept);
    }

    void fixedIndex() {
        QCOMPARE(fixedEvictionIndex(192), int64_t(167));  // spec 2.5 worked example
        QCOMPARE(fixedEvictionIndex(26), int64_t(1));
        QCOMPARE(fixedEvictionIndex(25), int64_t(12));    // 0 < 1: half the kept length
        QCOMPARE(fixedEvictionIndex(2), int64_t(1));
        QCOMPARE(fixedEvictionIndex(1), int64_t(0));
    }

    // trunc(len - T*(1-f)) >= 1.
    void decodeBudget() {
        QVERIFY(!exceedsDecodeBudget(51, 101, 0.5));  // 51 - 50.5 = 0.5
        QVERIFY(exceedsDecodeBudget(52, 102, 0.5));   // 52 - 51 = 1
        QVERIFY(exceedsDecodeBudget(10, 20, 0.9));    // 10 - 2.0000000000000004: excess 7
        QVERIFY(!exceedsDecodeBudget(2, 20, 0.0));    // negative excess
    }

    // Spec 2.5's worked example: N = 640, f = 0.7 keeps 192 with P = 167; after 100 new tokens
    // the layer holds 223 ("about 222" in the spec: 192 + 100 - 69 evictions).
    void workedExample() {
        const int64_t n = 640;
        const int64_t e = countsFromFractions({0.7}, n)[0];
        QCOMPARE(e, int64_t(448));
        int64_t length = n - e;
        for (int64_t t = 1; t <= 100; ++t) {
            ++length;
            if (exceedsDecodeBudget(length, n + t, 0.7)) --length;
        }
        QCOMPARE(length, int64_t(223));
    }

    void budgets() {
        QCOMPARE(Budget::keptPercent(20).evictedFraction(640), 0.8);
        QCOMPARE(Budget::keptPercent(70).evictedFraction(640), 0.3);  // not 0.30000000000000004
        QCOMPARE(Budget::keptPercent(10).evictedFraction(640), 0.9);
        QCOMPARE(Budget::keptPercent(100).evictedFraction(640), 0.0);
        QCOMPARE(Budget::fromEvictedFraction(0.5).evictedFraction(7), 0.5);
        QCOMPARE(Budget::keptTokens(160).evictedFraction(640), 0.75);
        QCOMPARE(Budget::keptTokens(700).evictedFraction(640), 0.0);
        QCOMPARE(QString::fromStdString(Budget::keptPercent(20).describe()), QString("20% kept"));
        QCOMPARE(QString::fromStdString(Budget::keptTokens(64).describe()), QString("64 tokens kept"));
    }

    void badBudgets_data() {
        QTest::addColumn<int>("kind");
        QTest::addColumn<double>("value");
        QTest::newRow("0% kept") << 0 << 0.0;
        QTest::newRow("negative") << 0 << -5.0;
        QTest::newRow("above 100%") << 0 << 100.5;
        QTest::newRow("NaN percent") << 0 << std::nan("");
        QTest::newRow("evict everything") << 1 << 1.0;
        QTest::newRow("negative fraction") << 1 << -0.1;
        QTest::newRow("zero tokens") << 2 << 0.0;
    }
    void badBudgets() {
        QFETCH(int, kind);
        QFETCH(double, value);
        const QString m = errorOf([&] {
            if (kind == 0) Budget::keptPercent(value);
            if (kind == 1) Budget::fromEvictedFraction(value);
            if (kind == 2) Budget::keptTokens(int64_t(value));
        });
        QVERIFY2(m.contains("budget") || m.contains("fraction"), qPrintable(m));
    }
};

QTEST_APPLESS_MAIN(TestBudgetSearch)
#include "test_budget_search.moc"
