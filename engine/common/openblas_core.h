#pragma once
// Which of OpenBLAS's kernel sets this process runs, and making sure it is not a generic one.
//
// Debian's OpenBLAS is built for many CPUs at once (DYNAMIC_ARCH) and picks its kernels when it
// loads, from the CPU's model number. A CPU newer than the OpenBLAS release is not in its tables,
// and OpenBLAS then falls back to its SSE3 kernels ("Prescott"): Debian 12's OpenBLAS 0.3.21 on an
// Intel Xeon of family 6 model 207 (Emerald Rapids, AVX-512) runs sgemm at 27-38 GFLOP/s on two
// cores where its AVX-512 kernels reach 150-290 on the same cores. The engine's attention over
// many heads (CLIP, LLaMA 7B/13B) and every f32 model's GEMMs go through that sgemm.
//
// OpenBLAS takes its kernels by name from OPENBLAS_CORETYPE, read once when it loads. So the
// programs look, first thing in main(), at what OpenBLAS picked and at what the CPU (and the OS,
// which must save the wide registers) can run; when the variable is unset and the pick uses
// narrower vectors than the CPU has, they set it to the kernels OpenBLAS would pick for such a CPU
// and re-execute themselves (engine/common/process_environment.h). A variable the user set is left
// alone: whoever pins the kernels means it.
#include <string>
#include <string_view>

namespace pkv {

// The widest vector instructions a kernel set uses or a CPU runs, narrowest first.
enum class VectorLevel { Sse, Avx, Avx2, Avx512, Avx512Bf16 };

// What this CPU runs with the OS's support (GCC's __builtin_cpu_supports checks both).
VectorLevel cpuVectorLevel();

// The level of one of OpenBLAS's x86-64 kernel sets, by the name openblas_get_corename() gives
// (case-insensitive). Names this table does not know, such as those of a newer OpenBLAS, count as
// the widest: they are never replaced.
VectorLevel openBlasCoreLevel(std::string_view core);

// The kernel set OpenBLAS itself picks for a CPU of that level: "Cooperlake", "SkylakeX",
// "Haswell", "Sandybridge"; empty for Sse (nothing better to ask for).
std::string openBlasCoreFor(VectorLevel level);

// The kernels running in this process (openblas_get_corename()).
std::string openBlasCore();

// The environment variable that records that this program, not the user, set OPENBLAS_CORETYPE.
constexpr const char* kOpenBlasCoreSetBy = "PREFIXKV_OPENBLAS_CORETYPE_SET";

// When OPENBLAS_CORETYPE is unset and OpenBLAS runs kernels narrower than the CPU's, sets it (and
// kOpenBlasCoreSetBy) to the better kernels and returns true: the caller must re-execute for
// OpenBLAS to see it. Otherwise changes nothing and returns false.
bool setOpenBlasCoreEnvironment();

// True when OPENBLAS_CORETYPE was set by the user rather than by setOpenBlasCoreEnvironment().
bool openBlasCorePinnedByUser();

// One sentence for `prefixkv info` and the GUI's device line: which kernels, and who chose them.
std::string openBlasCoreDescription();

}  // namespace pkv
