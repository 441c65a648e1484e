#include "ui/budget_chart.h"

#include <QBarCategoryAxis>
#include <QStackedBarSeries>
#include <QBarSet>
#include <QChart>
#include <QValueAxis>

namespace pkvui {

BudgetChart::BudgetChart(QWidget* parent) : QChartView(parent) {
    setRenderHint(QPainter::Antialiasing);
    auto* c = new QChart;
    c->setTitle("Per-layer KV budget");
    c->legend()->setVisible(true);
    c->setMargins(QMargins(2, 2, 2, 2));
    setChart(c);
    setMinimumHeight(150);
}

void BudgetChart::setBudget(const std::vector<int64_t>& kept, int64_t promptTokens, const QString& policy) {
    auto* c = chart();
    c->removeAllSeries();
    for (QAbstractAxis* a : c->axes()) {
        c->removeAxis(a);
        delete a;
    }
    auto* keptSet = new QBarSet("kept");
    auto* evictedSet = new QBarSet("evicted");
    keptSet->setColor(QColor(79, 195, 247));
    evictedSet->setColor(QColor(255, 138, 101));
    QStringList layers;
    for (size_t l = 0; l < kept.size(); ++l) {
        *keptSet << double(kept[l]);
        *evictedSet << double(std::max<int64_t>(0, promptTokens - kept[l]));
        layers << QString::number(l);
    }
    auto* series = new QStackedBarSeries;
    series->append(keptSet);
    series->append(evictedSet);
    c->addSeries(series);
    auto* x = new QBarCategoryAxis;
    x->append(layers);
    x->setTitleText("layer");
    auto* y = new QValueAxis;
    y->setRange(0, double(std::max<int64_t>(1, promptTokens)));
    y->setLabelFormat("%d");
    c->addAxis(x, Qt::AlignBottom);
    c->addAxis(y, Qt::AlignLeft);
    series->attachAxis(x);
    series->attachAxis(y);
    c->setTitle(QString("Per-layer KV budget: %1").arg(policy));
}

}  // namespace pkvui
