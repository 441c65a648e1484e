#include "bench/bench_limits.h"

#include <cblas.h>
#include <omp.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "engine/common/openblas_core.h"

namespace pkvbench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kBandwidthRuns = 8;
constexpr int kGemmRuns = 3;

double secondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Arrays first touched by the threads that later stream them, so pages land near their users.
std::unique_ptr<float[]> parallelArray(int64_t n, float value) {
    std::unique_ptr<float[]> a(new float[size_t(n)]);
    float* p = a.get();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] = value;
    return a;
}

// STREAM triad a[i] = b[i] + 3·c[i] over n floats, all threads, best of `runs`: GB/s counting
// three arrays of traffic (the write-allocate read of a[] is not counted, as STREAM does).
double triadGBps(float* a, const float* b, const float* c, int64_t n, int runs) {
    double best = 1e30;
    for (int run = 0; run < runs; ++run) {
        const auto t0 = Clock::now();
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; ++i) a[i] = b[i] + 3.f * c[i];
        best = std::min(best, secondsSince(t0));
    }
    return 3.0 * double(n) * sizeof(float) / best / 1e9;
}

// Read-only: three streams in flight, like a linear layer's rows split across threads. GB/s of the
// three arrays read, best of `runs`.
double readOnlyGBps(const float* a, const float* b, const float* c, int64_t n, int runs) {
    double best = 1e30;
    for (int run = 0; run < runs; ++run) {
        const auto t0 = Clock::now();
        float sum = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : sum)
        for (int64_t i = 0; i < n; ++i) sum += a[i] + b[i] + c[i];
        best = std::min(best, secondsSince(t0));
        volatile float observed = sum;  // the sum must be used, or the loop is optimised away
        (void)observed;
    }
    return 3.0 * double(n) * sizeof(float) / best / 1e9;
}

void measureBandwidth(Limits& out) {
    const int64_t n = out.arrayBytes / int64_t(sizeof(float));
    auto a = parallelArray(n, 0.f), b = parallelArray(n, 1.f), c = parallelArray(n, 2.f);
    float* pa = a.get();
    const float* pb = b.get();
    const float* pc = c.get();
    out.triadGBps = triadGBps(pa, pb, pc, n, kBandwidthRuns);
    out.readGBps = readOnlyGBps(pa, pb, pc, n, kBandwidthRuns);
}

// The engine's prefill call: y[m, n] = x[m, k] · W[n, k]^T, both row-major.
double gemmGflops(int m, int n, int k) {
    auto x = parallelArray(int64_t(m) * k, 0.01f), w = parallelArray(int64_t(n) * k, 0.02f);
    auto y = parallelArray(int64_t(m) * n, 0.f);
    double best = 1e30;
    for (int run = 0; run <= kGemmRuns; ++run) {  // run 0 warms OpenBLAS's threads and buffers
        const auto t0 = Clock::now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.f, x.get(), k, w.get(), k, 0.f, y.get(), n);
        if (run > 0) best = std::min(best, secondsSince(t0));
    }
    return 2.0 * double(m) * double(n) * double(k) / best / 1e9;
}

// Shapes as the probe's argument: "m,n,k;m,n,k".
std::string shapesArgument(const std::vector<GemmRate>& shapes) {
    std::ostringstream out;
    for (size_t i = 0; i < shapes.size(); ++i)
        out << (i ? ";" : "") << shapes[i].m << ',' << shapes[i].n << ',' << shapes[i].k;
    return out.str();
}

}  // namespace

int64_t triadArrayBytes(int64_t floor) {
    const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);  // 0 or -1 where glibc cannot tell
    const int64_t beyond = l3 > 0 ? (int64_t(l3) * 4 / 3 + (1 << 20) - 1) / (1 << 20) * (1 << 20) : 0;
    return std::max(floor, beyond);
}

TriadProbe::TriadProbe(int64_t arrayBytes)
    : a_(size_t(arrayBytes > 0 ? arrayBytes : triadArrayBytes(64LL << 20)) / sizeof(float), 0.f),
      b_(a_.size(), 1.f),
      c_(a_.size(), 2.f) {}

double TriadProbe::gbps(int passes) {
    return triadGBps(a_.data(), b_.data(), c_.data(), int64_t(a_.size()), passes);
}

