#pragma once
// The cpu backend's threads come from OpenMP. libgomp's default lets an idle team member spin for
// ~300k iterations before sleeping; on a machine whose cores are also busy with other work, the
// spinning threads take the time the one thread still computing needs, and a region that takes
// microseconds alone takes milliseconds (prefill of a small model went from 2 ms to 300 ms). A short
// spin keeps back-to-back regions (decode) fast and yields the core soon under load.
//
// libgomp reads its settings once, when it is loaded, before main() runs; so a program that wants
// the short spin must have it in its environment from the start (engine/common/process_environment.h
// re-executes the program when this asks for it).
namespace pkv {

// When the user has set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT, sets GOMP_SPINCOUNT and
// returns true; otherwise changes nothing and returns false.
bool setThreadingEnvironment();

constexpr const char* kDefaultSpinCount = "10000";

}  // namespace pkv
