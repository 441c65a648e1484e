#include "engine/io/model_config.h"

#include <algorithm>
#include <climits>
#include <nlohmann/json.hpp>

#include "engine/common/error.h"

namespace pkv {

namespace {

using nlohmann::json;

std::string jsonTypeName(const json& v) {
    if (v.is_number_integer()) return "an integer";
    if (v.is_number()) return "a number";
    if (v.is_string()) return "a string";
    if (v.is_boolean()) return "a boolean";
    if (v.is_array()) return "a list";
    if (v.is_object()) return "an object";
    return "null";
}

// One JSON object of a config file. Real configs leave out every field equal to the
// transformers class default, so each read names its default; a field that is present must
// have the right type, and errors name it by its dotted path ("text_config.hidden_size").
class Fields {
public:
    Fields(const json& obj, std::string path, std::string prefix)
        : obj_(obj), path_(std::move(path)), prefix_(std::move(prefix)) {}

    [[noreturn]] void fail(const std::string& problem) const {
        throw Error("In " + path_ + ", " + problem + ".");
    }
    std::string name(const std::string& key) const { return prefix_ + key; }

    // Present and not null: transformers treats null as "use the default" for optional fields.
    bool has(const std::string& key) const { return obj_.contains(key) && !obj_[key].is_null(); }
    // Written at all, null included: an explicit null means "none" where absent means the default.
    bool stated(const std::string& key) const { return obj_.contains(key); }
    const json& at(const std::string& key) const { return obj_[key]; }

    int integer(const std::string& key, int fallback) const {
        if (!has(key)) return fallback;
        return toInt(key, at(key));
    }
    int toInt(const std::string& key, const json& v) const {
        if (!v.is_number_integer()) wrongType(key, v, "an integer");
        if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(INT_MAX) : v.get<int64_t>() < INT_MIN)
            fail(name(key) + " (" + v.dump() + ") is out of range");
        return v.get<int>();
    }
    int positive(const std::string& key, int fallback) const {
        int v = integer(key, fallback);
        if (v <= 0) fail(name(key) + " must be positive, but it is " + std::to_string(v));
        return v;
    }
    float number(const std::string& key, float fallback) const {
        if (!has(key)) return fallback;
        if (!at(key).is_number()) wrongType(key, at(key), "a number");
        return at(key).get<float>();
    }
    bool boolean(const std::string& key, bool fallback) const {
        if (!has(key)) return fallback;
        if (!at(key).is_boolean()) wrongType(key, at(key), "true or false");
        return at(key).get<bool>();
    }
    std::string text(const std::string& key, const std::string& fallback) const {
        if (!has(key)) return fallback;
        if (!at(key).is_string()) wrongType(key, at(key), "a string");
        return at(key).get<std::string>();
    }
    Fields object(const std::string& key) const {
        if (!obj_.contains(key)) fail(name(key) + " is missing");
        if (!at(key).is_object()) wrongType(key, at(key), "an object");
        return Fields(at(key), path_, name(key) + ".");
    }

