// make_bench_model: writes a complete llava-hf model folder with random weights and the real
// shapes of LLaVA-1.5-7B or a TinyLLaVA-style 1.1B (TinyLlama decoder with grouped-query
// attention, CLIP ViT-L/14-336 tower), so `prefixkv bench` measures speed on the layout users
// run without downloading a checkpoint. The values mean nothing; only sizes and layout matter.
//
//   make_bench_model --shape 7b|1.1b --dtype f16|bf16 --out DIR [--tokenizer FILE] [--seed N]
//
// Weights are written in streaming fashion (two 64 MiB buffers in memory), in shards of at most
// 5 GB with a model.safetensors.index.json when they do not fit one, as the hub does.
#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "engine/common/dtype.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kImageTokenId = 32000;
constexpr int kPadTokenId = 32001;
constexpr uint64_t kMaxShardBytes = 5'000'000'000ULL;  // the hub's "5GB" shard limit
constexpr int64_t kBlockElems = 1 << 20;                // one PRNG stream per block: thread-count independent

struct Shape {
    const char* name;
    int hidden, intermediate, layers, heads, kvHeads, vocab, context;
    double rmsEps;
};

// LLaVA-1.5-7B (Vicuna-7B) and TinyLlama-1.1B decoders; both use CLIP ViT-L/14-336.
const Shape kShapes[] = {
    {"7b", 4096, 11008, 32, 32, 32, 32064, 4096, 1e-5},
    {"1.1b", 2048, 5632, 22, 32, 4, 32064, 2048, 1e-5},
};

struct Vision {
    int hidden = 1024, intermediate = 4096, layers = 24, heads = 16, imageSize = 336, patchSize = 14;
    int positions() const { return (imageSize / patchSize) * (imageSize / patchSize) + 1; }
};

// Norm gains are ones, as models are initialised: random gains near zero would shrink the
// activations layer by layer into subnormals, whose arithmetic is slow on some CPUs.
enum class Fill { Normal, Ones };

struct TensorSpec {
    std::string name;
    std::vector<int64_t> shape;
    Fill fill;
    int64_t numel() const {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        return n;
    }
};

std::vector<TensorSpec> tensorsFor(const Shape& s, const Vision& v) {
    std::vector<TensorSpec> out;
    auto add = [&](std::string name, std::vector<int64_t> shape, Fill fill = Fill::Normal) {
        out.push_back({std::move(name), std::move(shape), fill});
    };
    const int64_t D = s.hidden, F = s.intermediate, headDim = s.hidden / s.heads, kv = int64_t(s.kvHeads) * headDim;
    add("language_model.model.embed_tokens.weight", {s.vocab, D});
    for (int l = 0; l < s.layers; ++l) {
        const std::string p = "language_model.model.layers." + std::to_string(l) + ".";
        add(p + "input_layernorm.weight", {D}, Fill::Ones);
        add(p + "self_attn.q_proj.weight", {D, D});
        add(p + "self_attn.k_proj.weight", {kv, D});
        add(p + "self_attn.v_proj.weight", {kv, D});
        add(p + "self_attn.o_proj.weight", {D, D});
        add(p + "post_attention_layernorm.weight", {D}, Fill::Ones);
        add(p + "mlp.gate_proj.weight", {F, D});
        add(p + "mlp.up_proj.weight", {F, D});
        add(p + "mlp.down_proj.weight", {D, F});
    }
    add("language_model.model.norm.weight", {D}, Fill::Ones);
    add("language_model.lm_head.weight", {s.vocab, D});

    const int64_t VD = v.hidden, VF = v.intermediate;
    add("multi_modal_projector.linear_1.weight", {D, VD});
    add("multi_modal_projector.linear_1.bias", {D});
    add("multi_modal_projector.linear_2.weight", {D, D});
    add("multi_modal_projector.linear_2.bias", {D});

    const std::string vm = "vision_tower.vision_model.";
    add(vm + "embeddings.class_embedding", {VD});
    add(vm + "embeddings.patch_embedding.weight", {VD, 3, v.patchSize, v.patchSize});
    add(vm + "embeddings.position_embedding.weight", {v.positions(), VD});
    add(vm + "pre_layrnorm.weight", {VD}, Fill::Ones);  // sic: the hub's spelling
    add(vm + "pre_layrnorm.bias", {VD});
    for (int l = 0; l < v.layers; ++l) {
        const std::string p = vm + "encoder.layers." + std::to_string(l) + ".";
        add(p + "layer_norm1.weight", {VD}, Fill::Ones);
        add(p + "layer_norm1.bias", {VD});
        for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
            add(p + "self_attn." + proj + ".weight", {VD, VD});
            add(p + "self_attn." + proj + ".bias", {VD});
        }
        add(p + "layer_norm2.weight", {VD}, Fill::Ones);
        add(p + "layer_norm2.bias", {VD});
        add(p + "mlp.fc1.weight", {VF, VD});
        add(p + "mlp.fc1.bias", {VF});
        add(p + "mlp.fc2.weight", {VD, VF});
        add(p + "mlp.fc2.bias", {VD});
    }
    add(vm + "post_layernorm.weight", {VD}, Fill::Ones);
    add(vm + "post_layernorm.bias", {VD});
    return out;
}