double TriadProbe::readGBps(int passes) {
    return readOnlyGBps(a_.data(), b_.data(), c_.data(), int64_t(a_.size()), passes);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

namespace {

double bestRate(const std::vector<GemmRate>& gemms) {
    double best = 0;
    for (const GemmRate& g : gemms) best = std::max(best, g.gflops);
    return best;
}

}  // namespace

double Limits::sgemmPeakGflops() const {
    return std::max({bestRate(gemms), bestRate(gemmsOwnCore), bestRate(gemmsBefore), bestRate(gemmsAfter)});
}

double Limits::sgemmBesideGflops() const {
    if (gemmsBefore.empty() || gemmsAfter.empty()) return 0;
    return (bestRate(gemmsBefore) + bestRate(gemmsAfter)) / 2;
}

int runSgemmProbe(const std::string& shapes) {
    std::vector<GemmRate> parsed;
    std::istringstream in(shapes);
    for (std::string item; std::getline(in, item, ';');) {
        GemmRate g;
        if (std::sscanf(item.c_str(), "%d,%d,%d", &g.m, &g.n, &g.k) != 3 || g.m < 1 || g.n < 1 || g.k < 1) {
            std::fprintf(stderr, "prefixkv bench: --sgemm-probe wants m,n,k;m,n,k, not \"%s\".\n", shapes.c_str());
            return 2;
        }
        parsed.push_back(g);
    }
    std::printf("%s\n", pkv::openBlasCore().c_str());
    for (const GemmRate& g : parsed) std::printf("%.3f\n", gemmGflops(g.m, g.n, g.k));
    return 0;
}

namespace {

// Runs `exe bench --sgemm-probe SHAPES --threads N` with `envp` and reads its core name and rates
// into `core` and `gemms` (whose shapes are the ones asked for). False, with a reason in `why`, when
// it could not start or failed.
bool runProbe(const char* exe, char* const* envp, int threads, std::string& core, std::vector<GemmRate>& gemms,
              std::string& why) {
    std::string a0 = exe, a1 = "bench", a2 = "--sgemm-probe", a3 = shapesArgument(gemms), a4 = "--threads",
                a5 = std::to_string(threads);
    char* argv[] = {a0.data(), a1.data(), a2.data(), a3.data(), a4.data(), a5.data(), nullptr};
    int fds[2];
    if (pipe(fds) != 0) {
        why = std::strerror(errno);
        return false;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    pid_t pid = 0;
    const int spawned = posix_spawn(&pid, exe, &actions, nullptr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    std::string text;
    char buf[256];
    for (ssize_t r; spawned == 0 && (r = read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, size_t(r));
    close(fds[0]);
    if (spawned != 0) {
        why = std::strerror(spawned);
        return false;
    }
    int status = 1;
    waitpid(pid, &status, 0);
    std::istringstream out(text);
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && bool(std::getline(out, core));
    for (GemmRate& g : gemms) ok = ok && bool(out >> g.gflops);
    if (!ok) why = "it failed";
    return ok;
}

}  // namespace

void measureSgemmWithOwnCore(Limits& limits, const char* exe) {
    if (!pkv::openBlasCorePinnedByUser() || limits.gemms.empty()) return;
    // The child gets neither variable, and so the kernels prefixkv runs when nobody pins them: its
    // main() asks for better ones where OpenBLAS does not know the CPU.
    const std::string ours = std::string(pkv::kOpenBlasCoreSetBy) + "=";
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e)
        if (std::strncmp(*e, "OPENBLAS_CORETYPE=", 18) != 0 && std::strncmp(*e, ours.c_str(), ours.size()) != 0)
            env.emplace_back(*e);
    std::vector<char*> envp;
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string core, why;
    std::vector<GemmRate> gemms = limits.gemms;
    if (!runProbe(exe, envp.data(), limits.threads, core, gemms, why)) {
        std::fprintf(stderr, "[the sgemm probe without OPENBLAS_CORETYPE: %s; the peak is the %s kernels' alone]\n",
                     why.c_str(), limits.gemmCore.c_str());
        return;
    }
    limits.gemmOwnCore = core;
    limits.gemmsOwnCore = gemms;
}

std::vector<GemmRate> measureSgemmAgain(const Limits& limits, const char* exe, const char* when) {
    if (limits.gemms.empty()) return {};
    std::string core, why;
    std::vector<GemmRate> gemms = limits.gemms;
    if (!runProbe(exe, environ, limits.threads, core, gemms, why)) {
        std::fprintf(stderr, "[the sgemm probe %s: %s; the peak leaves it out]\n", when, why.c_str());
        return {};
    }
    return gemms;
}

void setThreads(int n) {
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int threads() { return omp_get_max_threads(); }

Limits measureLimits(const std::vector<GemmRate>& shapes, int64_t arrayBytes) {
    if (arrayBytes <= 0) arrayBytes = triadArrayBytes(256LL << 20);
    Limits out;
    out.threads = threads();
    out.arrayBytes = arrayBytes;
    measureBandwidth(out);
    for (GemmRate g : shapes) {
        g.gflops = gemmGflops(g.m, g.n, g.k);
        out.gemms.push_back(g);
    }
    out.gemmCore = pkv::openBlasCore();
    return out;
}

Limits measureLimitsInChild(const std::vector<GemmRate>& shapes, int64_t arrayBytes) {
    if (arrayBytes <= 0) arrayBytes = triadArrayBytes(256LL << 20);
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error(std::string("pipe failed: ") + std::strerror(errno));
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        const Limits l = measureLimits(shapes, arrayBytes);
        // Plain numbers only: the parent knows the shapes it asked for.
        std::vector<double> msg = {double(l.threads), l.triadGBps, l.readGBps};
        for (const GemmRate& g : l.gemms) msg.push_back(g.gflops);
        const ssize_t bytes = ssize_t(msg.size() * sizeof(double));
        _exit(write(fds[1], msg.data(), size_t(bytes)) == bytes ? 0 : 1);
    }
    close(fds[1]);
    std::vector<double> msg(3 + shapes.size());
    const size_t want = msg.size() * sizeof(double);
    size_t got = 0;
    while (got < want) {
        const ssize_t r = read(fds[0], reinterpret_cast<char*>(msg.data()) + got, want - got);
        if (r <= 0) break;
        got += size_t(r);
    }
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (got != want || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw std::runtime_error("measuring the machine's limits failed in the child process");
    Limits out;
    out.gemmCore = pkv::openBlasCore();  // the same library, loaded before the fork
    out.threads = int(msg[0]);
    out.arrayBytes = arrayBytes;
    out.triadGBps = msg[1];
    out.readGBps = msg[2];
    for (size_t i = 0; i < shapes.size(); ++i) {
        GemmRate g = shapes[i];
        g.gflops = msg[3 + i];
        out.gemms.push_back(g);
    }
    return out;
}

}  // namespace pkvbench
