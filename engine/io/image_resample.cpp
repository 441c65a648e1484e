// PIL's antialiased bicubic resize (Image.resize(size, BICUBIC) on 8-bit RGB), re-derived from
// its arithmetic so that the vision tower sees the very pixels the reference saw: coefficients
// in double, rounded to 22-bit fixed point, and each pass rounded and clamped to uint8.

// Bit-exactness needs every double operation rounded on its own, as in PIL's build; a fused
// multiply-add (which -march=native would allow) can move a coefficient across a rounding step.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "engine/io/image.h"

namespace pkv {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // leaves room for 8-bit pixels times sums above 1
constexpr double kBicubicSupport = 2.0;

// Keys' cubic convolution kernel with a = -0.5.
double bicubic(double x) {
    constexpr double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

// For each output index: the first input index it reads and its fixed-point weights.
struct Taps {
    int kernelSize = 0;
    std::vector<int> first;
    std::vector<int> count;
    std::vector<int32_t> weights;  // outSize x kernelSize, zero past `count`
};

Taps computeTaps(int inSize, int outSize) {
    const double scale = double(inSize) / outSize;
    // Shrinking widens the kernel by the same factor, so every input pixel contributes (antialias).
    const double filterScale = std::max(scale, 1.0);
    const double support = kBicubicSupport * filterScale;
    const double invFilterScale = 1.0 / filterScale;

    Taps t;
    t.kernelSize = int(std::ceil(support)) * 2 + 1;
    t.first.resize(outSize);
    t.count.resize(outSize);
    t.weights.assign(size_t(outSize) * t.kernelSize, 0);
    std::vector<double> w(t.kernelSize);
    for (int xx = 0; xx < outSize; ++xx) {
        const double center = (xx + 0.5) * scale;
        // PIL truncates toward zero after adding 0.5, then clamps to the image.
        const int xmin = std::max(int(center - support + 0.5), 0);
        const int xmax = std::min(int(center + support + 0.5), inSize) - xmin;
        double total = 0.0;
        for (int x = 0; x < xmax; ++x) {
            w[x] = bicubic((x + xmin - center + 0.5) * invFilterScale);
            total += w[x];
        }
        int32_t* k = &t.weights[size_t(xx) * t.kernelSize];
        for (int x = 0; x < xmax; ++x) {
            const double normalised = total != 0.0 ? w[x] / total : w[x];
            const double scaled = normalised * (1 << kPrecisionBits);
            k[x] = int32_t(normalised < 0 ? -0.5 + scaled : 0.5 + scaled);
        }
        t.first[xx] = xmin;
        t.count[xx] = xmax;
    }
    return t;
}

uint8_t roundAndClamp(int32_t acc) {
    if (acc <= 0) return 0;
    if (acc >= (1 << kPrecisionBits) << 8) return 255;
    return uint8_t(acc >> kPrecisionBits);
}

// Rows [rowBegin, rowEnd) of src, resampled along x.
RgbImage resampleRows(const RgbImage& src, int rowBegin, int rowEnd, int newWidth) {
    const Taps t = computeTaps(src.width, newWidth);
    RgbImage out{newWidth, rowEnd - rowBegin, {}};
    out.pixels.resize(size_t(out.width) * out.height * 3);
    for (int y = rowBegin; y < rowEnd; ++y) {
        const uint8_t* in = &src.pixels[size_t(y) * src.width * 3];
        uint8_t* o = &out.pixels[size_t(y - rowBegin) * newWidth * 3];
        for (int xx = 0; xx < newWidth; ++xx) {
            const int32_t* k = &t.weights[size_t(xx) * t.kernelSize];
            const uint8_t* p = in + size_t(t.first[xx]) * 3;
            int32_t acc[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1)};
            for (int x = 0; x < t.count[xx]; ++x)
                for (int c = 0; c < 3; ++c) acc[c] += p[x * 3 + c] * k[x];
            for (int c = 0; c < 3; ++c) o[xx * 3 + c] = roundAndClamp(acc[c]);
        }
    }
    return out;
}

// src resampled along y; `rowOffset` is the original row index of src's first row.
RgbImage resampleColumns(const RgbImage& src, const Taps& t, int rowOffset) {
    const int newHeight = int(t.first.size());
    const size_t stride = size_t(src.width) * 3;
    RgbImage out{src.width, newHeight, {}};
    out.pixels.resize(stride * newHeight);
    std::vector<int32_t> acc(stride);
    for (int yy = 0; yy < newHeight; ++yy) {
        std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
        const int32_t* k = &t.weights[size_t(yy) * t.kernelSize];
        for (int y = 0; y < t.count[yy]; ++y) {
            const uint8_t* row = &src.pixels[size_t(t.first[yy] - rowOffset + y) * stride];
            for (size_t i = 0; i < stride; ++i) acc[i] += row[i] * k[y];
        }
        uint8_t* o = &out.pixels[size_t(yy) * stride];
        for (size_t i = 0; i < stride; ++i) o[i] = roundAndClamp(acc[i]);
    }
    return out;
}

}  // namespace

RgbImage resizeBicubicPil(const RgbImage& src, int newWidth, int newHeight) {
    if (src.width <= 0 || src.height <= 0 || newWidth <= 0 || newHeight <= 0)
        throw std::invalid_argument("resizeBicubicPil needs non-empty source and target sizes");
    // PIL skips a pass whose size does not change (running it would still round), so skipping is
    // part of the exact behaviour.
    const bool horizontal = newWidth != src.width;
    const bool vertical = newHeight != src.height;
    if (!vertical) return horizontal ? resampleRows(src, 0, src.height, newWidth) : src;

    const Taps rows = computeTaps(src.height, newHeight);
    if (!horizontal) return resampleColumns(src, rows, 0);
    // Pillow 13 runs the vertical pass first when the height loses more than twice as many
    // pixels as the width (found by matching its output on thousands of size pairs); older
    // Pillow always went horizontal first. The two orders round differently, so it matters for
    // exactness, though never for the CLIP pipeline, whose two sides always scale the same way.
    const int64_t heightLoss = int64_t(src.height) - newHeight;
    const int64_t widthLoss = int64_t(src.width) - newWidth;
    if (heightLoss > 0 && heightLoss > 2 * widthLoss)
        return resampleRows(resampleColumns(src, rows, 0), 0, newHeight, newWidth);
    // Only the rows the vertical pass will read go through the horizontal pass.
    const int firstRow = rows.first.front();
    const int lastRow = rows.first.back() + rows.count.back();
    return resampleColumns(resampleRows(src, firstRow, lastRow, newWidth), rows, firstRow);
}

}  // namespace pkv
