#include "engine/common/process_environment.h"

#include <unistd.h>

#include "engine/common/openblas_core.h"
#include "engine/common/threading.h"

namespace pkv {

void ensureProcessEnvironment(char** argv) {
    const bool threading = setThreadingEnvironment();
    const bool blas = setOpenBlasCoreEnvironment();
    if (threading || blas) execv("/proc/self/exe", argv);
}

}  // namespace pkv
