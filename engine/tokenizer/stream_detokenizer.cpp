#include "engine/tokenizer/stream_detokenizer.h"

namespace pkv {

std::string StreamDetokenizer::push(int id) {
    const Tokenizer::Kind kind = tok_.kind(id);
    if (kind == Tokenizer::Kind::None) return {};
    std::string out;
    if (kind == Tokenizer::Kind::Added) {
        out = emitRun(run_.size());
        run_.clear();
        runShown_ = 0;
        if (anyPart_) out += ' ';
        out += tok_.tokenText(id);
        anyPart_ = true;
        groupOpen_ = false;
        return out;
    }
    if (!groupOpen_) {
        // decode() joins stretches and added tokens with one space; the stretch exists from its
        // first token on, even if its text turns out empty, so the space can go out now.
        if (anyPart_) out += ' ';
        anyPart_ = groupOpen_ = groupEmpty_ = true;
        prevSpecial_ = false;
    }
    if (kind == Tokenizer::Kind::Special) {
        out += emitRun(run_.size());
        if (!prevSpecial_ && !groupEmpty_) out += ' ';
        out += tok_.tokenText(id);
        run_.clear();
        runShown_ = 0;
        prevSpecial_ = true;
    } else {
        run_.push_back(id);
        prevSpecial_ = false;
        out += emitRun(completePieces());
    }
    groupEmpty_ = false;
    return out;
}

std::string StreamDetokenizer::flush() { return emitRun(run_.size()); }

std::string StreamDetokenizer::runText(size_t pieces) const {
    return tok_.decode(std::vector<int>(run_.begin(), run_.begin() + pieces));
}

// SentencePiece decodes a run as a whole, and the text of its first `pieces` pieces is a prefix
// of the text of more pieces as long as no UTF-8 character is cut; so only the bytes of an
// unfinished character at the end are held back.
size_t StreamDetokenizer::completePieces() const {
    size_t i = run_.size();
    size_t continuation = 0;
    while (i > 0 && continuation < 3) {
        const int b = tok_.byteValue(run_[i - 1]);
        if (b < 0x80 || b > 0xBF) break;
        --i;
        ++continuation;
    }
    if (i == 0) return run_.size();
    const int lead = tok_.byteValue(run_[i - 1]);
    const size_t length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return 1 + continuation < length ? i - 1 : run_.size();
}

std::string StreamDetokenizer::emitRun(size_t pieces) {
    const std::string text = runText(pieces);
    if (text.size() <= runShown_) return {};
    std::string fresh = text.substr(runShown_);
    runShown_ = text.size();
    return fresh;
}

}  // namespace pkv