    [[noreturn]] void wrongType(const std::string& key, const json& v, const std::string& wanted) const {
        fail(name(key) + " should be " + wanted + " but is " + jsonTypeName(v));
    }

private:
    const json& obj_;
    std::string path_;
    std::string prefix_;
};

json parseObject(const std::string& jsonText, const std::string& path) {
    json root;
    try {
        root = json::parse(jsonText);
    } catch (const json::parse_error& e) {
        throw Error(path + " is not valid JSON (error at byte " + std::to_string(e.byte) + ").");
    }
    if (!root.is_object()) throw Error(path + " does not hold a JSON object.");
    return root;
}

void requireDivisible(const Fields& f, const std::string& a, int av, const std::string& b, int bv) {
    if (av % bv != 0)
        f.fail(f.name(a) + " (" + std::to_string(av) + ") is not a multiple of " + f.name(b) + " (" +
               std::to_string(bv) + ")");
}

// Only plain RoPE is implemented. transformers 5 writes rope_parameters {"rope_type": "default",
// "rope_theta": ...}; older configs write rope_theta beside a rope_scaling that must be null.
float readRopeTheta(const Fields& t) {
    float theta = t.number("rope_theta", 10000.0f);
    for (const char* key : {"rope_scaling", "rope_parameters"}) {
        if (!t.has(key)) continue;
        Fields rope = t.object(key);
        std::string type = rope.text("rope_type", rope.text("type", "default"));
        if (type != "default")
            t.fail(t.name(key) + " asks for RoPE scaling of type \"" + type +
                   "\", which is not supported; only plain RoPE is");
        theta = rope.number("rope_theta", theta);
    }
    if (theta <= 0) t.fail(t.name("rope_theta") + " must be positive");
    return theta;
}

// Defaults are those of transformers' LlamaConfig.
LlamaConfig readText(const Fields& t, const Fields& top) {
    std::string type = t.text("model_type", "llama");
    if (type != "llama")
        t.fail("the language model is of type \"" + type + "\"; only LLaMA-family decoders (model_type \"llama\") are supported");
    std::string act = t.text("hidden_act", "silu");
    if (act != "silu") t.fail(t.name("hidden_act") + " is \"" + act + "\"; LLaMA decoders here support only \"silu\"");
    for (const char* key : {"attention_bias", "mlp_bias"})
        if (t.boolean(key, false)) t.fail(t.name(key) + " is true, which LLaMA decoders here do not support");

    LlamaConfig c;
    c.hiddenSize = t.positive("hidden_size", 4096);
    c.intermediateSize = t.positive("intermediate_size", 11008);
    c.numLayers = t.positive("num_hidden_layers", 32);
    c.numHeads = t.positive("num_attention_heads", 32);
    c.numKvHeads = t.positive("num_key_value_heads", c.numHeads);
    requireDivisible(t, "hidden_size", c.hiddenSize, "num_attention_heads", c.numHeads);
    requireDivisible(t, "num_attention_heads", c.numHeads, "num_key_value_heads", c.numKvHeads);
    c.headDim = t.positive("head_dim", c.hiddenSize / c.numHeads);
    if (c.headDim % 2 != 0) t.fail(t.name("head_dim") + " (" + std::to_string(c.headDim) + ") must be even for RoPE");
    c.vocabSize = t.positive("vocab_size", 32000);
    c.maxPositions = t.positive("max_position_embeddings", 2048);
    c.rmsNormEps = t.number("rms_norm_eps", 1e-6f);
    if (c.rmsNormEps <= 0) t.fail(t.name("rms_norm_eps") + " must be positive");
    c.ropeTheta = readRopeTheta(t);
    c.bosTokenId = t.stated("bos_token_id") ? t.integer("bos_token_id", -1) : 1;
    if (!t.stated("eos_token_id")) {
        c.eosTokenId = 2;
    } else if (t.has("eos_token_id") && t.at("eos_token_id").is_array()) {
        const json& ids = t.at("eos_token_id");
        if (ids.empty()) t.fail(t.name("eos_token_id") + " is an empty list");
        c.eosTokenId = t.toInt("eos_token_id", ids[0]);
    } else {
        c.eosTokenId = t.integer("eos_token_id", -1);
    }
    // llava-hf states the padding token only at the top level.
    c.padTokenId = t.has("pad_token_id") ? t.integer("pad_token_id", -1) : top.integer("pad_token_id", -1);
    // LlavaForConditionalGeneration ties by its own (top-level) flag; older exports state it
    // only in text_config.
    c.tieWordEmbeddings = top.has("tie_word_embeddings") ? top.boolean("tie_word_embeddings", false)
                                                         : t.boolean("tie_word_embeddings", false);
    return c;
}

// Defaults are those of transformers' CLIPVisionConfig.
ClipVisionConfig readVision(const Fields& v) {
    std::string type = v.text("model_type", "clip_vision_model");
    if (type != "clip_vision_model" && type != "clip")
        v.fail("the vision tower is of type \"" + type + "\"; only CLIP vision towers (model_type \"clip_vision_model\") are supported");
    ClipVisionConfig c;
    c.hiddenSize = v.positive("hidden_size", 768);
    c.intermediateSize = v.positive("intermediate_size", 3072);
    c.numLayers = v.positive("num_hidden_layers", 12);
    c.numHeads = v.positive("num_attention_heads", 12);
    requireDivisible(v, "hidden_size", c.hiddenSize, "num_attention_heads", c.numHeads);
    c.headDim = v.positive("head_dim", c.hiddenSize / c.numHeads);
    c.imageSize = v.positive("image_size", 224);
    c.patchSize = v.positive("patch_size", 32);
    requireDivisible(v, "image_size", c.imageSize, "patch_size", c.patchSize);
    c.numChannels = v.positive("num_channels", 3);
    c.layerNormEps = v.number("layer_norm_eps", 1e-5f);
    if (c.layerNormEps <= 0) v.fail(v.name("layer_norm_eps") + " must be positive");
    c.hiddenAct = v.text("hidden_act", "quick_gelu");
    if (c.hiddenAct != "quick_gelu" && c.hiddenAct != "gelu")
        v.fail(v.name("hidden_act") + " is \"" + c.hiddenAct + "\"; the vision tower supports only \"quick_gelu\" and \"gelu\"");
    return c;
}

}  // namespace

