#include <algorithm>
#include <string>
#include <type_traits>

#include "cuda/attention.cuh"
#include "cuda/cuda_check.h"
#include "cuda/device_util.cuh"

namespace pkv::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kTileKeys = 32;  // one key per lane
constexpr int kQueriesPerWarp = 4;
constexpr int kQueriesPerBlock = kWarps * kQueriesPerWarp;
constexpr int kProbeQueries = 32;  // queries per tile in the probe pass

template <int kMaxDim>
constexpr int forwardSharedFloats() {
    return kTileKeys * (kMaxDim + 1) + kTileKeys * kMaxDim + kQueriesPerBlock * kMaxDim + kWarps * kTileKeys;
}

template <int kMaxDim>
constexpr int probeSharedFloats() {
    return kTileKeys * (kMaxDim + 1) + kProbeQueries * kMaxDim + kProbeQueries + kWarps * kTileKeys;
}

// Keys [tile, tile + 32) of one KV head into rows of `stride` floats, zero beyond `end` and
// beyond headDim, so dot products may run over padding.
template <int kMaxDim>
__device__ void loadKeyTile(float* dst, int stride, const float* src, int64_t kvStride, int64_t tile, int64_t end,
                            int64_t column, int headDim) {
    for (int idx = threadIdx.x; idx < kTileKeys * kMaxDim; idx += kThreads) {
        const int j = idx / kMaxDim, t = idx % kMaxDim;
        const int64_t key = tile + j;
        dst[j * stride + t] = (key < end && t < headDim) ? src[key * kvStride + column + t] : 0.f;
    }
}

// Pass 1. grid (query tiles, heads, key splits). Each warp owns 4 queries; per key tile, lane j
// scores key j for each of them, then all lanes update the outputs (lane owns dims lane + 32c).
template <int kMaxDim>
__global__ void __launch_bounds__(kThreads) attentionKernel(AttentionArgs a, int64_t keysPerSplit, float* partial,
                                                            float* lse) {
    constexpr int kDimsPerLane = kMaxDim / 32;
    extern __shared__ float smem[];
    float* ks = smem;                                   // [32][kMaxDim + 1]: conflict-free column reads
    float* vs = ks + kTileKeys * (kMaxDim + 1);         // [32][kMaxDim]
    float* qs = vs + kTileKeys * kMaxDim;               // [16][kMaxDim]
    float* ps = qs + kQueriesPerBlock * kMaxDim;        // [warps][32]

    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int d = a.headDim, h = blockIdx.y;
    const int64_t kvColumn = int64_t(h / (a.numHeads / a.numKvHeads)) * d;
    const int64_t q0 = int64_t(blockIdx.x) * kQueriesPerBlock;
    const int64_t qLast = min(a.nq, q0 + kQueriesPerBlock) - 1;
    const int64_t keyBegin = int64_t(blockIdx.z) * keysPerSplit;
    int64_t keyEnd = min(a.nk, keyBegin + keysPerSplit);
    if (a.causal) keyEnd = min(keyEnd, a.keyOffset + qLast + 1);

    for (int idx = threadIdx.x; idx < kQueriesPerBlock * kMaxDim; idx += kThreads) {
        const int r = idx / kMaxDim, t = idx % kMaxDim;
        const int64_t i = q0 + r;
        qs[idx] = (i < a.nq && t < d) ? a.q[i * a.qStride + int64_t(h) * d + t] : 0.f;
    }

    float m[kQueriesPerWarp], l[kQueriesPerWarp], o[kQueriesPerWarp][kDimsPerLane];
#pragma unroll
    for (int qi = 0; qi < kQueriesPerWarp; ++qi) {
        m[qi] = -INFINITY;
        l[qi] = 0.f;
#pragma unroll
        for (int c = 0; c < kDimsPerLane; ++c) o[qi][c] = 0.f;
    }

    for (int64_t tile = keyBegin; tile < keyEnd; tile += kTileKeys) {
        __syncthreads();  // the previous tile (and the query load) is finished with
        loadKeyTile<kMaxDim>(ks, kMaxDim + 1, a.k, a.kvStride, tile, keyEnd, kvColumn, d);
        for (int idx = threadIdx.x; idx < kTileKeys * kMaxDim; idx += kThreads) {
            const int j = idx / kMaxDim, t = idx % kMaxDim;
            const int64_t key = tile + j;
            vs[idx] = (key < keyEnd && t < d) ? a.v[key * a.kvStride + kvColumn + t] : 0.f;
        }
        __syncthreads();
        const int64_t key = tile + lane;
#pragma unroll
        for (int qi = 0; qi < kQueriesPerWarp; ++qi) {
            const int r = warp * kQueriesPerWarp + qi;
            const int64_t i = q0 + r;
            if (i >= a.nq) break;  // warp-uniform
            const int64_t visible = a.causal ? min(keyEnd, a.keyOffset + i + 1) : keyEnd;
            float s = -INFINITY;
            if (key < visible) {
                float dot = 0.f;
                for (int t = 0; t < d; ++t) dot += qs[r * kMaxDim + t] * ks[lane * (kMaxDim + 1) + t];
                s = dot * a.scale;
            }
            const float mNew = fmaxf(m[qi], warpMax(s));
            if (mNew == -INFINITY) continue;  // nothing visible yet (warp-uniform)
            const float p = s == -INFINITY ? 0.f : expf(s - mNew);
            const float correction = m[qi] == -INFINITY ? 0.f : expf(m[qi] - mNew);
            l[qi] = l[qi] * correction + warpSum(p);
            m[qi] = mNew;
            ps[warp * kTileKeys + lane] = p;
            __syncwarp();
#pragma unroll
            for (int c = 0; c < kDimsPerLane; ++c) {
                float acc = o[qi][c] * correction;
                for (int j = 0; j < kTileKeys; ++j) acc += ps[warp * kTileKeys + j] * vs[j * kMaxDim + c * 32 + lane];
                o[qi][c] = acc;
            }
            __syncwarp();  // ps is rewritten for the next query
        }
    }

#pragma unroll
    for (int qi = 0; qi < kQueriesPerWarp; ++qi) {
        const int64_t i = q0 + warp * kQueriesPerWarp + qi;
        if (i >= a.nq) break;
        if (partial) {
            float* dst = partial + ((int64_t(blockIdx.z) * a.numHeads + h) * a.nq + i) * (d + 2);
            if (lane == 0) {
                dst[0] = m[qi];
                dst[1] = l[qi];
            }
#pragma unroll
            for (int c = 0; c < kDimsPerLane; ++c)
                if (c * 32 + lane < d) dst[2 + c * 32 + lane] = o[qi][c];
        } else {
            const float inv = l[qi] > 0.f ? 1.f / l[qi] : 0.f;
            float* dst = a.out + i * a.outStride + int64_t(h) * d;
#pragma unroll
            for (int c = 0; c < kDimsPerLane; ++c)
                if (c * 32 + lane < d) dst[c * 32 + lane] = o[qi][c] * inv;
            if (lse && lane == 0) lse[int64_t(h) * a.nq + i] = m[qi] + logf(l[qi]);
        }
    }
}

