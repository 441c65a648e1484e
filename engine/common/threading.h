#pragma once
// The cpu backend's threads come from OpenMP. libgomp's default lets an idle team member spin for
// ~300k iterations before sleeping; on a machine whose cores are also busy with other work, the
// spinning threads take the time the one thread still computing needs, and a region that takes
// microseconds alone takes milliseconds (prefill of a small model went from 2 ms to 300 ms). A short
// spin keeps back-to-back regions (decode) fast and yields the core soon under load.
//
// libgomp reads its settings once, when it is loaded, before main() runs; so a program that wants
// the short spin must have it in its environment from the start. Call this first thing in main():
// when the user has set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT, it sets GOMP_SPINCOUNT and
// re-executes the program (same arguments); otherwise it returns and changes nothing.
namespace pkv {

void ensureThreadingEnvironment(char** argv);

constexpr const char* kDefaultSpinCount = "10000";

}  // namespace pkv
