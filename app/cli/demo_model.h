#pragma once
#include <string>

namespace pkvcli {
// Copies the demo model compiled into the binary to a private temporary folder (once per
// process) and returns its path.
std::string extractDemoModel();
}
