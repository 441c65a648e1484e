#pragma once
// Turns generated ids into text one token at a time, for showing an answer as it is written.
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace pkv {

// Everything push() returns plus flush() equals tokenizer.decode(ids), with one exception that a
// stream cannot reproduce: decode() puts the space that precedes a special token after ordinary
// text (" cat.</s>") before that text, which was already shown; the stream writes "cat. </s>".
// Bytes of a character split over byte-fallback pieces are held back until it is complete.
class StreamDetokenizer {
public:
    explicit StreamDetokenizer(const Tokenizer& tok) : tok_(tok) {}

    // Appends one id; returns the text it completes (often "", e.g. half an emoji).
    std::string push(int id);
    // Ends the stream: returns what was held back (an unfinished character decodes to U+FFFD).
    std::string flush();

private:
    std::string runText(size_t pieces) const;
    size_t completePieces() const;
    std::string emitRun(size_t pieces);

    const Tokenizer& tok_;
    std::vector<int> run_;     // ordinary pieces since the last special or added token
    size_t runShown_ = 0;      // bytes of the run's text already returned
    bool groupOpen_ = false;   // inside a stretch between added tokens
    bool anyPart_ = false;     // something (a stretch or an added token) came before
    bool prevSpecial_ = false;
    bool groupEmpty_ = true;
};

}  // namespace pkv