// Merges the key splits of pass 1. grid (nq, heads); threads stride over the head's dims.
__global__ void combineSplitsKernel(AttentionArgs a, int splits, const float* partial, float* lse) {
    const int64_t i = blockIdx.x;
    const int h = blockIdx.y, d = a.headDim;
    auto at = [&](int s) { return partial + ((int64_t(s) * a.numHeads + h) * a.nq + i) * (d + 2); };
    float mMax = -INFINITY;
    for (int s = 0; s < splits; ++s) mMax = fmaxf(mMax, at(s)[0]);
    float total = 0.f;
    for (int s = 0; s < splits; ++s) {
        const float ms = at(s)[0];
        if (ms != -INFINITY) total += expf(ms - mMax) * at(s)[1];
    }
    const float inv = total > 0.f ? 1.f / total : 0.f;
    for (int t = threadIdx.x; t < d; t += blockDim.x) {
        float acc = 0.f;
        for (int s = 0; s < splits; ++s) {
            const float ms = at(s)[0];
            if (ms != -INFINITY) acc += expf(ms - mMax) * at(s)[2 + t];
        }
        a.out[i * a.outStride + int64_t(h) * d + t] = acc * inv;
    }
    if (lse && threadIdx.x == 0) lse[int64_t(h) * a.nq + i] = mMax + logf(total);
}

