#include "engine/eval/rouge.h"

#include <algorithm>
#include <cstdint>
#include <unordered_set>

#include "engine/common/error.h"

namespace pkv {
namespace {

// Decodes one UTF-8 sequence at text[i]; returns its length in bytes (1 for an invalid byte,
// which then reads as a code point no whitespace has).
size_t decodeUtf8(const std::string& text, size_t i, uint32_t* cp) {
    const auto b = [&](size_t k) { return uint8_t(text[k]); };
    const uint8_t c = b(i);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > text.size()) {
        *cp = 0xFFFFFFFF;
        return 1;
    }
    uint32_t v = len == 1 ? c : c & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) {
        if ((b(i + k) & 0xC0) != 0x80) {
            *cp = 0xFFFFFFFF;
            return 1;
        }
        v = (v << 6) | (b(i + k) & 0x3F);
    }
    *cp = v;
    return len;
}

// The code points for which Python's str.isspace() holds.
bool isPythonSpace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::vector<std::string> splitOn(const std::string& text, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    while (true) {
        const size_t at = text.find(sep, start);
        out.push_back(text.substr(start, at == std::string::npos ? std::string::npos : at - start));
        if (at == std::string::npos) return out;
        start = at + 1;
    }
}

using Sentence = std::vector<std::string>;

// Rouge._get_scores: [" ".join(s.split()) for s in text.split(".") if len(s) > 0], then each
// sentence's words as _split_into_words takes them: sentence.split(" ").
std::vector<Sentence> packageSentences(const std::string& text) {
    std::vector<Sentence> out;
    for (const std::string& piece : splitOn(text, '.')) {
        if (piece.empty()) continue;
        std::string normalised;
        for (const std::string& w : splitOnWhitespace(piece)) normalised += (normalised.empty() ? "" : " ") + w;
        out.push_back(splitOn(normalised, ' '));
    }
    return out;
}

size_t distinctWords(const std::vector<Sentence>& sentences) {
    std::unordered_set<std::string> seen;
    for (const Sentence& s : sentences) seen.insert(s.begin(), s.end());
    return seen.size();
}

// _recon_lcs(x = reference words, y = hypothesis words): the LCS table, then the package's
// backtrack from the corner: a match goes diagonally, else up only when strictly better, else left.
void addLcsWords(const Sentence& x, const Sentence& y, std::unordered_set<std::string>& into) {
    const size_t n = x.size(), m = y.size();
    std::vector<int32_t> table((n + 1) * (m + 1), 0);
    const auto at = [&](size_t i, size_t j) -> int32_t& { return table[i * (m + 1) + j]; };
    for (size_t i = 1; i <= n; ++i)
        for (size_t j = 1; j <= m; ++j)
            at(i, j) = x[i - 1] == y[j - 1] ? at(i - 1, j - 1) + 1 : std::max(at(i - 1, j), at(i, j - 1));
    size_t i = n, j = m;
    while (i > 0 && j > 0) {
        if (x[i - 1] == y[j - 1]) {
            into.insert(x[i - 1]);
            --i;
            --j;
        } else if (at(i - 1, j) > at(i, j - 1)) {
            --i;
        } else {
            --j;
        }
    }
}

}  // namespace

std::vector<std::string> splitOnWhitespace(const std::string& text) {
    std::vector<std::string> out;
    std::string word;
    for (size_t i = 0; i < text.size();) {
        uint32_t cp = 0;
        const size_t len = decodeUtf8(text, i, &cp);
        if (isPythonSpace(cp)) {
            if (!word.empty()) out.push_back(std::move(word));
            word.clear();
        } else {
            word.append(text, i, len);
        }
        i += len;
    }
    if (!word.empty()) out.push_back(std::move(word));
    return out;
}

RougeScore rougeLReference(const std::string& hypothesis, const std::string& reference) {
    const std::vector<Sentence> hyp = packageSentences(hypothesis);
    const std::vector<Sentence> ref = packageSentences(reference);
    if (hyp.empty())
        throw Error("ROUGE-L is undefined for an empty hypothesis (no text besides full stops); the rouge package raises here.");
    if (ref.empty())
        throw Error("ROUGE-L is undefined for an empty reference (no text besides full stops); the rouge package raises here.");
    const size_t m = distinctWords(ref);
    const size_t n = distinctWords(hyp);
    std::unordered_set<std::string> lcsUnion;
    for (const Sentence& r : ref)
        for (const Sentence& h : hyp) addLcsWords(r, h, lcsUnion);
    const double llcs = double(lcsUnion.size());
    RougeScore s;
    s.r = llcs / double(m);
    s.p = llcs / double(n);
    s.f = 2.0 * ((s.p * s.r) / (s.p + s.r + 1e-8));
    return s;
}

RougeScore rougeLTextbook(const std::string& hypothesis, const std::string& reference) {
    const std::vector<std::string> hyp = splitOnWhitespace(hypothesis);
    const std::vector<std::string> ref = splitOnWhitespace(reference);
    if (hyp.empty() || ref.empty()) return {};
    std::vector<int32_t> prev(hyp.size() + 1, 0), cur(hyp.size() + 1, 0);
    for (const std::string& r : ref) {
        for (size_t j = 1; j <= hyp.size(); ++j)
            cur[j] = r == hyp[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
        std::swap(prev, cur);
    }
    const double lcs = double(prev[hyp.size()]);
    if (lcs == 0) return {};
    RougeScore s;
    s.p = lcs / double(hyp.size());
    s.r = lcs / double(ref.size());
    s.f = 2.0 * s.p * s.r / (s.p + s.r);
    return s;
}

}  // namespace pkv