json configJson(const Shape& s, const Vision& v, const std::string& torchDtype) {
    const json text = {
        {"model_type", "llama"},
        {"architectures", {"LlamaForCausalLM"}},
        {"hidden_size", s.hidden},
        {"intermediate_size", s.intermediate},
        {"num_hidden_layers", s.layers},
        {"num_attention_heads", s.heads},
        {"num_key_value_heads", s.kvHeads},
        {"vocab_size", s.vocab},
        {"max_position_embeddings", s.context},
        {"rms_norm_eps", s.rmsEps},
        {"rope_theta", 10000.0},
        {"hidden_act", "silu"},
        {"tie_word_embeddings", false},
        {"bos_token_id", 1},
        {"eos_token_id", 2},
        {"pad_token_id", kPadTokenId},
        {"torch_dtype", torchDtype},
    };
    const json vision = {
        {"model_type", "clip_vision_model"},
        {"hidden_size", v.hidden},
        {"intermediate_size", v.intermediate},
        {"num_hidden_layers", v.layers},
        {"num_attention_heads", v.heads},
        {"image_size", v.imageSize},
        {"patch_size", v.patchSize},
        {"num_channels", 3},
        {"layer_norm_eps", 1e-5},
        {"hidden_act", "quick_gelu"},
        {"projection_dim", 768},
    };
    return {
        {"architectures", {"LlavaForConditionalGeneration"}},
        {"model_type", "llava"},
        {"ignore_index", -100},
        {"image_token_index", kImageTokenId},
        {"pad_token_id", kPadTokenId},
        {"projector_hidden_act", "gelu"},
        {"vision_feature_layer", -2},
        {"vision_feature_select_strategy", "default"},
        {"tie_word_embeddings", false},
        {"torch_dtype", torchDtype},
        {"text_config", text},
        {"vision_config", vision},
    };
}

// llava-hf's CLIPImageProcessor settings for 336-pixel CLIP.
json preprocessorJson(const Vision& v) {
    return {
        {"image_processor_type", "CLIPImageProcessor"},
        {"processor_class", "LlavaProcessor"},
        {"crop_size", {{"height", v.imageSize}, {"width", v.imageSize}}},
        {"size", {{"shortest_edge", v.imageSize}}},
        {"do_center_crop", true},
        {"do_convert_rgb", true},
        {"do_normalize", true},
        {"do_rescale", true},
        {"do_resize", true},
        {"image_mean", {0.48145466, 0.4578275, 0.40821073}},
        {"image_std", {0.26862954, 0.26130258, 0.27577711}},
        {"resample", 3},
        {"rescale_factor", 1.0 / 255.0},
    };
}

uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// 65536 values drawn once from N(0, 0.02), stored in the file's dtype; the weights are then
// uniform picks from this table, so generating an element costs 16 random bits and one load.
std::vector<uint16_t> normalTable(bool bf16, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.f, 0.02f);
    std::vector<uint16_t> table(1 << 16);
    for (uint16_t& t : table) {
        const float f = normal(rng);
        if (bf16) {
            t = pkv::floatToBf16(f);
        } else {
            const _Float16 h = static_cast<_Float16>(f);
            std::memcpy(&t, &h, 2);
        }
    }
    return table;
}

// Fills elements [first, first + n) of the weight stream. Each kBlockElems block of the stream
// has its own PRNG seeded by its index, and each 64-bit draw gives the four elements of an
// aligned group, so the output depends neither on the number of threads nor on chunking.
void fillRandom(uint16_t* out, int64_t first, int64_t n, const std::vector<uint16_t>& table, uint64_t seed) {
    const uint16_t* values = table.data();
    const int64_t firstBlock = first / kBlockElems, lastBlock = (first + n - 1) / kBlockElems;
#pragma omp parallel for schedule(static)
    for (int64_t b = firstBlock; b <= lastBlock; ++b) {
        const int64_t lo = std::max(first, b * kBlockElems), hi = std::min(first + n, (b + 1) * kBlockElems);
        uint64_t state = splitmix64(seed ^ uint64_t(b) * 0xd1342543de82ef95ULL);
        for (int64_t g = b * kBlockElems; g < hi; g += 4) {
            state = splitmix64(state);
            if (g < lo - 3) continue;
            for (int k = 0; k < 4; ++k)
                if (g + k >= lo && g + k < hi) out[g + k - first] = values[(state >> (16 * k)) & 0xffff];
        }
    }
}

// A file written with O_DIRECT from two aligned buffers: while one is on its way to the disk, the
// other is being filled. Buffered writes of many gigabytes run into the kernel's dirty-page
// throttling and fill the page cache with data this program never reads back.
class DirectWriter {
public:
    static constexpr size_t kBufferBytes = 64 << 20;
    static constexpr size_t kAlign = 4096;

    explicit DirectWriter(const fs::path& path) : path_(path) {
        fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644);
        // Some file systems (tmpfs) refuse O_DIRECT; the aligned buffers work without it too.
        if (fd_ < 0 && errno == EINVAL) fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd_ < 0) fail("cannot create");
        for (auto& b : buffers_) b.reset(static_cast<std::byte*>(std::aligned_alloc(kAlign, kBufferBytes)));
    }
    ~DirectWriter() {
        if (pending_.valid()) pending_.wait();
        if (fd_ >= 0) ::close(fd_);
    }

    // Room for up to `maxBytes` more bytes, contiguous and 2-byte aligned; commit() what was written.
    std::byte* reserve(size_t maxBytes, size_t* granted) {
        if (used_ == kBufferBytes) flush();
        *granted = std::min(maxBytes, kBufferBytes - used_);
        return buffers_[current_].get() + used_;
    }
    void commit(size_t bytes) {
        used_ += bytes;
        total_ += bytes;
    }
    void append(const void* data, size_t bytes) {
        for (size_t done = 0; done < bytes;) {
            size_t n = 0;
            std::byte* dst = reserve(bytes - done, &n);
            std::memcpy(dst, static_cast<const std::byte*>(data) + done, n);
            commit(n);
            done += n;
        }
    }
    // Writes the last, partial buffer padded to the alignment O_DIRECT needs, then cuts the padding.
    void close() {
        const size_t padded = (used_ + kAlign - 1) / kAlign * kAlign;
        std::memset(buffers_[current_].get() + used_, 0, padded - used_);
        used_ = padded;
        flush();
        pending_.get();
        if (ftruncate(fd_, off_t(total_)) != 0) fail("cannot set the size of");
        if (::close(fd_) != 0) fail("cannot close");
        fd_ = -1;
    }

