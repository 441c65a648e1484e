#include "engine/io/image_header.h"

#include <cstring>

namespace pkv {
namespace {

uint32_t be16(const uint8_t* p) { return uint32_t(p[0]) << 8 | p[1]; }
uint32_t be32(const uint8_t* p) { return be16(p) << 16 | be16(p + 2); }
uint32_t le16(const uint8_t* p) { return uint32_t(p[1]) << 8 | p[0]; }
uint32_t le24(const uint8_t* p) { return uint32_t(p[2]) << 16 | le16(p); }
uint32_t le32(const uint8_t* p) { return uint32_t(p[3]) << 24 | le24(p); }

bool startsWith(const uint8_t* data, size_t size, const char* magic, size_t n) {
    return size >= n && std::memcmp(data, magic, n) == 0;
}

std::optional<ImageHeaderSize> sized(int64_t w, int64_t h) {
    if (w <= 0 || h <= 0) return std::nullopt;
    return ImageHeaderSize{w, h};
}

std::optional<ImageHeaderSize> png(const uint8_t* d, size_t n) {
    // The IHDR chunk must come first, right after the 8-byte signature.
    if (n < 24 || std::memcmp(d + 12, "IHDR", 4) != 0) return std::nullopt;
    return sized(be32(d + 16), be32(d + 20));
}

bool isStartOfFrame(uint8_t marker) {
    // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC), which share the range.
    return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

std::optional<ImageHeaderSize> jpeg(const uint8_t* d, size_t n) {
    // Walk the marker segments until the frame header; pixel data only follows it.
    size_t pos = 2;
    while (pos + 4 <= n) {
        if (d[pos] != 0xFF) return std::nullopt;
        const uint8_t marker = d[pos + 1];
        if (marker == 0xFF) {  // fill byte
            ++pos;
            continue;
        }
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) {  // segments without a length
            pos += 2;
            continue;
        }
        if (marker == 0xD9 || marker == 0xDA) return std::nullopt;  // no frame header before data
        const size_t length = be16(d + pos + 2);
        if (length < 2) return std::nullopt;
        if (isStartOfFrame(marker)) {
            if (pos + 9 > n) return std::nullopt;
            return sized(be16(d + pos + 7), be16(d + pos + 5));
        }
        pos += 2 + length;
    }
    return std::nullopt;
}

std::optional<ImageHeaderSize> gif(const uint8_t* d, size_t n) {
    if (n < 10) return std::nullopt;
    return sized(le16(d + 6), le16(d + 8));
}

std::optional<ImageHeaderSize> bmp(const uint8_t* d, size_t n) {
    if (n < 26) return std::nullopt;
    if (le32(d + 14) == 12) return sized(le16(d + 18), le16(d + 20));  // OS/2 core header
    const auto width = int32_t(le32(d + 18));
    const auto height = int32_t(le32(d + 22));  // negative for top-down rows
    return sized(width, height < 0 ? -int64_t(height) : height);
}

std::optional<ImageHeaderSize> webp(const uint8_t* d, size_t n) {
    if (n < 30 || std::memcmp(d + 8, "WEBP", 4) != 0) return std::nullopt;
    const uint8_t* chunk = d + 12;
    if (std::memcmp(chunk, "VP8X", 4) == 0) return sized(le24(d + 24) + 1, le24(d + 27) + 1);
    if (std::memcmp(chunk, "VP8L", 4) == 0 && d[20] == 0x2F) {
        const uint32_t bits = le32(d + 21);
        return sized((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1);
    }
    if (std::memcmp(chunk, "VP8 ", 4) == 0 && d[23] == 0x9D && d[24] == 0x01 && d[25] == 0x2A)
        return sized(le16(d + 26) & 0x3FFF, le16(d + 28) & 0x3FFF);
    return std::nullopt;
}

}  // namespace

std::optional<ImageHeaderSize> readImageHeaderSize(const uint8_t* data, size_t size) {
    if (startsWith(data, size, "\x89PNG\r\n\x1a\n", 8)) return png(data, size);
    if (startsWith(data, size, "\xFF\xD8", 2)) return jpeg(data, size);
    if (startsWith(data, size, "GIF87a", 6) || startsWith(data, size, "GIF89a", 6)) return gif(data, size);
    if (startsWith(data, size, "BM", 2)) return bmp(data, size);
    if (startsWith(data, size, "RIFF", 4)) return webp(data, size);
    return std::nullopt;
}

}  // namespace pkv
