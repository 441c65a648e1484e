#include "engine/common/system_memory.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace pkv {

std::optional<size_t> availableMemoryBytes() {
    std::ifstream in("/proc/meminfo");
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string key, unit;
        size_t value = 0;
        if (fields >> key >> value >> unit && key == "MemAvailable:" && unit == "kB") return value * 1024;
    }
    return std::nullopt;
}

std::string gigabytes(size_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f GB", double(bytes) / 1e9);
    return text;
}

}  // namespace pkv
