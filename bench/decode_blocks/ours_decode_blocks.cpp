// Our engine under the decode-block protocol (decode_blocks.h): a short text prompt, then blocks
// of greedy steps, each block after its own triad.
//   ours_decode_blocks MODEL_DIR [blocks=10] [steps=16] [mapped|memory]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#include "bench/decode_blocks/decode_blocks.h"
#include "bench/decoder_cost.h"
#include "engine/model/llava.h"
#include "engine/session.h"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s MODEL_DIR [blocks] [steps] [mapped|memory]\n", argv[0]);
        return 2;
    }
    try {
        const int blocks = argc > 2 ? std::atoi(argv[2]) : 10, steps = argc > 3 ? std::atoi(argv[3]) : 16;
        pkv::LoadOptions load;
        load.device = pkv::DeviceChoice::Cpu;
        if (argc > 4 && !pkv::parseWeightStorage(argv[4], load.weights)) {
            std::fprintf(stderr, "the fourth argument says where the weights live: mapped or memory, not \"%s\"\n", argv[4]);
            return 2;
        }
        auto model = pkv::LlavaModel::load(argv[1], load);
        const double bytes = pkvbench::decoderCost(model->folder(), model->kvDtype()).weightBytesPerToken;
        std::printf("ours: %.3f GB of weights per token\n", bytes / 1e9);
        pkv::Session s(model);
        s.prefill("Tell me a long story about a cat.", nullptr);
        auto step = [&] {
            const std::vector<float>& logits = s.logits();
            s.feed(int(std::max_element(logits.begin(), logits.end()) - logits.begin()));
        };
        for (int i = 0; i < 3; ++i) step();  // pages the weights in, wakes the threads
        pkvbench::decodeBlocks("ours", blocks, steps, bytes, step);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
