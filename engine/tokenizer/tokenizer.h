#pragma once
// The LLaMA tokenizer as transformers 4.31's slow LlamaTokenizer uses it (legacy behaviour): the
// SentencePiece library on tokenizer.model, plus the added tokens llava-hf declares
// (<image>, <pad>) in added_tokens.json / tokenizer_config.json.
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece { class SentencePieceProcessor; }

namespace pkv {

class Tokenizer {
public:
    // Throws pkv::Error when tokenizer.model is missing or not a SentencePiece model, or when an
    // added-token file exists but cannot be read. Added tokens are read from addedTokensDir (the
    // model folder) when those files exist.
    static std::unique_ptr<Tokenizer> load(const std::string& modelPath, const std::string& addedTokensDir = "");
    ~Tokenizer();

    // Plain text -> ids, without BOS. Special/added token strings in the text ("</s>", "<image>")
    // become their ids, as the slow tokenizer splits on them; every chunk between them is
    // encoded on its own, with its own SentencePiece dummy prefix (legacy behaviour).
    std::vector<int> encode(const std::string& text) const;
    // ids -> text, as tokenizer.decode(ids) without skip_special_tokens. Ids that name nothing
    // (padding rows of the embedding table) are skipped.
    std::string decode(const std::vector<int>& ids) const;

    // How decode treats a token; StreamDetokenizer follows the same rules.
    enum class Kind {
        Piece,    // a SentencePiece piece, decoded by SentencePiece in runs
        Special,  // <s>, </s>, <unk>: written as their text inside a run
        Added,    // <image>, <pad>: their text, joined to the neighbours by one space
        None,     // an id outside both vocabularies
    };
    Kind kind(int id) const;
    // The text of a Special or Added token; "" for other ids.
    std::string tokenText(int id) const;
    // The byte a byte-fallback piece (<0xF0>) stands for; -1 for other ids.
    int byteValue(int id) const;

    int bosId() const;
    int eosId() const;
    int vocabSize() const;  // pieces in tokenizer.model
    int tokenId(const std::string& piece) const;  // -1 if unknown (added tokens included)

private:
    Tokenizer();
    // A string the text is split on before SentencePiece sees it. The strip flags say whether
    // whitespace next to it is dropped (transformers' AddedToken lstrip/rstrip).
    struct Splitter { std::string text; int id; bool stripLeft; bool stripRight; };
    void addToken(const std::string& text, int id, bool stripLeft, bool stripRight);
    std::string decodeGroup(const std::vector<int>& ids) const;

    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
    std::vector<Splitter> splitters_;  // SentencePiece specials first, then added tokens
};

}  // namespace pkv
