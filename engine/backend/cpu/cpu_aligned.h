#pragma once
// Storage that starts on a 64-byte cache line, for arrays the vector kernels stream through.
// malloc aligns to 16 bytes only; a 64-byte load from an address 16 or 48 bytes into a line
// touches two lines, and the decode kernels issue one per 16 floats (see BufferPool).
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