// Pass 2. grid (key tiles, query chunks). Lane j owns key tile + j; warp w owns the queries
// tile + w, + w + 4, ... of every query tile, for every head, so each (query, key) pair of the
// window is updated by one thread only.
template <int kMaxDim>
__global__ void __launch_bounds__(kThreads) probeKernel(AttentionArgs a, const float* lse, int64_t queriesPerChunk,
                                                        float* columnSums, float* window, int64_t windowRows) {
    extern __shared__ float smem[];
    float* ks = smem;                                // [32][kMaxDim + 1]
    float* qs = ks + kTileKeys * (kMaxDim + 1);      // [32][kMaxDim]
    float* lses = qs + kProbeQueries * kMaxDim;      // [32]
    float* red = lses + kProbeQueries;               // [warps][32]

    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int d = a.headDim, group = a.numHeads / a.numKvHeads;
    const float invHeads = 1.f / float(a.numHeads);
    const int64_t tile = int64_t(blockIdx.x) * kTileKeys, key = tile + lane;
    const int64_t c0 = int64_t(blockIdx.y) * queriesPerChunk, c1 = min(a.nq, c0 + queriesPerChunk);
    // Queries before keyOffset + i >= tile see none of this tile.
    const int64_t qStart = a.causal ? max(c0, tile - a.keyOffset) : c0;
    const int64_t windowStart = a.nq - windowRows;

    float column = 0.f;
    if (qStart < c1) {
        for (int h = 0; h < a.numHeads; ++h) {
            __syncthreads();
            loadKeyTile<kMaxDim>(ks, kMaxDim + 1, a.k, a.kvStride, tile, a.nk, int64_t(h / group) * d, d);
            for (int64_t qt = qStart; qt < c1; qt += kProbeQueries) {
                __syncthreads();
                for (int idx = threadIdx.x; idx < kProbeQueries * kMaxDim; idx += kThreads) {
                    const int r = idx / kMaxDim, t = idx % kMaxDim;
                    const int64_t i = qt + r;
                    qs[idx] = (i < c1 && t < d) ? a.q[i * a.qStride + int64_t(h) * d + t] : 0.f;
                }
                if (threadIdx.x < kProbeQueries) {
                    const int64_t i = qt + threadIdx.x;
                    lses[threadIdx.x] = i < c1 ? lse[int64_t(h) * a.nq + i] : 0.f;
                }
                __syncthreads();
                for (int r = warp; r < kProbeQueries; r += kWarps) {
                    const int64_t i = qt + r;
                    if (i >= c1) break;
                    const int64_t visible = a.causal ? min(a.nk, a.keyOffset + i + 1) : a.nk;
                    if (key >= visible) continue;
                    float dot = 0.f;
                    for (int t = 0; t < d; ++t) dot += qs[r * kMaxDim + t] * ks[lane * (kMaxDim + 1) + t];
                    const float p = expf(dot * a.scale - lses[r]) * invHeads;
                    column += p;
                    if (window && i >= windowStart) window[(i - windowStart) * a.nk + key] += p;
                }
            }
        }
    }
    red[warp * kTileKeys + lane] = column;
    __syncthreads();
    if (warp == 0 && key < a.nk) {
        float total = 0.f;
        for (int w = 0; w < kWarps; ++w) total += red[w * kTileKeys + lane];
        columnSums[int64_t(blockIdx.y) * a.nk + key] = total;
    }
}

__global__ void sumChunksKernel(const float* partial, int chunks, int64_t nk, float* importance) {
    for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < nk; j += int64_t(gridDim.x) * blockDim.x) {
        float total = 0.f;
        for (int c = 0; c < chunks; ++c) total += partial[int64_t(c) * nk + j];
        importance[j] = total;
    }
}

// Calls f(std::integral_constant<int, kMaxDim>) for the smallest supported bound >= headDim.
template <class F>
void dispatchHeadDim(int headDim, F&& f) {
    if (headDim <= 64)
        f(std::integral_constant<int, 64>{});
    else if (headDim <= 128)
        f(std::integral_constant<int, 128>{});
    else
        f(std::integral_constant<int, 256>{});
}

