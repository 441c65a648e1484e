#pragma once
// What this machine can do at best, measured in the same run as the model: the yardsticks that
// `prefixkv bench` divides its timings by. Decode is bound by memory bandwidth (every weight is
// read once per token), prefill by matrix-multiply throughput.
#include <cstdint>
#include <string>
#include <vector>

namespace pkvbench {

struct GemmRate {
    int m = 0, n = 0, k = 0;
    double gflops = 0;  // best of several cblas_sgemm calls, 2·m·n·k per call
};

struct Limits {
    int threads = 0;
    int64_t arrayBytes = 0;       // each of the three triad arrays
    // STREAM triad a[i] = b[i] + s·c[i] on f32 arrays far larger than the caches, all threads,
    // best of several runs. Counted as STREAM does: 3 arrays of traffic per element (2 read, 1
    // written); the write-allocate read of a[] is not counted, so the bus moves up to 4/3 of this.
    double triadGBps = 0;
    // Sum over the three arrays (3 × arrayBytes read, nothing written): the kind of traffic decode makes.
    double readGBps = 0;
    std::vector<GemmRate> gemms;  // at the prefill shapes
    std::string gemmCore;         // the OpenBLAS kernels they ran on (openblas_get_corename())
    // Where the user's OPENBLAS_CORETYPE chose those kernels: the same shapes in a process without
    // it, on the kernels prefixkv runs unpinned (OpenBLAS's own pick, or a better one where OpenBLAS
    // does not know the CPU: engine/common/openblas_core.h). Empty when nothing is pinned or that failed.
    std::vector<GemmRate> gemmsOwnCore;
    std::string gemmOwnCore;
    // The same shapes measured again just before and just after the work they are a yardstick for
    // (a machine's speed moves: sgemm 208 and 290 GFLOP/s a minute apart on one Xeon VM); empty
    // when not asked for or when the probe failed.
    std::vector<GemmRate> gemmsBefore, gemmsAfter;
    double sgemmPeakGflops() const;  // the best of all of them
    // The mean of the best rate just before and the best just after; 0 without both.
    double sgemmBesideGflops() const;
};

// Sets the threads of both pools the engine uses: OpenMP (its own kernels) and OpenBLAS (sgemm).
void setThreads(int n);
int threads();

// Measures triad and read bandwidth and sgemm at each (m, n, k) shape given.
// arrayBytes 0: triadArrayBytes(256 MiB).
Limits measureLimits(const std::vector<GemmRate>& shapes, int64_t arrayBytes = 0);

// The same in a child process, so that the ~1 GB of arrays and matrices it allocates do not count
// in the caller's peak RSS. Call before the caller first uses OpenMP: a forked child cannot use
// a thread pool its parent had started. Throws std::runtime_error when the child fails.
Limits measureLimitsInChild(const std::vector<GemmRate>& shapes, int64_t arrayBytes = 0);

// The size of each of a triad's three arrays: at least `floor`, and large enough that the three
// together are four times the last-level cache, so that no pass finds much of the last one's data
// still cached (STREAM asks four times the cache of each array; the sum is the compromise that keeps
// a probe before every decode step short). On an Intel Xeon VM with a 300 MiB L3, arrays of 64 MiB
// measured a triad of 28.7-30.1 GB/s where 256 MiB and larger ones measured 25.4-26.9, and the
// read-only sum 32-41 GB/s against weights streamed at 24-26.
int64_t triadArrayBytes(int64_t floor);

// OpenBLAS reads OPENBLAS_CORETYPE once, when it loads, and then runs that core's kernels instead of
// the ones it picks for the CPU (a machine image here sets Haswell, AVX2, on an AVX-512 CPU: 250
// GFLOP/s where OpenBLAS's own choice reaches 450). So the sgemm peak must also be measured in a
// fresh process without the variable: `exe bench --sgemm-probe SHAPES --threads N`, which calls
// runSgemmProbe. Fills gemmsOwnCore and gemmOwnCore of `limits` when the user set the variable; leaves
// them empty, with a note on stderr, when the probe fails.
void measureSgemmWithOwnCore(Limits& limits, const char* exe);
// The sgemm shapes again in a fresh process with this one's environment (libgomp's threads do not
// survive a fork, so not a child): returns the shapes of limits.gemms with their rates now, or
// nothing, with a note on stderr, when the probe failed. `when` names the moment in that note.
std::vector<GemmRate> measureSgemmAgain(const Limits& limits, const char* exe, const char* when);
// The probe's side: `shapes` as "m,n,k;m,n,k"; prints the core name, then GFLOP/s per shape, one a line.
int runSgemmProbe(const std::string& shapes);

// A triad that can be run again and again beside the work it is a yardstick for: the bandwidth
// of a shared machine moves (here between about 30 and 55 GB/s within minutes), so a decode step
// is best compared with a triad measured just before it. Arrays of triadArrayBytes(64 MiB) each
// (64 MiB: twice the L3 of a desktop CPU; more on servers), allocated once.
class TriadProbe {
public:
    explicit TriadProbe(int64_t arrayBytes = 0);  // 0: triadArrayBytes(64 MiB)
    double gbps(int passes = 3);  // best of `passes` triads, GB/s counted as Limits::triadGBps
    // Best of `passes` read-only sums over the same three arrays (Limits::readGBps): the kind of
    // traffic decode makes, for telling a kernel's shortfall from the machine's.
    double readGBps(int passes = 3);

private:
    std::vector<float> a_, b_, c_;
};

// The median of per-step or per-block ratios (the mean of the middle two for an even count; 0 for
// none): what the paired decode measures report, robust to a step that straddled a phase change.
double median(std::vector<double> v);

}  // namespace pkvbench
