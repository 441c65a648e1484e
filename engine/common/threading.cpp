#include "engine/common/threading.h"

#include <unistd.h>

#include <cstdlib>

namespace pkv {

void ensureThreadingEnvironment(char** argv) {
    if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
    setenv("GOMP_SPINCOUNT", kDefaultSpinCount, 1);
    execv("/proc/self/exe", argv);
    // Only reached when re-executing failed; the program runs on with libgomp's defaults.
}

}  // namespace pkv
