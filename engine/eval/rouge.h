#pragma once
// ROUGE-L F between a hypothesis and a reference text, two ways:
//  - rougeLReference: exactly what the reference evaluation reports, the `rouge` 1.0.1 pip
//    package's Rouge().get_scores(hyp, ref)[0]["rouge-l"] (spec 4.3). It is not textbook ROUGE-L:
//    sentences are split on every ".", words are compared as sets, and the LCS word sets of all
//    (reference sentence, hypothesis sentence) pairs are pooled into one union.
//  - rougeLTextbook: Lin (2004) ROUGE-L with beta = 1 on the whole texts as whitespace tokens.
#include <string>
#include <vector>

namespace pkv {

struct RougeScore {
    double f = 0, p = 0, r = 0;
};

// The package's quirks, all reproduced:
//  - text.split(".") on every full stop (decimals too), pieces of length 0 dropped, and only then
//    each piece whitespace-normalised (" ".join(piece.split()), Python's Unicode whitespace), so
//    a piece of only spaces survives as the empty string;
//  - words = piece.split(" "): case-sensitive, punctuation attached, "" is a word;
//  - m, n = distinct words of the reference and the hypothesis;
//  - the LCS of each pair is rebuilt by the package's backtrack (ties go to the hypothesis side)
//    and only its set of words counts; llcs = size of the union over all pairs;
//  - R = llcs/m, P = llcs/n, F = 2 * ((P*R) / (P+R+1e-8)), evaluated in that order.
// The package raises ValueError when either text has no piece left (empty, or only full stops);
// this throws pkv::Error then, saying which side is empty. Unlike the package, which recurses once
// per word while backtracking, very long sentences are fine here.
RougeScore rougeLReference(const std::string& hypothesis, const std::string& reference);

// LCS length over whitespace-separated tokens of the whole texts; P = lcs/|hyp|, R = lcs/|ref|,
// F = 2PR/(P+R). All three are 0 when either text has no token or nothing matches.
RougeScore rougeLTextbook(const std::string& hypothesis, const std::string& reference);

// Python's str.split() with no argument: runs of Unicode whitespace separate, none at the ends.
// Invalid UTF-8 bytes are not whitespace.
std::vector<std::string> splitOnWhitespace(const std::string& text);

}  // namespace pkv
