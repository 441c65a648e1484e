#include "engine/io/image.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <limits>

// OpenCV 4.6's headers mix enum types in arithmetic, which C++20 deprecates; the warning is theirs.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-enum-enum-conversion"
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#pragma GCC diagnostic pop

#include "engine/common/error.h"
#include "engine/io/image_header.h"

namespace pkv {
namespace {

[[noreturn]] void tooLarge(const std::string& name, int64_t w, int64_t h, int64_t maxPixels) {
    throw Error("Image '" + name + "' is " + std::to_string(w) + " x " + std::to_string(h) + " = " +
                std::to_string(w * h) + " pixels, more than the limit of " + std::to_string(maxPixels) +
                " pixels.");
}

// 16-bit samples map to 8 bits by rounding v/257 (65535 -> 255, exact at multiples of 257). PIL
// would clip 16-bit grey to 0..255 (nearly every pixel white) and truncate 16-bit colour to the
// high byte; neither is a faithful picture of the image, so rounding is the honest choice.
cv::Mat to8Bit(const cv::Mat& m, const std::string& name) {
    if (m.depth() == CV_8U) return m;
    if (m.depth() != CV_16U)
        throw Error("Image '" + name + "' stores its pixels as floating-point or signed samples; only 8- and 16-bit images are supported.");
    cv::Mat out(m.size(), CV_MAKETYPE(CV_8U, m.channels()));
    const size_t n = m.total() * m.channels();
    const cv::Mat in = m.isContinuous() ? m : m.clone();
    const auto* src = in.ptr<uint16_t>();
    auto* dst = out.ptr<uint8_t>();
    for (size_t i = 0; i < n; ++i) dst[i] = uint8_t((uint32_t(src[i]) + 128) / 257);
    return out;
}

// OpenCV's channel orders (gray, gray+alpha, BGR, BGRA) to interleaved RGB; alpha is dropped
// as PIL's convert("RGB") drops it.
RgbImage toRgb(const cv::Mat& m, const std::string& name) {
    const int channels = m.channels();
    if (channels < 1 || channels > 4)
        throw Error("Image '" + name + "' has " + std::to_string(channels) + " channels; expected grey, grey+alpha, colour or colour+alpha.");
    RgbImage img{m.cols, m.rows, {}};
    img.pixels.resize(size_t(m.cols) * m.rows * 3);
    uint8_t* o = img.pixels.data();
    for (int y = 0; y < m.rows; ++y) {
        const uint8_t* p = m.ptr<uint8_t>(y);
        for (int x = 0; x < m.cols; ++x, p += channels, o += 3) {
            if (channels <= 2) {
                o[0] = o[1] = o[2] = p[0];
            } else {
                o[0] = p[2];
                o[1] = p[1];
                o[2] = p[0];
            }
        }
    }
    return img;
}

std::array<int, 2> resizedSize(int width, int height, int shortestEdge) {
    // transformers' get_resize_output_image_size(default_to_square=False): the long side is
    // int(shortest_edge * long / short), truncated.
    const bool wide = width > height;
    const int shortSide = wide ? height : width;
    const int longSide = wide ? width : height;
    const int newLong = int(double(int64_t(shortestEdge) * longSide) / shortSide);
    return wide ? std::array<int, 2>{newLong, shortestEdge} : std::array<int, 2>{shortestEdge, newLong};
}

int floorDiv2(int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

// transformers' center_crop: offsets floor((in - out) / 2); where the image is smaller than the
// crop it is padded with zeros, which is what it does too.
RgbImage centreCrop(const RgbImage& src, int cropWidth, int cropHeight) {
    const int top = floorDiv2(src.height - cropHeight);
    const int left = floorDiv2(src.width - cropWidth);
    RgbImage out{cropWidth, cropHeight, std::vector<uint8_t>(size_t(cropWidth) * cropHeight * 3, 0)};
    for (int y = 0; y < cropHeight; ++y) {
        const int sy = y + top;
        if (sy < 0 || sy >= src.height) continue;
        for (int x = 0; x < cropWidth; ++x) {
            const int sx = x + left;
            if (sx < 0 || sx >= src.width) continue;
            for (int c = 0; c < 3; ++c)
                out.pixels[(size_t(y) * cropWidth + x) * 3 + c] = src.pixels[(size_t(sy) * src.width + sx) * 3 + c];
        }
    }
    return out;
}

}  // namespace

RgbImage decodeImageBytes(const std::vector<uint8_t>& bytes, const std::string& nameForErrors,
                          int64_t maxPixels) {
    const std::string& name = nameForErrors;
    if (bytes.empty()) throw Error("Image file '" + name + "' is empty (0 bytes).");
    if (bytes.size() > size_t(std::numeric_limits<int>::max()))
        throw Error("Image file '" + name + "' is larger than 2 GiB, more than any image this program reads.");
    if (const auto size = readImageHeaderSize(bytes.data(), bytes.size());
        size && size->width * size->height > maxPixels)
        tooLarge(name, size->width, size->height, maxPixels);

    // IMREAD_UNCHANGED keeps 16-bit depth and alpha, and (unlike the other modes) never applies
    // the EXIF orientation, matching PIL.Image.open. Formats without a header check above still
    // meet OpenCV's own pixel limit (OPENCV_IO_MAX_IMAGE_PIXELS, 2^30 by default), which throws.
    cv::Mat decoded;
    try {
        const cv::Mat buffer(1, int(bytes.size()), CV_8U, const_cast<uint8_t*>(bytes.data()));
        decoded = cv::imdecode(buffer, cv::IMREAD_UNCHANGED);
    } catch (const cv::Exception&) {
        decoded.release();
    }
    if (decoded.empty())
        throw Error("Image file '" + name + "' could not be decoded: it is not an image in a supported format, or it is corrupt.");
    if (int64_t(decoded.total()) > maxPixels) tooLarge(name, decoded.cols, decoded.rows, maxPixels);
    return toRgb(to8Bit(decoded, name), name);
}

RgbImage decodeImageFile(const std::string& path, int64_t maxPixels) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status)) throw Error("Image file '" + path + "' does not exist.");
    if (std::filesystem::is_directory(status)) throw Error("'" + path + "' is a folder, not an image file.");
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> bytes;
    if (in) bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!in && !in.eof()) throw Error("Image file '" + path + "' could not be read.");
    return decodeImageBytes(bytes, path, maxPixels);
}

