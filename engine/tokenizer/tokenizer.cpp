#include "engine/tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>

#include "engine/common/error.h"

namespace pkv {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Python's str.strip() also removes Unicode spaces; ASCII covers every prompt the templates make.
constexpr const char* kWhitespace = " \t\n\r\v\f";

json readJson(const fs::path& path) {
    std::ifstream in(path);
    try {
        return json::parse(in);
    } catch (const json::exception&) {
        throw Error("The tokenizer file " + path.string() + " is not valid JSON.");
    }
}

}  // namespace

Tokenizer::Tokenizer() : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& modelPath, const std::string& addedTokensDir) {
    if (!fs::is_regular_file(modelPath))
        throw Error("The tokenizer file " + modelPath + " does not exist or is not a file.");
    std::unique_ptr<Tokenizer> t(new Tokenizer());
    if (!t->sp_->Load(modelPath).ok())
        throw Error("The tokenizer file " + modelPath + " is not a SentencePiece model.");

    // The slow tokenizer never lets SentencePiece see its special tokens: they are split out of
    // the text and keep the whitespace around them (AddedToken lstrip/rstrip false).
    for (int id : {t->sp_->bos_id(), t->sp_->eos_id(), t->sp_->unk_id()})
        if (id >= 0) t->addToken(t->sp_->IdToPiece(id), id, false, false);
    if (addedTokensDir.empty()) return t;

    const int vocab = t->vocabSize();
    // transformers 4.31 registers added_tokens.json entries as plain strings, and plain strings
    // strip the whitespace on both sides of them when splitting.
    const fs::path addedPath = fs::path(addedTokensDir) / "added_tokens.json";
    if (fs::is_regular_file(addedPath)) {
        const json added = readJson(addedPath);
        if (!added.is_object()) throw Error("The tokenizer file " + addedPath.string() + " is not a JSON object of token ids.");
        for (const auto& [text, id] : added.items()) {
            if (!id.is_number_integer()) throw Error("The tokenizer file " + addedPath.string() + " gives a token a non-integer id.");
            if (id.get<int>() >= vocab) t->addToken(text, id.get<int>(), true, true);
        }
    }
    // The newer format states the strip flags per token, so it overrides the file above.
    const fs::path configPath = fs::path(addedTokensDir) / "tokenizer_config.json";
    if (fs::is_regular_file(configPath)) {
        const json config = readJson(configPath);
        if (config.is_object() && config.contains("added_tokens_decoder")) {
            for (const auto& [key, entry] : config["added_tokens_decoder"].items()) {
                int id = 0;
                try {
                    id = std::stoi(key);
                } catch (const std::exception&) {
                    throw Error("The tokenizer file " + configPath.string() + " has an added token with the non-numeric id \"" + key + "\".");
                }
                if (id < vocab) continue;  // pieces of tokenizer.model, already known
                if (!entry.is_object() || !entry.contains("content") || !entry["content"].is_string())
                    throw Error("The tokenizer file " + configPath.string() + " has an added token " + key + " without a \"content\" string.");
                t->addToken(entry["content"].get<std::string>(), id, entry.value("lstrip", false), entry.value("rstrip", false));
            }
        }
    }
    return t;
}

void Tokenizer::addToken(const std::string& text, int id, bool stripLeft, bool stripRight) {
    if (text.empty()) return;
    auto same = [&](const Splitter& s) { return s.text == text || s.id == id; };
    splitters_.erase(std::remove_if(splitters_.begin(), splitters_.end(), same), splitters_.end());
    splitters_.push_back({text, id, stripLeft, stripRight});
}

