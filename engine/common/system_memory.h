#pragma once
// How much memory the machine can still give a process, for refusing early (with a sentence) what
// would otherwise end in the kernel's out-of-memory killer.
#include <cstddef>
#include <optional>
#include <string>

namespace pkv {

// MemAvailable from /proc/meminfo, in bytes: free memory plus the page cache and other memory the
// kernel can reclaim. Nothing where the file is absent or unreadable (not Linux).
std::optional<size_t> availableMemoryBytes();

// "14.1 GB": bytes in decimal gigabytes to one decimal, as sentences to users give sizes.
std::string gigabytes(size_t bytes);

}  // namespace pkv
