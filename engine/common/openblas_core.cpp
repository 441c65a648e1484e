#include "engine/common/openblas_core.h"

#include <cblas.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <utility>

namespace pkv {
namespace {

bool sameName(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

}  // namespace

VectorLevel cpuVectorLevel() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    if (avx512 && __builtin_cpu_supports("avx512bf16")) return VectorLevel::Avx512Bf16;
    if (avx512) return VectorLevel::Avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return VectorLevel::Avx2;
    if (__builtin_cpu_supports("avx")) return VectorLevel::Avx;
#endif
    return VectorLevel::Sse;
}

VectorLevel openBlasCoreLevel(std::string_view core) {
    // OpenBLAS 0.3.21's x86-64 DYNAMIC_ARCH kernel sets (driver/others/dynamic.c), grouped by the
    // widest instructions their GEMM kernels use.
    struct Named {
        const char* name;
        VectorLevel level;
    };
    static constexpr Named kCores[] = {
        {"Katmai", VectorLevel::Sse},          {"Coppermine", VectorLevel::Sse},   {"Northwood", VectorLevel::Sse},
        {"Prescott", VectorLevel::Sse},        {"Banias", VectorLevel::Sse},       {"Atom", VectorLevel::Sse},
        {"Core2", VectorLevel::Sse},           {"Penryn", VectorLevel::Sse},       {"Dunnington", VectorLevel::Sse},
        {"Nehalem", VectorLevel::Sse},         {"Athlon", VectorLevel::Sse},       {"Opteron", VectorLevel::Sse},
        {"Opteron_SSE3", VectorLevel::Sse},    {"Barcelona", VectorLevel::Sse},    {"Nano", VectorLevel::Sse},
        {"Sandybridge", VectorLevel::Avx},     {"Bulldozer", VectorLevel::Avx},    {"Piledriver", VectorLevel::Avx},
        {"Steamroller", VectorLevel::Avx},     {"Excavator", VectorLevel::Avx2},   {"Haswell", VectorLevel::Avx2},
        {"Zen", VectorLevel::Avx2},            {"SkylakeX", VectorLevel::Avx512},  {"Cooperlake", VectorLevel::Avx512Bf16},
        {"SapphireRapids", VectorLevel::Avx512Bf16},
    };
    for (const Named& c : kCores)
        if (sameName(core, c.name)) return c.level;
    return VectorLevel::Avx512Bf16;  // unknown: perhaps newer than this table; never replaced
}

std::string openBlasCoreFor(VectorLevel level) {
    switch (level) {
        case VectorLevel::Avx512Bf16: return "Cooperlake";
        case VectorLevel::Avx512: return "SkylakeX";
        case VectorLevel::Avx2: return "Haswell";
        case VectorLevel::Avx: return "Sandybridge";
        case VectorLevel::Sse: break;
    }
    return {};
}

std::string openBlasCore() {
    const char* core = openblas_get_corename();
    return core ? core : "unknown";
}

bool setOpenBlasCoreEnvironment() {
    if (std::getenv("OPENBLAS_CORETYPE")) return false;
    const VectorLevel cpu = cpuVectorLevel();
    const std::string picked = openBlasCore();
    if (openBlasCoreLevel(picked) >= cpu) return false;
    const std::string better = openBlasCoreFor(cpu);
    if (better.empty()) return false;
    setenv("OPENBLAS_CORETYPE", better.c_str(), 1);
    setenv(kOpenBlasCoreSetBy, (better + "/" + picked).c_str(), 1);
    return true;
}

namespace {

// kOpenBlasCoreSetBy holds "set/picked": the kernels this program asked for and those OpenBLAS had
// picked itself. Empty strings when the variable is absent or not in that form.
std::pair<std::string, std::string> ourCoreChoice() {
    const char* ours = std::getenv(kOpenBlasCoreSetBy);
    const std::string_view v = ours ? ours : "";
    const size_t slash = v.find('/');
    if (slash == std::string_view::npos) return {};
    return {std::string(v.substr(0, slash)), std::string(v.substr(slash + 1))};
}

}  // namespace

bool openBlasCorePinnedByUser() {
    const char* pinned = std::getenv("OPENBLAS_CORETYPE");
    return pinned && ourCoreChoice().first != pinned;
}

std::string openBlasCoreDescription() {
    const std::string core = openBlasCore();
    const char* pinned = std::getenv("OPENBLAS_CORETYPE");
    if (!pinned) return "OpenBLAS runs its " + core + " kernels, its own choice for this CPU";
    if (openBlasCorePinnedByUser())
        return "OpenBLAS runs its " + core + " kernels, as OPENBLAS_CORETYPE=" + pinned + " asks";
    const auto [asked, picked] = ourCoreChoice();
    if (!sameName(core, asked))
        return "OpenBLAS runs its " + core + " kernels: it does not know this CPU and kept them when asked for " +
               asked + " (a build without DYNAMIC_ARCH?)";
    return "OpenBLAS runs its " + core + " kernels, chosen by prefixkv: this OpenBLAS does not know the CPU and "
           "would have run its " + picked + " kernels, which use narrower vectors than the CPU has";
}

}  // namespace pkv