// Defaults at the top level are those of transformers' LlavaConfig.
LlavaConfig parseLlavaConfig(const std::string& jsonText, const std::string& path) {
    const json root = parseObject(jsonText, path);
    Fields top(root, path, "");
    if (!top.has("model_type")) top.fail("there is no model_type, so it does not describe a LLaVA model in the llava-hf layout");
    std::string type = top.text("model_type", "");
    if (type != "llava")
        top.fail("model_type is \"" + type + "\", but only LLaVA models in the llava-hf layout (model_type \"llava\") are supported");

    LlavaConfig c;
    c.text = readText(top.object("text_config"), top);
    c.vision = readVision(top.object("vision_config"));
    c.imageTokenIndex = top.integer("image_token_index", top.integer("image_token_id", 32000));
    if (c.imageTokenIndex < 0) top.fail("image_token_index must not be negative");

    if (top.has("vision_feature_layer") && top.at("vision_feature_layer").is_array())
        top.fail("vision_feature_layer is a list; features from several vision layers are not supported");
    c.visionFeatureLayer = top.integer("vision_feature_layer", -2);
    const int layers = c.vision.numLayers;
    if (c.visionFeatureLayer < -(layers + 1) || c.visionFeatureLayer > layers)
        top.fail("vision_feature_layer (" + std::to_string(c.visionFeatureLayer) + ") is outside the " +
                 std::to_string(layers + 1) + " hidden states of a " + std::to_string(layers) + "-layer vision tower");

    c.visionFeatureSelectStrategy = top.text("vision_feature_select_strategy", "default");
    if (c.visionFeatureSelectStrategy != "default" && c.visionFeatureSelectStrategy != "full")
        top.fail("vision_feature_select_strategy is \"" + c.visionFeatureSelectStrategy +
                 "\"; only \"default\" and \"full\" exist");
    c.projectorHiddenAct = top.text("projector_hidden_act", "gelu");
    if (c.projectorHiddenAct != "gelu")
        top.fail("projector_hidden_act is \"" + c.projectorHiddenAct + "\"; the projector supports only \"gelu\"");
    c.projectorBias = top.boolean("multimodal_projector_bias", true);
    return c;
}

// Defaults are those of the CLIP processor llava-hf ships (336 px, OpenAI CLIP mean and std).
PreprocessConfig parsePreprocessConfig(const std::string& jsonText, const std::string& path) {
    const json root = parseObject(jsonText, path);
    Fields f(root, path, "");
    PreprocessConfig c;

    if (f.has("size")) {
        if (f.at("size").is_number()) {
            c.shortestEdge = f.positive("size", 0);
        } else {
            Fields size = f.object("size");
            if (size.has("shortest_edge")) {
                c.shortestEdge = size.positive("shortest_edge", 0);
            } else if (size.has("height") && size.has("width")) {
                c.resizeHeight = size.positive("height", 0);
                c.resizeWidth = size.positive("width", 0);
                c.shortestEdge = std::min(c.resizeHeight, c.resizeWidth);
            } else {
                f.fail("size has neither \"shortest_edge\" nor \"height\" and \"width\"");
            }
        }
    }
    if (f.has("crop_size")) {
        if (f.at("crop_size").is_number()) {
            c.cropHeight = c.cropWidth = f.positive("crop_size", 0);
        } else {
            Fields crop = f.object("crop_size");
            if (!crop.has("height") || !crop.has("width")) f.fail("crop_size lacks \"height\" or \"width\"");
            c.cropHeight = crop.positive("height", 0);
            c.cropWidth = crop.positive("width", 0);
        }
    }
    c.doResize = f.boolean("do_resize", c.doResize);
    c.doCenterCrop = f.boolean("do_center_crop", c.doCenterCrop);
    c.doNormalize = f.boolean("do_normalize", c.doNormalize);
    c.doRescale = f.boolean("do_rescale", c.doRescale);
    c.rescaleFactor = f.number("rescale_factor", c.rescaleFactor);
    c.resample = f.integer("resample", c.resample);

    for (auto [key, target] : {std::pair{"image_mean", &c.mean}, std::pair{"image_std", &c.std}}) {
        if (!f.has(key)) continue;
        const json& v = f.at(key);
        if (!v.is_array() || v.size() != 3) f.fail(std::string(key) + " should be a list of 3 numbers, one per colour channel");
        for (int i = 0; i < 3; ++i) {
            if (!v[i].is_number()) f.fail(std::string(key) + " should be a list of 3 numbers, one per colour channel");
            (*target)[i] = v[i].get<float>();
        }
    }
    for (float s : c.std)
        if (s <= 0) f.fail("image_std must be positive in every channel");
    return c;
}

}  // namespace pkv