std::vector<int> Tokenizer::encode(const std::string& text) const {
    // Split on the longest token string that starts at the leftmost position, like the Trie of
    // the slow tokenizer; plain chunks keep their text, tokens their splitter.
    struct Chunk { std::string text; const Splitter* token; };
    std::vector<Chunk> chunks;
    std::string plain;
    for (size_t i = 0; i < text.size();) {
        const Splitter* best = nullptr;
        for (const Splitter& s : splitters_)
            if (text.compare(i, s.text.size(), s.text) == 0 && (!best || s.text.size() > best->text.size())) best = &s;
        if (!best) {
            plain += text[i++];
            continue;
        }
        if (!plain.empty()) chunks.push_back({std::move(plain), nullptr});
        plain.clear();
        chunks.push_back({best->text, best});
        i += best->text.size();
    }
    if (!plain.empty()) chunks.push_back({std::move(plain), nullptr});

    for (size_t i = 0; i < chunks.size(); ++i) {
        const Splitter* s = chunks[i].token;
        if (!s) continue;
        if (s->stripLeft && i > 0 && !chunks[i - 1].token) {
            std::string& left = chunks[i - 1].text;
            left.erase(left.find_last_not_of(kWhitespace) + 1);
        }
        if (s->stripRight && i + 1 < chunks.size() && !chunks[i + 1].token) {
            std::string& right = chunks[i + 1].text;
            right.erase(0, std::min(right.size(), right.find_first_not_of(kWhitespace)));
        }
    }

    // Legacy behaviour: each chunk is a fresh SentencePiece input, so a chunk that follows a
    // token gets the dummy-prefix space again ("Hello</s>world" -> ▁Hello </s> ▁world).
    std::vector<int> ids;
    for (const Chunk& c : chunks) {
        if (c.token) {
            ids.push_back(c.token->id);
        } else if (!c.text.empty()) {
            std::vector<int> part;
            sp_->Encode(c.text, &part);
            ids.insert(ids.end(), part.begin(), part.end());
        }
    }
    return ids;
}

// One stretch between added tokens, as LlamaTokenizer.convert_tokens_to_string (4.31) writes it.
// Its quirk is kept on purpose: the space it adds for a special token that follows ordinary
// pieces goes before the decoded run of those pieces, not before the special token, so
// [▁cat, ., </s>] becomes " cat.</s>".
std::string Tokenizer::decodeGroup(const std::vector<int>& ids) const {
    std::string out;
    std::vector<int> run;
    bool prevSpecial = false;
    for (size_t i = 0; i < ids.size(); ++i) {
        if (kind(ids[i]) == Kind::Special) {
            if (!prevSpecial && i != 0) out += ' ';
            std::string text;
            sp_->Decode(run, &text);
            out += text + tokenText(ids[i]);
            run.clear();
            prevSpecial = true;
        } else {
            run.push_back(ids[i]);
            prevSpecial = false;
        }
    }
    std::string text;
    sp_->Decode(run, &text);
    return out + text;
}

// PreTrainedTokenizer._decode (4.31): added tokens cut the ids into groups, and the groups and
// added tokens are joined with single spaces (spaces_between_special_tokens).
std::string Tokenizer::decode(const std::vector<int>& ids) const {
    std::vector<std::string> parts;
    std::vector<int> group;
    for (int id : ids) {
        const Kind k = kind(id);
        if (k == Kind::None) continue;
        if (k != Kind::Added) {
            group.push_back(id);
            continue;
        }
        if (!group.empty()) parts.push_back(decodeGroup(group));
        group.clear();
        parts.push_back(tokenText(id));
    }
    if (!group.empty()) parts.push_back(decodeGroup(group));
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? " " : "") + parts[i];
    return out;
}

Tokenizer::Kind Tokenizer::kind(int id) const {
    for (const Splitter& s : splitters_)
        if (s.id == id) return id < vocabSize() ? Kind::Special : Kind::Added;
    return id >= 0 && id < vocabSize() ? Kind::Piece : Kind::None;
}

std::string Tokenizer::tokenText(int id) const {
    for (const Splitter& s : splitters_)
        if (s.id == id) return s.text;
    return {};
}

int Tokenizer::byteValue(int id) const {
    if (id < 0 || id >= vocabSize() || !sp_->IsByte(id)) return -1;
    // Byte pieces are spelled <0xHH>.
    return std::stoi(sp_->IdToPiece(id).substr(3, 2), nullptr, 16);
}

int Tokenizer::bosId() const { return sp_->bos_id(); }
int Tokenizer::eosId() const { return sp_->eos_id(); }
int Tokenizer::vocabSize() const { return sp_->GetPieceSize(); }

int Tokenizer::tokenId(const std::string& piece) const {
    for (const Splitter& s : splitters_)
        if (s.text == piece) return s.id;
    const int id = sp_->PieceToId(piece);
    return id == sp_->unk_id() && piece != sp_->IdToPiece(id) ? -1 : id;
}

}  // namespace pkv