RgbImage padToSquare(const RgbImage& src, const uint8_t fill[3]) {
    const int side = std::max(src.width, src.height);
    if (src.width == side && src.height == side) return src;
    RgbImage out{side, side, std::vector<uint8_t>(size_t(side) * side * 3)};
    for (size_t i = 0; i < out.pixels.size(); i += 3)
        for (int c = 0; c < 3; ++c) out.pixels[i + c] = fill[c];
    const int left = (side - src.width) / 2;
    const int top = (side - src.height) / 2;
    const size_t rowBytes = size_t(src.width) * 3;
    for (int y = 0; y < src.height; ++y)
        std::copy_n(&src.pixels[y * rowBytes], rowBytes, &out.pixels[(size_t(y + top) * side + left) * 3]);
    return out;
}

RgbImage preprocessPixels(const RgbImage& input, const PreprocessConfig& cfg, ImageMode mode) {
    if (cfg.doResize && cfg.resample != 3)
        throw Error("The preprocessor configuration asks for resampling filter " + std::to_string(cfg.resample) +
                    ", but only bicubic (3), which CLIP and LLaVA use, is supported.");
    RgbImage img = input;
    if (mode == ImageMode::Pad) {
        // LLaVA's expand2square fills with tuple(int(x * 255) for x in image_mean).
        uint8_t fill[3];
        for (int c = 0; c < 3; ++c) fill[c] = uint8_t(int(double(cfg.mean[c]) * 255));
        img = padToSquare(img, fill);
    }
    if (cfg.doResize) {
        const auto [w, h] = resizedSize(img.width, img.height, cfg.shortestEdge);
        img = resizeBicubicPil(img, w, h);
    }
    if (cfg.doCenterCrop) img = centreCrop(img, cfg.cropWidth, cfg.cropHeight);
    return img;
}

std::vector<float> preprocessImage(const RgbImage& input, const PreprocessConfig& cfg, ImageMode mode) {
    const RgbImage img = preprocessPixels(input, cfg, mode);
    // Rescale in double and store float32, as transformers' rescale does; normalise in float32.
    const size_t plane = size_t(img.width) * img.height;
    std::vector<float> chw(plane * 3);
    for (int c = 0; c < 3; ++c) {
        for (size_t i = 0; i < plane; ++i) {
            const uint8_t v = img.pixels[i * 3 + c];
            float x = cfg.doRescale ? float(v * double(cfg.rescaleFactor)) : float(v);
            if (cfg.doNormalize) x = (x - cfg.mean[c]) / cfg.std[c];
            chw[c * plane + i] = x;
        }
    }
    return chw;
}

}  // namespace pkv
