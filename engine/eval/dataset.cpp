#include "engine/eval/dataset.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/common/error.h"
#include "engine/tokenizer/prompt.h"

namespace pkv {
namespace {

using Json = nlohmann::ordered_json;  // keeps MM-Vet's keys in file order

const std::string kMarker = "<image>";
constexpr size_t kMissingListed = 5;

// Formats the way a person finds an item: "item 3" in a list, "item \"v1_7\"" in a keyed file.
std::string where(const std::string& file, const std::string& item) { return file + ": " + item; }

std::string textField(const Json& obj, const char* name, const std::string& at) {
    if (!obj.contains(name)) throw Error(at + " has no \"" + name + "\" field.");
    const Json& v = obj[name];
    if (!v.is_string())
        throw Error(at + ": \"" + name + "\" must be a string, not " + std::string(v.type_name()) + ".");
    return v.get<std::string>();
}

std::string mmVetPrompt(const std::string& question) {
    return applyChatTemplate(ChatTemplate::LlavaV1, question + "\n" + kMarker, true);
}

EvalSample descriptionItem(const Json& item, const std::string& at, size_t index) {
    EvalSample s;
    s.image = textField(item, "image", at);
    s.id = item.contains("id") && item["id"].is_string() ? item["id"].get<std::string>()
           : item.contains("id") && item["id"].is_number_integer() ? std::to_string(item["id"].get<int64_t>())
                                                                  : std::to_string(index);
    if (!item.contains("conversations")) throw Error(at + " has no \"conversations\" field.");
    const Json& conv = item["conversations"];
    if (!conv.is_array() || conv.size() < 2)
        throw Error(at + ": \"conversations\" must be a list of at least two turns (question, answer).");
    for (size_t t = 0; t < 2; ++t)
        if (!conv[t].is_object()) throw Error(at + ": conversation turn " + std::to_string(t) + " is not an object.");
    s.question = textField(conv[0], "value", at + ", conversation turn 0");
    s.answer = textField(conv[1], "value", at + ", conversation turn 1");
    if (s.question.find(kMarker) == std::string::npos)
        throw Error(at + ": the question has no <image> marker, which LLaVA-Description questions carry.");
    s.prompt = applyChatTemplate(ChatTemplate::LlavaV1, s.question, true);
    return s;
}

EvalSample mmVetItem(const Json& item, const std::string& at, const char* imageField, std::string id) {
    EvalSample s;
    s.id = std::move(id);
    s.image = textField(item, imageField, at);
    s.question = textField(item, "question", at);
    s.answer = textField(item, "answer", at);
    s.prompt = mmVetPrompt(s.question);
    return s;
}

void checkImages(const Dataset& d) {
    std::vector<std::string> missing;
    size_t count = 0;
    for (size_t i = 0; i < d.samples.size(); ++i) {
        if (std::filesystem::is_regular_file(d.imagePath(i))) continue;
        if (++count <= kMissingListed) missing.push_back(d.samples[i].image + " (item " + d.samples[i].id + ")");
    }
    if (count == 0) return;
    std::string list;
    for (const std::string& m : missing) list += (list.empty() ? "" : ", ") + m;
    throw Error(std::to_string(count) + " of the " + std::to_string(d.samples.size()) + " images named in " + d.file +
                " are missing from " + d.imageDir + ": " + list + (count > missing.size() ? ", ..." : "") + ".");
}

}  // namespace

const char* datasetKindName(DatasetKind k) {
    switch (k) {
        case DatasetKind::MmVetList: return "mm-vet";
        case DatasetKind::MmVetKeyed: return "mm-vet (original keyed)";
        case DatasetKind::Description: return "llava-description";
    }
    return "?";
}

std::string Dataset::imagePath(size_t index) const {
    return (std::filesystem::path(imageDir) / samples.at(index).image).string();
}

Dataset loadDataset(const std::string& file, const std::string& imageDir, bool check) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw Error("Cannot read the dataset file " + file + ".");
    std::stringstream text;
    text << in.rdbuf();
    Json root;
    try {
        root = Json::parse(text.str());
    } catch (const Json::parse_error& e) {
        throw Error(file + " is not valid JSON (byte " + std::to_string(e.byte) + ").");
    }
    Dataset d;
    d.file = file;
    d.imageDir = imageDir;
    if (root.is_object()) {
        d.kind = DatasetKind::MmVetKeyed;
        for (auto it = root.begin(); it != root.end(); ++it) {
            const std::string at = where(file, "item \"" + it.key() + "\"");
            if (!it.value().is_object()) throw Error(at + " is not an object.");
            d.samples.push_back(mmVetItem(it.value(), at, "imagename", it.key()));
        }
    } else if (root.is_array()) {
        const bool description = !root.empty() && root[0].is_object() && root[0].contains("conversations");
        d.kind = description ? DatasetKind::Description : DatasetKind::MmVetList;
        for (size_t i = 0; i < root.size(); ++i) {
            const std::string at = where(file, "item " + std::to_string(i));
            if (!root[i].is_object()) throw Error(at + " is not an object.");
            d.samples.push_back(description ? descriptionItem(root[i], at, i)
                                            : mmVetItem(root[i], at, "image", std::to_string(i)));
        }
    } else {
        throw Error(file + " must hold a JSON list of items (MM-Vet, LLaVA-Description) or an object keyed by "
                           "question id (original MM-Vet), not a " + std::string(root.type_name()) + ".");
    }
    if (d.samples.empty()) throw Error(file + " holds no items.");
    if (check) checkImages(d);
    return d;
}

}  // namespace pkv
