#pragma once
// One protocol for timing decode against the machine's bandwidth, shared by our engine's program
// and llama.cpp's, so the two can be held to the same measure on the same machine: blocks of
// `steps` greedy decode steps, each block right after a triad and a read-only pass over three
// 256 MiB arrays measured at that moment. On a VM whose bandwidth moves between phases within
// seconds (bench/README.md), only a step and a probe taken together say how close a decoder runs
// to the bus; a run-level average mixes phases.
#include <chrono>
#include <cstdio>
#include <vector>

#include "bench/bench_limits.h"

namespace pkvbench {

struct BlockResult {
    double triadGBps = 0, readGBps = 0, tokensPerSecond = 0, weightGBps = 0;
};

// Runs `blocks` blocks of `steps` calls of step(), printing one line per block tagged `who`, then
// the medians. weightBytesPerToken: the decoder's weight bytes read per token (the bound's bytes).
template <typename Step>
void decodeBlocks(const char* who, int blocks, int steps, double weightBytesPerToken, Step step) {
    TriadProbe probe(triadArrayBytes(256LL << 20));
    std::vector<BlockResult> out;
    for (int b = 0; b < blocks; ++b) {
        BlockResult r;
        r.triadGBps = probe.gbps();
        r.readGBps = probe.readGBps();
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < steps; ++i) step();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        r.tokensPerSecond = steps / seconds;
        r.weightGBps = r.tokensPerSecond * weightBytesPerToken / 1e9;
        std::printf("%s triad %.1f read %.1f GB/s | %.3f tok/s, weights at %.1f GB/s = %.3f of the triad, %.3f of the read\n",
                    who, r.triadGBps, r.readGBps, r.tokensPerSecond, r.weightGBps, r.weightGBps / r.triadGBps,
                    r.weightGBps / r.readGBps);
        out.push_back(r);
    }
    auto medianOf = [&](auto f) {
        std::vector<double> v;
        for (const BlockResult& r : out) v.push_back(f(r));
        return median(v);
    };
    std::printf("%s median over %d blocks: %.3f of the triad, %.3f of the read (triad %.1f GB/s)\n", who, blocks,
                medianOf([](const BlockResult& r) { return r.weightGBps / r.triadGBps; }),
                medianOf([](const BlockResult& r) { return r.weightGBps / r.readGBps; }),
                medianOf([](const BlockResult& r) { return r.triadGBps; }));
}

}  // namespace pkvbench
