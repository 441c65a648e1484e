// llama.cpp under the decode-block protocol (decode_blocks.h), for holding our engine to the
// best-known CPU engine on the same machine at the same moment's bandwidth. Same prompt, greedy
// steps, two threads. Bytes per token: every tensor but the token embeddings (of which one row
// is read), at the file's average bytes per parameter — for an f16 GGUF of LLaVA-1.5-7B's
// language model this is the 13.215 GB `ours_decode_blocks` counts from the safetensors.
//   llamacpp_decode_blocks MODEL.gguf [blocks=10] [steps=16]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bench/decode_blocks/decode_blocks.h"
#include "llama.h"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s MODEL.gguf [blocks] [steps]\n", argv[0]);
        return 2;
    }
    const int blocks = argc > 2 ? std::atoi(argv[2]) : 10, steps = argc > 3 ? std::atoi(argv[3]) : 16;
    llama_backend_init();
    llama_model* model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) return 1;
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 2048;
    cp.n_threads = cp.n_threads_batch = 2;
    llama_context* ctx = llama_init_from_model(model, cp);
    if (!ctx) return 1;
    const llama_vocab* vocab = llama_model_get_vocab(model);
    const int nVocab = llama_vocab_n_tokens(vocab);

    const double perParam = double(llama_model_size(model)) / double(llama_model_n_params(model));
    const double embedding = double(nVocab) * double(llama_model_n_embd(model)) * perParam;
    const double bytes = double(llama_model_size(model)) - embedding + embedding / nVocab;
    std::printf("llama.cpp: %.3f GB of weights per token\n", bytes / 1e9);

    const char* prompt = "Tell me a long story about a cat.";
    std::vector<llama_token> tokens(64);
    tokens.resize(size_t(llama_tokenize(vocab, prompt, int(std::strlen(prompt)), tokens.data(), 64, true, false)));
    llama_decode(ctx, llama_batch_get_one(tokens.data(), int(tokens.size())));
    auto step = [&] {
        const float* logits = llama_get_logits_ith(ctx, -1);
        llama_token next = llama_token(std::max_element(logits, logits + nVocab) - logits);
        llama_decode(ctx, llama_batch_get_one(&next, 1));
    };
    for (int i = 0; i < 3; ++i) step();
    pkvbench::decodeBlocks("llama.cpp", blocks, steps, bytes, step);
    llama_free(ctx);
    llama_model_free(model);
}
