#pragma once
// Scaled dot-product attention on f32 queries, keys and values, with the probabilities the KV
// policies need (per-key importance, head-averaged window rows) — without ever storing the
// [heads, queries, keys] probability tensor.
//
// Design (two passes; N queries, K keys, H heads, d head size, 4-byte floats):
//
//  Pass 1, attention(): flash-style. A block owns 16 queries of one head; it walks the keys in
//  tiles of 32 held in shared memory, keeps a running max m and sum l per query (online
//  softmax) and accumulates the output in registers. Each key tile is read once per block,
//  so global traffic is about N*H*d*4 (queries, outputs) + (N/16)*H*K*2*d*4 (K/V tiles, mostly
//  from L2 under grouped-query attention) — never N*K. It also writes lse = m + log(l) per
//  (head, query): 4*N*H bytes. When there are too few (query tile, head) blocks to fill the
//  device (decode: one query), the keys are split into ranges whose partial (m, l, o) are merged
//  by a second small kernel (split-K, "flash decoding"); scratch H*N*splits*(d+2) floats.
//
//  Pass 2, attentionProbe(): only when a probe is requested (prefill). A block owns a tile of 32
//  keys and a chunk of queries, and loops over heads: it reloads the key tile per head, recomputes
//  the scores query tile by query tile, forms p = exp(s - lse) / H exactly (the normaliser is
//  known from pass 1), and sums p down its columns in registers. The sum over chunks is a
//  fixed-order reduction of [chunks, K] partials, so importance is deterministic. Window rows
//  (the last W queries) are accumulated over heads in place by the one thread that owns each
//  (query, key) pair, so no atomics are needed: W*K*4*2*H bytes of read-modify-write.
//  Pass 2 costs the score half of pass 1 again in FLOPs and reads Q once per key tile.
//
// Causal masking: query i sees keys [0, keyOffset + i] (keyOffset = K - N for a cache whose last
// N entries are these queries' own keys). Key 0 is visible to every query, so every softmax has a
// finite maximum.
#include <cuda_runtime.h>

#include <cstdint>

namespace pkv::cuda {

struct AttentionArgs {
    const float* q = nullptr;  // [nq, qStride], head h at columns h*headDim
    int64_t nq = 0, qStride = 0;
    const float* k = nullptr;  // [nk, kvStride], KV head g at columns g*headDim
    const float* v = nullptr;
    int64_t nk = 0, kvStride = 0;
    int numHeads = 0, numKvHeads = 0, headDim = 0;
    float scale = 0.f;
    bool causal = false;
    int64_t keyOffset = 0;
    float* out = nullptr;  // [nq, outStride]
    int64_t outStride = 0;
};

// Throws pkv::Error when the shape is not supported (head size > 256, heads not a multiple of KV
// heads, strides too small).
void checkAttention(const AttentionArgs& a);

struct AttentionPlan {
    int splits = 1;
    int64_t keysPerSplit = 0;
    int64_t scratchFloats = 0;
};
AttentionPlan planAttention(const AttentionArgs& a, int multiprocessors);
// lse (device, [numHeads, nq]) may be null when no probe follows.
void attention(const AttentionArgs& a, const AttentionPlan& plan, float* scratch, float* lse, cudaStream_t stream);

struct ProbePlan {
    int chunks = 1;
    int64_t queriesPerChunk = 0;
    int64_t scratchFloats = 0;
};
ProbePlan planProbe(const AttentionArgs& a, int multiprocessors);
// importance (device, [nk]) is overwritten; window (device, [windowRows, nk]) may be null, else
// it is overwritten with the head-averaged rows of the last windowRows (<= nq) queries.
void attentionProbe(const AttentionArgs& a, const float* lse, const ProbePlan& plan, float* scratch,
                    float* importance, float* window, int64_t windowRows, cudaStream_t stream);

}  // namespace pkv::cuda
