#pragma once
// Images in: decode any common format with OpenCV to 8-bit RGB, then the CLIP preprocessing
// LLaVA uses, reproducing PIL's arithmetic (antialiased bicubic with 8-bit fixed-point passes).
#include <cstdint>
#include <string>
#include <vector>

#include "engine/io/model_config.h"

namespace pkv {

struct RgbImage {
    int width = 0;
    int height = 0;
    std::vector<uint8_t> pixels;  // row-major, interleaved R,G,B
};

// How an image reaches the square the vision tower sees.
enum class ImageMode {
    Pad,   // LLaVA-1.5 / reference evaluation: pad to square with the mean colour, then resize
    Crop,  // llava-hf processor: shortest side to the target, centre crop
};

// Default limit on decoded pixels (a decompression-bomb guard), about 8k x 8k.
constexpr int64_t kMaxImagePixels = 64LL * 1024 * 1024;

// Decode from a file or from encoded bytes. 8/16-bit, gray, gray+alpha, RGBA (alpha dropped, as
// PIL's convert("RGB") does), EXIF orientation ignored (as PIL.Image.open does). Throws pkv::Error:
// missing file, empty file, not an image, more than maxPixels pixels (checked from the header
// before the pixels are decoded).
RgbImage decodeImageFile(const std::string& path, int64_t maxPixels = kMaxImagePixels);
RgbImage decodeImageBytes(const std::vector<uint8_t>& bytes, const std::string& nameForErrors,
                          int64_t maxPixels = kMaxImagePixels);

// PIL Image.resize(size, BICUBIC) on 8-bit RGB, bit-exact: antialiased support when shrinking,
// horizontal pass then vertical pass, 22-bit fixed-point coefficients, rounding and clamping to
// uint8 after each pass.
RgbImage resizeBicubicPil(const RgbImage& src, int newWidth, int newHeight);

// LLaVA's expand2square: centred paste on a square canvas filled with `fill`.
RgbImage padToSquare(const RgbImage& src, const uint8_t fill[3]);

// Pad or crop mode up to the last 8-bit step: the RGB image the vision tower sees before rescale
// and normalisation (also what a viewer can show as "what the model sees").
RgbImage preprocessPixels(const RgbImage& img, const PreprocessConfig& cfg, ImageMode mode);

// The full pipeline to a CHW float tensor [3, cropHeight, cropWidth], normalised with the
// config's mean/std. Pad mode fills with int(255*mean) per channel.
std::vector<float> preprocessImage(const RgbImage& img, const PreprocessConfig& cfg, ImageMode mode);

}  // namespace pkv
