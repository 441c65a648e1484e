#pragma once
// Which words two answers do not share, for highlighting once both are written: the words off a
// longest common subsequence of the two word lists.
#include <QString>
#include <QStringList>
#include <QVector>

namespace pkvui {

struct WordDiff {
    QStringList leftWords, rightWords;
    QVector<bool> leftDiffers, rightDiffers;  // one flag per word
};

WordDiff diffWords(const QString& left, const QString& right);
// The words as HTML, differing ones highlighted; whitespace between words becomes one space.
QString highlightedHtml(const QStringList& words, const QVector<bool>& differs);

}  // namespace pkvui