template <class Kernel>
void allowSharedMemory(Kernel kernel, size_t bytes) {
    // Above 48 KiB, dynamic shared memory must be requested explicitly (head size 256).
    if (bytes > 48 * 1024)
        PKV_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

void checkAttention(const AttentionArgs& a) {
    if (a.headDim <= 0 || a.headDim > 256)
        throw Error("The CUDA backend supports attention heads of 1 to 256 values; this model's have " +
                    std::to_string(a.headDim) + ".");
    if (a.numKvHeads <= 0 || a.numHeads % a.numKvHeads != 0)
        throw Error("The model's " + std::to_string(a.numHeads) + " attention heads cannot share " +
                    std::to_string(a.numKvHeads) + " key/value heads evenly.");
    if (a.qStride < int64_t(a.numHeads) * a.headDim || a.outStride < int64_t(a.numHeads) * a.headDim ||
        a.kvStride < int64_t(a.numKvHeads) * a.headDim)
        throw Error("Attention tensors are narrower than their heads.");
    if (a.causal && (a.keyOffset < 0 || a.keyOffset + a.nq > a.nk))
        throw Error("Cached attention needs the queries' own keys in the cache (" + std::to_string(a.nk) +
                    " entries for " + std::to_string(a.nq) + " queries).");
    // nq itself is a grid dimension of the split-combining kernel; heads are gridDim.y.
    if (a.nq > 0x7fffffff || a.numHeads > 65535)
        throw Error("Attention over " + std::to_string(a.nq) + " queries is too large for one launch.");
}

AttentionPlan planAttention(const AttentionArgs& a, int multiprocessors) {
    AttentionPlan plan;
    plan.keysPerSplit = std::max<int64_t>(a.nk, 1);
    const int64_t blocks = ceilDiv(a.nq, kQueriesPerBlock) * a.numHeads;
    const int64_t target = 2 * int64_t(multiprocessors);
    // Split only when the device would be mostly idle and each split keeps a few key tiles.
    if (blocks < target && a.nk >= 8 * kTileKeys) {
        const int64_t splits = std::min(ceilDiv(target, blocks), a.nk / (4 * kTileKeys));
        plan.keysPerSplit = ceilDiv(ceilDiv(a.nk, splits), kTileKeys) * kTileKeys;
        plan.splits = int(ceilDiv(a.nk, plan.keysPerSplit));
    }
    if (plan.splits > 1) plan.scratchFloats = int64_t(plan.splits) * a.numHeads * a.nq * (a.headDim + 2);
    return plan;
}

void attention(const AttentionArgs& a, const AttentionPlan& plan, float* scratch, float* lse, cudaStream_t stream) {
    if (a.nq <= 0 || a.nk <= 0) return;
    const dim3 grid(unsigned(ceilDiv(a.nq, kQueriesPerBlock)), unsigned(a.numHeads), unsigned(plan.splits));
    float* partial = plan.splits > 1 ? scratch : nullptr;
    dispatchHeadDim(a.headDim, [&](auto maxDim) {
        constexpr int kMaxDim = decltype(maxDim)::value;
        const size_t bytes = forwardSharedFloats<kMaxDim>() * sizeof(float);
        allowSharedMemory(attentionKernel<kMaxDim>, bytes);
        attentionKernel<kMaxDim><<<grid, kThreads, bytes, stream>>>(a, plan.keysPerSplit, partial, lse);
    });
    PKV_CUDA_CHECK_LAUNCH();
    if (partial) {
        combineSplitsKernel<<<dim3(unsigned(a.nq), unsigned(a.numHeads)), 128, 0, stream>>>(a, plan.splits, partial,
                                                                                           lse);
        PKV_CUDA_CHECK_LAUNCH();
    }
}

ProbePlan planProbe(const AttentionArgs& a, int multiprocessors) {
    ProbePlan plan;
    const int64_t keyTiles = ceilDiv(a.nk, kTileKeys);
    const int64_t queryTiles = std::max<int64_t>(1, ceilDiv(a.nq, kProbeQueries));
    const int64_t chunks = std::clamp<int64_t>(ceilDiv(2 * int64_t(multiprocessors), keyTiles), 1, queryTiles);
    plan.queriesPerChunk = ceilDiv(queryTiles, chunks) * kProbeQueries;
    plan.chunks = int(std::max<int64_t>(1, ceilDiv(a.nq, plan.queriesPerChunk)));
    if (plan.chunks > 1) plan.scratchFloats = int64_t(plan.chunks) * a.nk;
    return plan;
}

void attentionProbe(const AttentionArgs& a, const float* lse, const ProbePlan& plan, float* scratch,
                    float* importance, float* window, int64_t windowRows, cudaStream_t stream) {
    if (a.nk <= 0) return;
    if (window && windowRows > 0)
        PKV_CUDA_CHECK(cudaMemsetAsync(window, 0, size_t(windowRows * a.nk) * sizeof(float), stream));
    else
        window = nullptr;
    if (a.nq <= 0) {
        PKV_CUDA_CHECK(cudaMemsetAsync(importance, 0, size_t(a.nk) * sizeof(float), stream));
        return;
    }
    float* columnSums = plan.chunks > 1 ? scratch : importance;
    const dim3 grid(unsigned(ceilDiv(a.nk, kTileKeys)), unsigned(plan.chunks));
    dispatchHeadDim(a.headDim, [&](auto maxDim) {
        constexpr int kMaxDim = decltype(maxDim)::value;
        const size_t bytes = probeSharedFloats<kMaxDim>() * sizeof(float);
        allowSharedMemory(probeKernel<kMaxDim>, bytes);
        probeKernel<kMaxDim><<<grid, kThreads, bytes, stream>>>(a, lse, plan.queriesPerChunk, columnSums, window,
                                                              windowRows);
    });
    PKV_CUDA_CHECK_LAUNCH();
    if (plan.chunks > 1) {
        sumChunksKernel<<<gridFor(a.nk, 256), 256, 0, stream>>>(scratch, plan.chunks, a.nk, importance);
        PKV_CUDA_CHECK_LAUNCH();
    }
}

}  // namespace pkv::cuda
