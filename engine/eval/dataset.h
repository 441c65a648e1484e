#pragma once
// Evaluation sets in the shapes the reference evaluation reads (spec 4.1), each item turned into
// the prompt the reference builds for it (spec 1.2):
//  - MM-Vet, as ElasticCache ships it: a JSON list of {"image", "question", "answer"};
//  - MM-Vet, as its authors ship it: a JSON object {"v1_0": {"imagename", "question", "answer",
//    ...}, ...}, items in file order;
//  - LLaVA-Description (detail_1k.json): a JSON list of {"image", "conversations": [{"from":
//    "human", "value": question with "<image>"}, {"from": "gpt", "value": reference}, ...]}.
// MM-Vet prompts put the image after the question ("{q}\n<image>"); Description questions carry
// their own marker. Both use the llava_v1 template.
#include <string>
#include <vector>

namespace pkv {

enum class DatasetKind { MmVetList, MmVetKeyed, Description };
const char* datasetKindName(DatasetKind k);

struct EvalSample {
    std::string id;        // the MM-Vet key, or the item's "id", or its index as text
    std::string image;     // as written in the file, relative to the image folder
    std::string question;  // as written in the file
    std::string answer;    // the reference answer: the PPL target
    std::string prompt;    // the full llava_v1 prompt with one "<image>" marker
};

struct Dataset {
    DatasetKind kind = DatasetKind::MmVetList;
    std::string file;
    std::string imageDir;
    std::vector<EvalSample> samples;
    std::string imagePath(size_t index) const;
};

// Reads and checks a dataset file. Throws pkv::Error naming the file and the item (index or key):
// unreadable file, malformed JSON, neither a list nor an object, an item that is not an object, a
// missing field or one of the wrong type, a Description question without "<image>", an empty
// set. With checkImages, every image must exist under imageDir; the error lists the first
// missing ones and how many there are.
Dataset loadDataset(const std::string& file, const std::string& imageDir, bool checkImages = true);

}  // namespace pkv