private:
    void flush() {
        if (pending_.valid()) pending_.get();
        const std::byte* data = buffers_[current_].get();
        const size_t bytes = used_;
        pending_ = std::async(std::launch::async, [this, data, bytes] {
            for (size_t done = 0; done < bytes;) {
                const ssize_t w = ::write(fd_, data + done, bytes - done);
                if (w <= 0) fail("cannot write");
                done += size_t(w);
            }
        });
        current_ ^= 1;
        used_ = 0;
    }
    [[noreturn]] void fail(const char* what) const {
        throw std::runtime_error(std::string(what) + " " + path_.string() + ": " + std::strerror(errno));
    }

    struct Free {
        void operator()(std::byte* p) const { std::free(p); }
    };
    fs::path path_;
    int fd_ = -1;
    std::unique_ptr<std::byte, Free> buffers_[2];
    int current_ = 0;
    size_t used_ = 0;
    uint64_t total_ = 0;
    std::future<void> pending_;
};

struct Shard {
    std::string file;
    std::vector<const TensorSpec*> tensors;
    uint64_t bytes = 0;
};

std::vector<Shard> planShards(const std::vector<TensorSpec>& tensors) {
    std::vector<Shard> shards(1);
    for (const TensorSpec& t : tensors) {
        const uint64_t bytes = uint64_t(t.numel()) * 2;
        if (shards.back().bytes > 0 && shards.back().bytes + bytes > kMaxShardBytes) shards.emplace_back();
        shards.back().tensors.push_back(&t);
        shards.back().bytes += bytes;
    }
    for (size_t i = 0; i < shards.size(); ++i) {
        char name[64];
        std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
        shards[i].file = shards.size() == 1 ? "model.safetensors" : name;
    }
    return shards;
}

