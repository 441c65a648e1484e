#include "engine/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "engine/common/error.h"

namespace pkv {

namespace {

using nlohmann::json;

// Bits per element of every dtype the safetensors format defines. Sub-byte types exist (F4,
// F6_*), so sizes are kept in bits and a tensor's byte size must come out whole.
std::optional<int> dtypeBits(const std::string& d) {
    static const std::pair<const char*, int> table[] = {
        {"BOOL", 8},  {"U8", 8},   {"I8", 8},   {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8},
        {"F4", 4},    {"F6_E2M3", 6}, {"F6_E3M2", 6},
        {"U16", 16},  {"I16", 16}, {"F16", 16}, {"BF16", 16},
        {"U32", 32},  {"I32", 32}, {"F32", 32},
        {"U64", 64},  {"I64", 64}, {"F64", 64}, {"C64", 64},
    };
    for (const auto& [name, bits] : table)
        if (d == name) return bits;
    return std::nullopt;
}

std::optional<DType> computeDtype(const std::string& d) {
    if (d == "F32") return DType::F32;
    if (d == "F16") return DType::F16;
    if (d == "BF16") return DType::BF16;
    return std::nullopt;
}

// The file's raw bytes, unmapped on scope exit unless released to the SafetensorsFile.
struct Mapping {
    void* addr = nullptr;
    size_t size = 0;
    ~Mapping() {
        if (addr) munmap(addr, size);
    }
};

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
    throw Error("The safetensors file " + path + " " + problem + ".");
}

// Reads the file's first `size` bytes into dst with several reads in flight: blocks of 64 MiB
// (small enough that progress comes several times a second) taken from one counter by
// kReaders threads. A disk, virtual or NVMe, serves several requests at once faster than one:
// 2.8 GB from a cold page cache on the Zen 5 VM's virtual disk, one reader 0.49-0.86 GB/s, two
// 1.57, four 1.70, eight 1.63 (bench/README.md). The calling thread reports the bytes read so far
// to `progress`, which may throw (a cancel): the readers stop after their current read and the
// exception goes on. Returns what went wrong ("could not be read ...") or "" when all was read.
std::string readInParallel(int fd, char* dst, size_t size, const std::function<void(size_t)>& progress) {
    constexpr size_t kBlock = size_t(64) << 20;
    constexpr size_t kReaders = 4;
    std::atomic<size_t> next{0}, done{0};
    std::atomic<bool> stop{false};
    std::mutex mutex;
    std::condition_variable finished;
    size_t running = std::min(kReaders, (size + kBlock - 1) / kBlock);
    std::string problem;  // the first reader's, under mutex

    auto reader = [&] {
        for (size_t begin; !stop && (begin = next.fetch_add(kBlock)) < size;) {
            const size_t end = std::min(size, begin + kBlock);
            for (size_t at = begin; at < end && !stop;) {
                const ssize_t got = ::pread(fd, dst + at, end - at, off_t(at));
                if (got < 0 && errno == EINTR) continue;
                if (got <= 0) {
                    const std::string what = got < 0 ? "could not be read into memory (" + std::string(std::strerror(errno)) + ")"
                                                     : "became shorter while it was being read into memory";
                    std::lock_guard lock(mutex);
                    if (problem.empty()) problem = what;
                    stop = true;
                    break;
                }
                at += size_t(got);
                done += size_t(got);
            }
        }
        std::lock_guard lock(mutex);
        --running;
        finished.notify_all();
    };

    std::vector<std::jthread> readers;
    // Declared after the readers so that it runs first when an exception leaves: the readers
    // stop, then are joined.
    struct StopOnExit {
        std::atomic<bool>& stop;
        ~StopOnExit() { stop = true; }
    } stopOnExit{stop};
    const size_t wanted = running;
    try {
        while (readers.size() < wanted) readers.emplace_back(reader);
    } catch (const std::system_error&) {  // no more threads to be had: those started read it all
        std::lock_guard lock(mutex);
        running -= wanted - readers.size();
    }
    if (readers.empty() && wanted > 0) {  // not even one: the calling thread reads, reporting at the end
        running = 1;
        reader();
    }

    size_t reported = 0;
    std::unique_lock lock(mutex);
    while (running > 0 || reported < done) {
        finished.wait_for(lock, std::chrono::milliseconds(50), [&] { return running == 0; });
        const size_t now = done;
        if (now > reported && progress && problem.empty()) {
            lock.unlock();
            progress(now);
            lock.lock();
        }
        reported = now;
    }
    return problem;
}

uint64_t readLe64(const std::byte* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | uint64_t(p[i]);
    return v;
}

TensorView parseEntry(const std::string& path, const std::string& name, const json& e,
                      const std::byte* data, size_t dataBytes, uint64_t& begin) {
    const std::string tensor = "tensor \"" + name + "\"";
    if (!e.is_object()) fail(path, "has a header entry for " + tensor + " that is not a JSON object");
    for (const char* key : {"dtype", "shape", "data_offsets"})
        if (!e.contains(key)) fail(path, "has no \"" + std::string(key) + "\" for " + tensor + " in its header");

    TensorView t;
    t.name = name;
    t.file = path;
    if (!e["dtype"].is_string()) fail(path, "has a dtype for " + tensor + " that is not a string");
    t.dtypeText = e["dtype"].get<std::string>();
    std::optional<int> bits = dtypeBits(t.dtypeText);
    if (!bits) fail(path, "has an unknown dtype \"" + t.dtypeText + "\" for " + tensor);
    if (std::optional<DType> d = computeDtype(t.dtypeText)) {
        t.dtypeSupported = true;
        t.dtype = *d;
    }

    const json& shape = e["shape"];
    if (!shape.is_array()) fail(path, "has a shape for " + tensor + " that is not a list");
    uint64_t numel = 1;
    for (const json& dim : shape) {
        if (!dim.is_number_integer()) fail(path, "has a shape for " + tensor + " with a dimension that is not an integer");
        if (!dim.is_number_unsigned()) fail(path, "has a negative dimension in the shape of " + tensor);
        uint64_t d = dim.get<uint64_t>();
        if (d > uint64_t(INT64_MAX) || __builtin_mul_overflow(numel, d, &numel))
            fail(path, "has a shape for " + tensor + " too large to address");
        t.shape.push_back(int64_t(d));
    }

    const json& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
        fail(path, "has data_offsets for " + tensor + " that are not a pair [begin, end] of byte offsets");
    begin = off[0].get<uint64_t>();
    uint64_t end = off[1].get<uint64_t>();
    if (begin > end) fail(path, "has data_offsets for " + tensor + " whose begin (" + std::to_string(begin) +
                                    ") lies after its end (" + std::to_string(end) + ")");
    if (end > dataBytes)
        fail(path, "is truncated: " + tensor + " ends at data byte " + std::to_string(end) +
                       " but the data section holds only " + std::to_string(dataBytes) + " bytes");

    uint64_t totalBits = 0;
    if (__builtin_mul_overflow(numel, uint64_t(*bits), &totalBits))
        fail(path, "has a shape for " + tensor + " too large to address");
    if (totalBits % 8 != 0)
        fail(path, "has a shape for " + tensor + " whose size in dtype " + t.dtypeText + " is not a whole number of bytes");
    if (totalBits / 8 != end - begin)
        fail(path, "has " + std::to_string(end - begin) + " bytes for " + tensor + " but its shape and dtype " +
                       t.dtypeText + " need " + std::to_string(totalBits / 8) + " bytes");
    t.data = data + begin;
    t.nbytes = size_t(end - begin);
    return t;
}

}  // namespace

