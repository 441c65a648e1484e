// Times every op family of the CUDA backend on LLaVA-7B-sized shapes and prints the achieved
// fraction of the bound that limits it: memory bandwidth for element-wise ops, norms, GEMV and
// decode attention; arithmetic for GEMM and prefill attention. See README.md for reading it.
//
//   pkv_cuda_bench [--peak-gbps G] [--peak-f32-tflops T] [--peak-f16-tflops T]
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_probe.h"
#include "engine/io/safetensors.h"

using namespace pkv;

namespace {

struct Peaks {
    double bytesPerSecond = 0;
    double f32FlopsPerSecond = 0;  // CUDA cores, FMA = 2 flops
    double f16FlopsPerSecond = 0;  // tensor cores, f16 inputs, f32 accumulation, dense
};

// Peaks from the device's clocks and a per-architecture table of per-SM throughput. GeForce parts
// of 8.6/8.9 run f16-with-f32-accumulation at half the rate of the professional parts listed
// here; pass --peak-f16-tflops for them.
Peaks devicePeaks() {
    int clockKHz = 0, memClockKHz = 0, busBits = 0, sms = 0, major = 0, minor = 0;
    PKV_CUDA_CHECK(cudaDeviceGetAttribute(&clockKHz, cudaDevAttrClockRate, 0));
    PKV_CUDA_CHECK(cudaDeviceGetAttribute(&memClockKHz, cudaDevAttrMemoryClockRate, 0));
    PKV_CUDA_CHECK(cudaDeviceGetAttribute(&busBits, cudaDevAttrGlobalMemoryBusWidth, 0));
    PKV_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    PKV_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
    PKV_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0));
    const int cc = major * 10 + minor;
    const double f32PerClock = cc == 80 ? 128 : 256;                              // 64 or 128 FMA lanes per SM
    const double f16PerClock = cc == 80 ? 2048 : cc >= 90 ? 4096 : 512;          // dense tensor flops per SM
    Peaks p;
    p.bytesPerSecond = 2.0 * memClockKHz * 1e3 * busBits / 8.0;  // double data rate
    p.f32FlopsPerSecond = double(sms) * clockKHz * 1e3 * f32PerClock;
    p.f16FlopsPerSecond = double(sms) * clockKHz * 1e3 * f16PerClock;
    return p;
}

// Mean milliseconds per call over enough repetitions, timed with events on the backend's stream.
// The events are owned so that a failing op (which throws) does not leak them.
double timeMs(cuda::CudaBackend& be, const std::function<void()>& op) {
    op();  // warm-up: scratch growth, cuBLAS heuristics
    struct Event {
        cudaEvent_t e = nullptr;
        Event() { PKV_CUDA_CHECK(cudaEventCreate(&e)); }
        ~Event() {
            if (cudaEventDestroy(e) != cudaSuccess) cuda::forgetError();
        }
    } start, stop;
    const int reps = 20;
    PKV_CUDA_CHECK(cudaEventRecord(start.e, be.stream()));
    for (int i = 0; i < reps; ++i) op();
    PKV_CUDA_CHECK(cudaEventRecord(stop.e, be.stream()));
    PKV_CUDA_CHECK(cudaEventSynchronize(stop.e));
    float ms = 0;
    PKV_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e, stop.e));
    return double(ms) / reps;
}

enum class Bound { Memory, F32, F16Tensor };

// `work` is bytes moved for Bound::Memory, else floating-point operations.
void report(const char* name, double ms, Bound bound, double work, const Peaks& peaks) {
    const double s = ms * 1e-3;
    if (bound == Bound::Memory) {
        std::printf("%-44s %9.3f ms %9.1f GB/s     %5.1f%% of bandwidth\n", name, ms, work / s * 1e-9,
                    100.0 * work / s / peaks.bytesPerSecond);
        return;
    }
    const double peak = bound == Bound::F32 ? peaks.f32FlopsPerSecond : peaks.f16FlopsPerSecond;
    std::printf("%-44s %9.3f ms %9.1f TFLOP/s  %5.1f%% of %s peak\n", name, ms, work / s * 1e-12,
                100.0 * work / s / peak, bound == Bound::F32 ? "f32" : "f16 tensor");
}