// Header: 8-byte little-endian length, then JSON padded with spaces to 8 bytes so the data
// section (and every tensor in it) starts aligned in the memory map.
std::string shardHeader(const Shard& s, const std::string& dtype) {
    json h = json::object();
    h["__metadata__"] = {{"format", "pt"}};
    uint64_t offset = 0;
    for (const TensorSpec* t : s.tensors) {
        const uint64_t bytes = uint64_t(t->numel()) * 2;
        h[t->name] = {{"dtype", dtype}, {"shape", t->shape}, {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    std::string text = h.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char((uint64_t(text.size()) >> (8 * i)) & 0xff);
    return out + text;
}

class Progress {
public:
    explicit Progress(uint64_t total) : total_(total), t0_(Clock::now()) {}
    void add(uint64_t bytes) {
        done_ += bytes;
        const double s = std::chrono::duration<double>(Clock::now() - t0_).count();
        if (s - lastPrint_ < 1.0 && done_ < total_) return;
        lastPrint_ = s;
        std::fprintf(stderr, "\r  %6.2f / %.2f GB  %5.1f%%  %.2f GB/s", double(done_) / 1e9, double(total_) / 1e9,
                     100.0 * double(done_) / double(total_), double(done_) / 1e9 / std::max(s, 1e-9));
        if (done_ >= total_) std::fputc('\n', stderr);
    }
    double seconds() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }

private:
    uint64_t total_, done_ = 0;
    Clock::time_point t0_;
    double lastPrint_ = -1;
};

void writeShard(const fs::path& path, const Shard& s, const std::string& dtype, const std::vector<uint16_t>& table,
                uint64_t seed, uint64_t& streamPos, Progress& progress) {
    DirectWriter out(path);
    const std::string header = shardHeader(s, dtype);
    out.append(header.data(), header.size());
    const uint16_t one = dtype == "BF16" ? pkv::floatToBf16(1.f) : uint16_t(0x3c00);
    for (const TensorSpec* t : s.tensors) {
        const int64_t n = t->numel();
        for (int64_t done = 0; done < n;) {
            size_t granted = 0;
            auto* dst = reinterpret_cast<uint16_t*>(out.reserve(size_t(n - done) * 2, &granted));
            const int64_t m = int64_t(granted / 2);
            if (t->fill == Fill::Ones)
                std::fill_n(dst, m, one);
            else
                fillRandom(dst, int64_t(streamPos) + done, m, table, seed);
            out.commit(size_t(m) * 2);
            progress.add(uint64_t(m) * 2);
            done += m;
        }
        streamPos += uint64_t(n);
    }
    out.close();
}

void writeText(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + path.string());
}

int usage(const char* why) {
    if (why) std::fprintf(stderr, "make_bench_model: %s\n", why);
    std::fputs("usage: make_bench_model --shape 7b|1.1b --dtype f16|bf16 --out DIR [--tokenizer FILE] [--seed N]\n",
               stderr);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string shapeName, dtypeName = "f16", outDir, tokenizer = PKV_SOURCE_DIR "/tests/fixtures/tokenizer/tokenizer.model";
    uint64_t seed = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            usage(nullptr);
            return 0;
        }
        if (i + 1 >= argc) return usage(("missing value after " + a).c_str());
        const std::string v = argv[++i];
        if (a == "--shape") shapeName = v;
        else if (a == "--dtype") dtypeName = v;
        else if (a == "--out") outDir = v;
        else if (a == "--tokenizer") tokenizer = v;
        else if (a == "--seed") seed = std::strtoull(v.c_str(), nullptr, 10);
        else return usage(("unknown option " + a).c_str());
    }
    const Shape* shape = nullptr;
    for (const Shape& s : kShapes)
        if (shapeName == s.name) shape = &s;
    if (!shape) return usage("--shape must be 7b or 1.1b");
    if (dtypeName != "f16" && dtypeName != "bf16") return usage("--dtype must be f16 or bf16");
    if (outDir.empty()) return usage("--out DIR is required");

    try {
        const fs::path dir(outDir);
        fs::create_directories(dir);
        const bool bf16 = dtypeName == "bf16";
        const std::string stDtype = bf16 ? "BF16" : "F16";
        const Vision vision;
        const std::vector<TensorSpec> tensors = tensorsFor(*shape, vision);
        const std::vector<Shard> shards = planShards(tensors);

        writeText(dir / "config.json", configJson(*shape, vision, bf16 ? "bfloat16" : "float16").dump(2) + "\n");
        writeText(dir / "preprocessor_config.json", preprocessorJson(vision).dump(2) + "\n");
        writeText(dir / "added_tokens.json", json{{"<image>", kImageTokenId}, {"<pad>", kPadTokenId}}.dump(2) + "\n");
        fs::copy_file(tokenizer, dir / "tokenizer.model", fs::copy_options::overwrite_existing);
        // Stale weights from an earlier run with another shard count would be loaded beside the new ones.
        for (const auto& e : fs::directory_iterator(dir))
            if (e.path().extension() == ".safetensors" || e.path().filename() == "model.safetensors.index.json")
                fs::remove(e.path());

        uint64_t total = 0;
        for (const Shard& s : shards) total += s.bytes;
        std::fprintf(stderr, "make_bench_model: %s %s, %zu tensors, %.2f GB in %zu file(s), %d threads -> %s\n",
                     shape->name, dtypeName.c_str(), tensors.size(), double(total) / 1e9, shards.size(),
                     omp_get_max_threads(), outDir.c_str());
        const std::vector<uint16_t> table = normalTable(bf16, seed);
        Progress progress(total);
        uint64_t streamPos = 0;
        for (const Shard& s : shards) writeShard(dir / s.file, s, stDtype, table, seed, streamPos, progress);

        if (shards.size() > 1) {
            json index = {{"metadata", {{"total_size", total}}}, {"weight_map", json::object()}};
            for (const Shard& s : shards)
                for (const TensorSpec* t : s.tensors) index["weight_map"][t->name] = s.file;
            writeText(dir / "model.safetensors.index.json", index.dump(2) + "\n");
        }
        std::fprintf(stderr, "make_bench_model: done in %.1f s\n", progress.seconds());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "make_bench_model: %s\n", e.what());
        return 1;
    }
}
