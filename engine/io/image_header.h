#pragma once
// Image dimensions read from the first bytes of an encoded file, without decoding any pixels, so
// that a decompression bomb (a few kilobytes claiming 60000 x 60000 pixels) is refused before a
// decoder allocates for it.
#include <cstddef>
#include <cstdint>
#include <optional>

namespace pkv {

struct ImageHeaderSize {
    int64_t width = 0;
    int64_t height = 0;
};

// PNG, JPEG, GIF, BMP and WebP. Empty for other formats and for headers too short or malformed to
// state a size; the decoder then judges the file.
std::optional<ImageHeaderSize> readImageHeaderSize(const uint8_t* data, size_t size);

}  // namespace pkv
