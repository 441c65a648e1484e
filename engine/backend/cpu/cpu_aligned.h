#pragma once
// Storage that starts on a 64-byte cache line, for arrays the vector kernels stream through.
// malloc aligns to 16 bytes only, so whether a kernel's 64-byte loads straddle two lines would
// change from run to run, and with it the kernel's speed (see BufferPool).
#include <cstddef>
#include <new>

namespace pkv::cpu {

inline constexpr std::align_val_t kCacheLine{64};

template <typename T>
struct CacheLineAllocator {
    using value_type = T;
    CacheLineAllocator() = default;
    template <typename U>
    CacheLineAllocator(const CacheLineAllocator<U>&) {}
    T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kCacheLine)); }
    void deallocate(T* p, size_t) { ::operator delete(p, kCacheLine); }
    template <typename U>
    bool operator==(const CacheLineAllocator<U>&) const { return true; }
    template <typename U>
    bool operator!=(const CacheLineAllocator<U>&) const { return false; }
};

}  // namespace pkv::cpu