int64_t TensorView::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) fail(path, "does not exist");
        fail(path, "cannot be opened (" + std::string(std::strerror(errno)) + ")");
    }
    struct stat st{};
    int statResult = fstat(fd, &st);
    if (statResult != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        fail(path, "is not a regular file");
    }
    const size_t size = size_t(st.st_size);
    if (size == 0) {
        ::close(fd);
        fail(path, "is empty");
    }
    Mapping m;
    m.size = size;
    m.addr = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);  // the mapping keeps its own reference to the file
    if (m.addr == MAP_FAILED) {
        m.addr = nullptr;
        fail(path, "cannot be mapped into memory (" + std::string(std::strerror(errno)) + ")");
    }
    // Ask for 2 MiB pages: where the file is not cached yet, a fault then reads a 2 MiB folio and
    // maps it with one TLB entry. A decode step streams every weight once; with 4 KiB pages it
    // takes a TLB miss per 4 KiB and the hardware prefetcher stops at each page (GEMV sweeps in
    // the fast bandwidth phase: anonymous memory in 4 KiB pages 45-51 GB/s, in 2 MiB pages 47-52,
    // a file mapped in 2 MiB folios 49-55; bench/README.md).
    // Only a hint: file pages already cached in small folios stay as they are, and kernels
    // without transparent huge pages ignore it.
    madvise(m.addr, size, MADV_HUGEPAGE);
    const auto* bytes = static_cast<const std::byte*>(m.addr);

    if (size < 8) fail(path, "is truncated: it is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
    const uint64_t headerLen = readLe64(bytes);
    if (headerLen > size - 8)
        fail(path, "is truncated: its header length (" + std::to_string(headerLen) +
                       " bytes) reaches beyond the end of the file (" + std::to_string(size) + " bytes)");

    json header;
    const char* text = reinterpret_cast<const char*>(bytes + 8);
    try {
        header = json::parse(text, text + headerLen);
    } catch (const json::parse_error& e) {
        fail(path, "has a header that is not valid JSON (error at byte " + std::to_string(e.byte) + ")");
    }
    if (!header.is_object()) fail(path, "has a header that is not a JSON object");

    const std::byte* data = bytes + 8 + headerLen;
    const size_t dataBytes = size - 8 - size_t(headerLen);
    auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile);
    file->path_ = path;

    struct Range { uint64_t begin, end; const std::string* name; };
    std::vector<Range> ranges;
    for (const auto& [name, entry] : header.items()) {
        if (name == "__metadata__") continue;
        uint64_t begin = 0;
        TensorView t = parseEntry(path, name, entry, data, dataBytes, begin);
        auto it = file->tensors_.emplace(name, std::move(t)).first;
        // Zero-size tensors occupy no bytes, so they cannot collide with anything.
        if (it->second.nbytes > 0) ranges.push_back({begin, begin + it->second.nbytes, &it->first});
    }
    std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
    for (size_t i = 1; i < ranges.size(); ++i)
        if (ranges[i].begin < ranges[i - 1].end)
            fail(path, "has overlapping data ranges for tensors \"" + *ranges[i - 1].name + "\" and \"" +
                           *ranges[i].name + "\"");

    file->map_ = m.addr;
    file->size_ = size;
    m.addr = nullptr;
    return file;
}

