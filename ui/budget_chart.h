#pragma once
// The per-layer budget the policy chose: entries each layer kept after compressing the prefill,
// beside the prompt length every layer would hold with the full cache.
#include <QChartView>
#include <cstdint>
#include <vector>

namespace pkvui {

class BudgetChart : public QChartView {
    Q_OBJECT
public:
    explicit BudgetChart(QWidget* parent = nullptr);
    void setBudget(const std::vector<int64_t>& kept, int64_t promptTokens, const QString& policy);
};

}  // namespace pkvui
