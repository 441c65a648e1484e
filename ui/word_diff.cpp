#include "ui/word_diff.h"

#include <QRegularExpression>
#include <vector>

namespace pkvui {

WordDiff diffWords(const QString& left, const QString& right) {
    static const QRegularExpression space("\\s+");
    WordDiff d;
    d.leftWords = left.split(space, Qt::SkipEmptyParts);
    d.rightWords = right.split(space, Qt::SkipEmptyParts);
    const qsizetype n = d.leftWords.size(), m = d.rightWords.size();
    std::vector<std::vector<int>> lcs(size_t(n + 1), std::vector<int>(size_t(m + 1), 0));
    for (qsizetype i = n - 1; i >= 0; --i)
        for (qsizetype j = m - 1; j >= 0; --j)
            lcs[i][j] = d.leftWords[i] == d.rightWords[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    d.leftDiffers.fill(true, n);
    d.rightDiffers.fill(true, m);
    qsizetype i = 0, j = 0;
    while (i < n && j < m) {
        if (d.leftWords[i] == d.rightWords[j]) {
            d.leftDiffers[i++] = false;
            d.rightDiffers[j++] = false;
        } else if (lcs[i + 1][j] >= lcs[i][j + 1]) {
            ++i;
        } else {
            ++j;
        }
    }
    return d;
}

QString highlightedHtml(const QStringList& words, const QVector<bool>& differs) {
    QStringList out;
    for (qsizetype i = 0; i < words.size(); ++i) {
        const QString w = words[i].toHtmlEscaped();
        out << (differs.value(i) ? QString("<span style=\"background:#ffd54f;color:#000\">%1</span>").arg(w) : w);
    }
    return out.join(' ');
}

}  // namespace pkvui
