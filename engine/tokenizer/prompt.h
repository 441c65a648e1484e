#pragma once
// Chat templates and <image> splicing, as the reference evaluation builds its prompts.
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace pkv {

enum class ChatTemplate {
    LlavaV1,   // reference: "A chat between a curious human ..." + " USER: {q} ASSISTANT:"
    LlavaHf,   // llava-hf default: "USER: {q} ASSISTANT:"
    Raw,       // the text as given
};

// Where the image marker goes when the instruction does not contain "<image>".
enum class ImagePlacement { Before, After };

// Wraps an instruction in the template. When the instruction has no "<image>" and an image is
// given, the marker is inserted (Before: "<image>\n{q}", After: "{q}\n<image>").
std::string applyChatTemplate(ChatTemplate t, const std::string& instruction, bool withImage,
                              ImagePlacement placement = ImagePlacement::Before);

// A tokenised prompt: ids with one BOS at 0; each image marker appears once as imageTokenId in
// `ids`; `imagePositions` lists the index in `ids` of each marker. The model expands each marker
// into imageTokens embeddings.
struct PromptTokens {
    std::vector<int> ids;
    std::vector<int> imagePositions;
};

// tokenizer_image_token: split on "<image>", tokenize each chunk with BOS, keep the first BOS
// only, join chunks with imageTokenId.
PromptTokens tokenizePrompt(const Tokenizer& tok, const std::string& prompt, int imageTokenId);

}  // namespace pkv
