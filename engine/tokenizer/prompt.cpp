#include "engine/tokenizer/prompt.h"

namespace pkv {

namespace {

const std::string kImageMarker = "<image>";

// conv_llava_v1 (the "human" system text), separator style TWO with sep " ".
const std::string kLlavaV1System =
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions.";

}  // namespace

std::string applyChatTemplate(ChatTemplate t, const std::string& instruction, bool withImage, ImagePlacement placement) {
    std::string q = instruction;
    if (withImage && q.find(kImageMarker) == std::string::npos)
        q = placement == ImagePlacement::Before ? kImageMarker + "\n" + q : q + "\n" + kImageMarker;
    switch (t) {
    case ChatTemplate::LlavaV1: return kLlavaV1System + " USER: " + q + " ASSISTANT:";
    case ChatTemplate::LlavaHf: return "USER: " + q + " ASSISTANT:";
    case ChatTemplate::Raw: break;
    }
    return q;
}

// LLaVA's tokenizer_image_token: every chunk between markers is tokenised on its own as
// tokenizer(chunk).input_ids, i.e. with BOS and its own dummy-prefix space; only the first
// chunk keeps its BOS. An empty chunk (a prompt that starts or ends with the marker, or two
// adjacent markers) contributes nothing but that BOS.
PromptTokens tokenizePrompt(const Tokenizer& tok, const std::string& prompt, int imageTokenId) {
    PromptTokens out;
    out.ids.push_back(tok.bosId());
    size_t start = 0;
    while (true) {
        const size_t marker = prompt.find(kImageMarker, start);
        const std::vector<int> chunk = tok.encode(prompt.substr(start, marker == std::string::npos ? std::string::npos : marker - start));
        out.ids.insert(out.ids.end(), chunk.begin(), chunk.end());
        if (marker == std::string::npos) break;
        out.imagePositions.push_back(int(out.ids.size()));
        out.ids.push_back(imageTokenId);
        start = marker + kImageMarker.size();
    }
    return out;
}

}  // namespace pkv
