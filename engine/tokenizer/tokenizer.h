#pragma once
// The LLaMA tokenizer as transformers' slow LlamaTokenizer uses it (legacy behaviour): the
// SentencePiece library on tokenizer.model, plus the added tokens llava-hf declares
// (<image>, <pad>) in added_tokens.json / tokenizer_config.json.
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece { class SentencePieceProcessor; }

namespace pkv {

class Tokenizer {
public:
    // Throws pkv::Error when tokenizer.model is missing or not a SentencePiece model. Added
    // tokens are read from addedTokensDir (the model folder) when those files exist.
    static std::unique_ptr<Tokenizer> load(const std::string& modelPath, const std::string& addedTokensDir = "");
    ~Tokenizer();

    // Plain text -> ids, without BOS. Special/added token strings in the text ("</s>", "<image>")
    // become their ids, as the slow tokenizer splits on them.
    std::vector<int> encode(const std::string& text) const;
    // ids -> text, as tokenizer.decode(ids) without skip_special_tokens.
    std::string decode(const std::vector<int>& ids) const;
    // One token's text as it should be appended to a stream (handles the leading-space piece and
    // byte-fallback pieces; returns "" for an incomplete UTF-8 byte sequence until it completes).
    std::string pieceText(int id) const;

    int bosId() const;
    int eosId() const;
    int vocabSize() const;  // pieces in tokenizer.model
    int tokenId(const std::string& piece) const;  // -1 if unknown (added tokens included)

private:
    Tokenizer();
    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
    struct Added { std::string text; int id; };
    std::vector<Added> added_;
};

}  // namespace pkv