// A weight of random f16 values in [-1, 1) held on the host, uploaded by the backend.
struct HostWeight {
    std::vector<uint16_t> bits;
    TensorView view;
    HostWeight(int64_t rows, int64_t cols, std::mt19937& rng) : bits(size_t(rows * cols)) {
        std::uniform_int_distribution<int> mant(0, 1023), exp(8, 14), sign(0, 1);
        for (auto& b : bits) b = uint16_t(sign(rng) << 15 | exp(rng) << 10 | mant(rng));
        view.name = "bench";
        view.dtypeText = "F16";
        view.dtypeSupported = true;
        view.dtype = DType::F16;
        view.shape = {rows, cols};
        view.data = reinterpret_cast<const std::byte*>(bits.data());
        view.nbytes = bits.size() * 2;
    }
};

Tensor randomTensor(Backend& be, int64_t rows, int64_t cols, std::mt19937& rng) {
    std::normal_distribution<float> normal(0.f, 1.f);
    std::vector<float> host(size_t(rows * cols));
    for (float& x : host) x = normal(rng);
    return be.upload(host.data(), rows, cols);
}

}  // namespace

int main(int argc, char** argv) {
    const cuda::DeviceProbe probe = cuda::probeDevice();
    if (!probe.usable) {
        std::fprintf(stderr, "pkv_cuda_bench: no CUDA device: %s\n", probe.reason.c_str());
        return 2;
    }
    try {
        Peaks peaks = devicePeaks();
        for (int i = 1; i + 1 < argc; i += 2) {
            const double v = std::atof(argv[i + 1]);
            if (!std::strcmp(argv[i], "--peak-gbps")) peaks.bytesPerSecond = v * 1e9;
            if (!std::strcmp(argv[i], "--peak-f32-tflops")) peaks.f32FlopsPerSecond = v * 1e12;
            if (!std::strcmp(argv[i], "--peak-f16-tflops")) peaks.f16FlopsPerSecond = v * 1e12;
        }
        std::printf("%s: bounds %.0f GB/s, %.1f TFLOP/s f32, %.1f TFLOP/s f16 tensor\n\n", probe.name.c_str(),
                    peaks.bytesPerSecond * 1e-9, peaks.f32FlopsPerSecond * 1e-12, peaks.f16FlopsPerSecond * 1e-12);

        cuda::CudaBackend be;
        std::mt19937 rng(7);
        const int64_t D = 4096, F = 11008, V = 32064, H = 32, d = 128, N = 2048;
        HostWeight gamma(1, D, rng), wq(D, D, rng), wUp(F, D, rng), embed(V, D, rng);
        const Weight g = be.weight(gamma.view, 1, D), q = be.weight(wq.view, D, D), up = be.weight(wUp.view, F, D),
                     table = be.weight(embed.view, V, D);

        Tensor x = randomTensor(be, N, D, rng), y = be.alloc(N, D);
        Tensor gate = randomTensor(be, N, F, rng), upAct = randomTensor(be, N, F, rng), mid = be.alloc(N, F);
        report("rmsNorm [2048, 4096]", timeMs(be, [&] { be.rmsNorm(x, g, 1e-5f, y); }), Bound::Memory, 2.0 * N * D * 4, peaks);
        report("layerNorm [2048, 4096]", timeMs(be, [&] { be.layerNorm(x, g, g, 1e-5f, y); }), Bound::Memory,
               2.0 * N * D * 4, peaks);
        std::vector<int64_t> positions(static_cast<size_t>(N));
        std::iota(positions.begin(), positions.end(), 0);
        report("rope [2048, 32 x 128]", timeMs(be, [&] { be.rope(y, int(H), int(d), positions, 10000.f); }), Bound::Memory,
               2.0 * N * D * 4, peaks);
        report("siluMul [2048, 11008]", timeMs(be, [&] { be.siluMul(gate, upAct, mid); }), Bound::Memory, 3.0 * N * F * 4, peaks);
        report("add [2048, 4096]", timeMs(be, [&] { be.add(y, x); }), Bound::Memory, 3.0 * N * D * 4, peaks);
        std::vector<int> ids(static_cast<size_t>(N));
        for (int& id : ids) id = int(rng() % V);
        report("embedRows 2048 of [32064, 4096] f16", timeMs(be, [&] { be.embedRows(table, ids, y); }), Bound::Memory,
               double(N) * D * (2 + 4), peaks);

        Tensor x1 = randomTensor(be, 1, D, rng), y1 = be.alloc(1, F), yq = be.alloc(1, D);
        report("linear n=1 [4096] x [4096, 4096] f16", timeMs(be, [&] { be.linear(x1, q, nullptr, yq); }), Bound::Memory,
               double(D) * D * 2, peaks);
        report("linear n=1 [4096] x [11008, 4096] f16", timeMs(be, [&] { be.linear(x1, up, nullptr, y1); }), Bound::Memory,
               double(F) * D * 2, peaks);
        Tensor yUp = be.alloc(N, F);
        report("linear n=2048 x [11008, 4096] f16", timeMs(be, [&] { be.linear(x, up, nullptr, yUp); }), Bound::F16Tensor,
               2.0 * N * D * F, peaks);

        // Attention over a cache holding the 2048 prompt tokens (GQA off: 32 KV heads, as 7B).
        auto cache = be.createKvCache(1, int(H * d), DType::F32);
        Tensor keys = randomTensor(be, N, D, rng), values = randomTensor(be, N, D, rng);
        cache->append(0, keys, values, 0);
        const AttentionShape shape{int(H), int(H), int(d), 1.f / std::sqrt(float(d))};
        Tensor qs = randomTensor(be, N, D, rng), out = be.alloc(N, D);
        const double causalFlops = 4.0 * H * d * double(N) * double(N) / 2;  // QK^T and PV over half the pairs
        report("prefill attention 2048 x 2048, 32 x 128",
               timeMs(be, [&] { be.cachedAttention(qs, *cache, 0, shape, out, nullptr); }), Bound::F32, causalFlops, peaks);
        std::vector<float> importance, window;
        AttentionProbe pr{&importance, &window, 64};
        report("  + importance and 64 window rows",
               timeMs(be, [&] { be.cachedAttention(qs, *cache, 0, shape, out, &pr); }), Bound::F32, 1.5 * causalFlops, peaks);
        Tensor q1 = randomTensor(be, 1, D, rng), o1 = be.alloc(1, D);
        report("decode attention 1 x 2048, 32 x 128",
               timeMs(be, [&] { be.cachedAttention(q1, *cache, 0, shape, o1, nullptr); }), Bound::Memory, 2.0 * N * D * 4, peaks);

        std::vector<int64_t> keep;
        for (int64_t i = 0; i < N; i += 2) keep.push_back(i);
        report("KV gather 1024 of 2048 entries", timeMs(be, [&] {
                   auto c = cache->clone();
                   c->gather(0, keep);
               }), Bound::Memory,
               2.0 * N * D * 4 * 2 + 2.0 * (N / 2) * D * 4 * 2, peaks);
        Tensor logits = randomTensor(be, 1, V, rng);
        report("argmax [1, 32064]", timeMs(be, [&] { be.argmaxRows(logits); }), Bound::Memory, double(V) * 4, peaks);
        std::printf("\n(KV gather is timed with the clone it works on; host-synchronising ops include the copy back.)\n");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pkv_cuda_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