void SafetensorsFile::readIntoMemory(const std::function<void(size_t)>& progress) {
    if (inMemory_) return;
    Mapping copy;
    copy.size = size_;
    copy.addr = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (copy.addr == MAP_FAILED) {
        copy.addr = nullptr;
        fail(path_, "cannot be read into memory: " + std::to_string(size_ >> 20) + " MiB could not be allocated (" +
                        std::strerror(errno) + ")");
    }
    madvise(copy.addr, size_, MADV_HUGEPAGE);
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path_, "cannot be opened again to read it into memory (" + std::string(std::strerror(errno)) + ")");
    std::string problem;
    try {
        problem = readInParallel(fd, static_cast<char*>(copy.addr), size_, progress);
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::close(fd);
    if (!problem.empty()) fail(path_, problem);
    mprotect(copy.addr, size_, PROT_READ);  // the weights are never written
    const auto* oldBase = static_cast<const std::byte*>(map_);
    const auto* newBase = static_cast<const std::byte*>(copy.addr);
    for (auto& [name, t] : tensors_)
        if (t.data) t.data = newBase + (t.data - oldBase);
    munmap(map_, size_);
    map_ = copy.addr;
    copy.addr = nullptr;
    inMemory_ = true;
}

SafetensorsFile::~SafetensorsFile() {
    if (map_) munmap(map_, size_);
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace pkv
