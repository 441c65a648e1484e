#pragma once
// Settings that the libraries the engine loads read once, before main() runs: libgomp's spin
// (engine/common/threading.h) and OpenBLAS's kernels (engine/common/openblas_core.h). Call this
// first thing in main(): when either wants a variable the user did not set, it sets them and
// re-executes the program once, with the same arguments; the second run finds them set and goes on.
// When re-executing fails, the program runs on with the libraries' defaults.
namespace pkv {

void ensureProcessEnvironment(char** argv);

}  // namespace pkv
