#include "engine/common/threading.h"

#include <cstdlib>

namespace pkv {

bool setThreadingEnvironment() {
    if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return false;
    setenv("GOMP_SPINCOUNT", kDefaultSpinCount, 1);
    return true;
}

}  // namespace pkv
