// Image input against PIL: decoding of every format, the bicubic resize bit for bit, LLaVA's pad
// and the CLIP processor's crop pipelines, and the errors a user can cause. Goldens come from
// tests/fixtures/images_golden.py (PIL + numpy); see that script for what each input exercises.
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <cstring>
#include <functional>
#include <fstream>
#include <memory>

#include "common/errors.h"
#include "common/paths.h"
#include "engine/common/error.h"
#include "engine/io/image.h"
#include "engine/io/safetensors.h"

using pkv::RgbImage;

using pkvtest::errorOf;

namespace {

const pkv::SafetensorsFile& goldens() {
    static const auto file =
        pkv::SafetensorsFile::open(pkvtest::str(pkvtest::fixturesDir() + "/golden/preprocess.safetensors"));
    return *file;
}

const pkv::TensorView& golden(const std::string& name) {
    const pkv::TensorView* t = goldens().find(name);
    if (!t) throw std::runtime_error("golden tensor missing: " + name);
    return *t;
}

// An HxWx3 U8 golden as an image.
RgbImage goldenImage(const std::string& name) {
    const pkv::TensorView& t = golden(name);
    const auto* p = reinterpret_cast<const uint8_t*>(t.data);
    return RgbImage{int(t.shape.at(1)), int(t.shape.at(0)), std::vector<uint8_t>(p, p + t.nbytes)};
}

std::string imagePath(const QString& name) { return pkvtest::str(pkvtest::fixturesDir() + "/images/" + name); }

pkv::PreprocessConfig clipConfig(int size) {
    pkv::PreprocessConfig cfg;
    cfg.shortestEdge = cfg.cropWidth = cfg.cropHeight = size;
    return cfg;
}

// Largest absolute channel difference; -1 when the sizes differ.
int maxDiff(const RgbImage& a, const RgbImage& b) {
    if (a.width != b.width || a.height != b.height || a.pixels.size() != b.pixels.size()) return -1;
    int worst = 0;
    for (size_t i = 0; i < a.pixels.size(); ++i) worst = std::max(worst, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
    return worst;
}

uint64_t fnv1a64(const std::vector<uint8_t>& bytes) {
    uint64_t h = 0xCBF29CE484222325ULL;
    for (uint8_t b : bytes) h = (h ^ b) * 0x100000001B3ULL;
    return h;
}

uint32_t crc32(const uint8_t* p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) {
        c ^= p[i];
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

void putBe32(std::vector<uint8_t>& v, uint32_t x) {
    for (int s = 24; s >= 0; s -= 8) v.push_back(uint8_t(x >> s));
}

void pngChunk(std::vector<uint8_t>& v, const char* type, const std::vector<uint8_t>& data) {
    putBe32(v, uint32_t(data.size()));
    const size_t start = v.size();
    v.insert(v.end(), type, type + 4);
    v.insert(v.end(), data.begin(), data.end());
    putBe32(v, crc32(&v[start], v.size() - start));
}

// A valid PNG header (correct CRCs) that claims width x height 8-bit RGB pixels and holds none.
std::vector<uint8_t> pngBomb(uint32_t width, uint32_t height) {
    std::vector<uint8_t> v = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    std::vector<uint8_t> ihdr;
    putBe32(ihdr, width);
    putBe32(ihdr, height);
    ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});
    pngChunk(v, "IHDR", ihdr);
    pngChunk(v, "IEND", {});
    return v;
}

std::vector<uint8_t> le(uint32_t x, int bytes) {
    std::vector<uint8_t> v;
    for (int i = 0; i < bytes; ++i) v.push_back(uint8_t(x >> (8 * i)));
    return v;
}

std::vector<uint8_t> concat(std::initializer_list<std::vector<uint8_t>> parts) {
    std::vector<uint8_t> v;
    for (const auto& p : parts) v.insert(v.end(), p.begin(), p.end());
    return v;
}

std::vector<uint8_t> bytesOf(const char* s) { return std::vector<uint8_t>(s, s + std::strlen(s)); }


void writeFile(const QString& path, const std::vector<uint8_t>& bytes) {
    std::ofstream(pkvtest::str(path), std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace

class TestImage : public QObject {
    Q_OBJECT

private slots:
    void decodeMatchesPil_data() {
        QTest::addColumn<QString>("file");
        QTest::addColumn<int>("tolerance");
        for (const char* f : {"chelsea.png", "coffee_gray.png", "astronaut_rgba.png", "coffee_la.png", "palette.png",
                              "gray16.png", "chelsea.bmp", "chelsea.webp", "wide.png", "tall.png", "one_pixel.png"})
            QTest::newRow(f) << f << 0;
        // PIL's wheel bundles its own libjpeg-turbo, OpenCV uses the system's; both use the same
        // integer IDCT and agree exactly today, but a different libjpeg may round by one.
        QTest::newRow("chelsea.jpg") << "chelsea.jpg" << 1;
        QTest::newRow("chelsea_exif6.jpg") << "chelsea_exif6.jpg" << 1;
    }
    void decodeMatchesPil() {
        QFETCH(QString, file);
        QFETCH(int, tolerance);
        const RgbImage got = pkv::decodeImageFile(imagePath(file));
        const int diff = maxDiff(got, goldenImage("decode/" + file.toStdString()));
        QVERIFY2(diff >= 0, "decoded size differs from PIL's");
        QVERIFY2(diff <= tolerance, qPrintable(QString("max channel difference %1").arg(diff)));
    }

    // OpenCV 4.6 has no GIF decoder (4.11 added one): either it decodes as PIL does, or the user
    // reads a sentence naming the file.
    void gifDecodesOrSaysWhy() {
        const std::string path = imagePath("chelsea.gif");
        try {
            QCOMPARE(maxDiff(pkv::decodeImageFile(path), goldenImage("decode/chelsea.gif")), 0);
        } catch (const pkv::Error& e) {
            QVERIFY(QString(e.what()).contains("chelsea.gif"));
            QVERIFY(QString(e.what()).contains("could not be decoded"));
        }
    }

    void decodeFromBytesEqualsFromFile() {
        std::ifstream in(imagePath("chelsea.png"), std::ios::binary);
        const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
        const RgbImage a = pkv::decodeImageBytes(bytes, "chelsea.png");
        QCOMPARE(maxDiff(a, pkv::decodeImageFile(imagePath("chelsea.png"))), 0);
    }

    // PIL's bicubic resize on a 37x23 crop (up, down, odd ratios, one side only, the same size)
    // and on the 150x100 photo: tolerance 0, every byte equal.
    void resizeMatchesPil_data() {
        QTest::addColumn<QString>("name");
        for (const auto& [name, t] : goldens().tensors())
            if (name.rfind("sweep_", 0) == 0) QTest::newRow(name.c_str()) << QString::fromStdString(name);
    }
    void resizeMatchesPil() {
        QFETCH(QString, name);
        const RgbImage photo = goldenImage("decode/chelsea.png");
        RgbImage src = photo;
        if (name.startsWith("sweep_small/")) {  // images_golden.py SWEEP_SOURCE: left 20, top 10, 37 x 23
            src = RgbImage{37, 23, {}};
            for (int y = 0; y < 23; ++y) {
                const auto* row = &photo.pixels[(size_t(y + 10) * photo.width + 20) * 3];
                src.pixels.insert(src.pixels.end(), row, row + 37 * 3);
            }
        }
        const RgbImage want = goldenImage(name.toStdString());
        QCOMPARE(maxDiff(pkv::resizeBicubicPil(src, want.width, want.height), want), 0);
    }

    void pipelineMatchesPil_data() {
        QTest::addColumn<QString>("file");
        QTest::addColumn<QString>("mode");
        for (const auto& [name, t] : goldens().tensors()) {
            for (const char* mode : {"pad", "crop"}) {
                const std::string prefix = std::string(mode) + "56/";
                if (name.rfind(prefix, 0) == 0)
                    QTest::newRow(name.c_str()) << QString::fromStdString(name.substr(prefix.size())) << mode;
            }
        }
    }
    // Pixels before normalisation, tolerance 0 (the requirement is 1/255), at the tiny models'
    // 56 in full and at CLIP's 336 by hash (full 336 goldens for every input would weigh megabytes).
    void pipelineMatchesPil() {
        QFETCH(QString, file);
        QFETCH(QString, mode);
        const RgbImage input = goldenImage("decode/" + file.toStdString());
        const pkv::ImageMode m = mode == "pad" ? pkv::ImageMode::Pad : pkv::ImageMode::Crop;
        const RgbImage at56 = pkv::preprocessPixels(input, clipConfig(56), m);
        QCOMPARE(maxDiff(at56, goldenImage((mode + "56/" + file).toStdString())), 0);

        const RgbImage at336 = pkv::preprocessPixels(input, clipConfig(336), m);
        QCOMPARE(at336.width, 336);
        QCOMPARE(at336.height, 336);
        const pkv::TensorView& hash = golden(("fnv1a64_" + mode + "336/" + file).toStdString());
        uint64_t want = 0;
        std::memcpy(&want, hash.data, sizeof want);  // little-endian on every platform we build for
        QCOMPARE(fnv1a64(at336.pixels), want);
    }

    void pipelineAt336InFull() {
        const RgbImage got = pkv::preprocessPixels(goldenImage("decode/chelsea.png"), clipConfig(336), pkv::ImageMode::Pad);
        QCOMPARE(maxDiff(got, goldenImage("pad336/chelsea.png")), 0);
    }

    // transformers pads with zeros when the crop is larger than the resized image.
    void cropLargerThanImagePadsWithZeros() {
        pkv::PreprocessConfig cfg = clipConfig(28);
        cfg.shortestEdge = 20;
        const RgbImage got = pkv::preprocessPixels(goldenImage("decode/wide.png"), cfg, pkv::ImageMode::Crop);
        QCOMPARE(maxDiff(got, goldenImage("crop_pad_20_28/wide.png")), 0);
    }

    // float32 CHW after rescale and normalise; within 1e-6 (float32 rounding of the same steps).
    void normalisedTensorMatches_data() {
        QTest::addColumn<QString>("golden");
        QTest::newRow("pad chelsea") << "norm56_pad/chelsea.png";
        QTest::newRow("crop wide") << "norm56_crop/wide.png";
    }
    void normalisedTensorMatches() {
        QFETCH(QString, golden);
        const bool pad = golden.contains("_pad/");
        const std::string file = golden.section('/', 1).toStdString();
        const std::vector<float> got = pkv::preprocessImage(goldenImage("decode/" + file), clipConfig(56),
                                                            pad ? pkv::ImageMode::Pad : pkv::ImageMode::Crop);
        const pkv::TensorView& want = ::golden(golden.toStdString());
        QCOMPARE(want.shape, (std::vector<int64_t>{3, 56, 56}));
        QCOMPARE(got.size(), size_t(want.numel()));
        const auto* w = reinterpret_cast<const float*>(want.data);
        float worst = 0;
        for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - w[i]));
        QVERIFY2(worst <= 1e-6f, qPrintable(QString("max |diff| %1").arg(worst)));
    }

    void padToSquareCentresOnTheMeanColour() {
        const RgbImage src{3, 1, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
        const uint8_t fill[3] = {122, 116, 104};
        const RgbImage sq = pkv::padToSquare(src, fill);
        QCOMPARE(sq.width, 3);
        QCOMPARE(sq.height, 3);
        QCOMPARE(std::vector<uint8_t>(sq.pixels.begin(), sq.pixels.begin() + 3), (std::vector<uint8_t>{122, 116, 104}));
        QCOMPARE(std::vector<uint8_t>(sq.pixels.begin() + 9, sq.pixels.begin() + 18), src.pixels);
    }

    void errorsNameTheFile() {
        QTemporaryDir dir;
        const QString missing = dir.filePath("missing.png");
        QCOMPARE(errorOf([&] { pkv::decodeImageFile(pkvtest::str(missing)); }),
                 QString("Image file '%1' does not exist.").arg(missing));

        const QString empty = dir.filePath("empty.png");
        writeFile(empty, {});
        QCOMPARE(errorOf([&] { pkv::decodeImageFile(pkvtest::str(empty)); }),
                 QString("Image file '%1' is empty (0 bytes).").arg(empty));

        const QString text = dir.filePath("notes.jpg");
        writeFile(text, bytesOf("these are not pixels"));
        QCOMPARE(errorOf([&] { pkv::decodeImageFile(pkvtest::str(text)); }),
                 QString("Image file '%1' could not be decoded: it is not an image in a supported format, or it is "
                         "corrupt.").arg(text));

        std::ifstream in(imagePath("chelsea.png"), std::ios::binary);
        std::vector<uint8_t> png{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
        png.resize(png.size() / 3);
        const QString truncated = dir.filePath("truncated.png");
        writeFile(truncated, png);
        QVERIFY(errorOf([&] { pkv::decodeImageFile(pkvtest::str(truncated)); }).contains("could not be decoded"));

        QCOMPARE(errorOf([&] { pkv::decodeImageFile(pkvtest::str(dir.path())); }),
                 QString("'%1' is a folder, not an image file.").arg(dir.path()));
    }

    // A 60000 x 60000 PNG of 57 bytes: refused from its header, before any pixel is allocated.
    void decompressionBombIsRefusedFromTheHeader() {
        QTemporaryDir dir;
        const QString bomb = dir.filePath("bomb.png");
        writeFile(bomb, pngBomb(60000, 60000));
        QCOMPARE(errorOf([&] { pkv::decodeImageFile(pkvtest::str(bomb)); }),
                 QString("Image '%1' is 60000 x 60000 = 3600000000 pixels, more than the limit of 67108864 pixels.")
                     .arg(bomb));
    }

    // Header-only files in each format the header reader knows: were the size not read from the
    // header, the decoder would fail on the missing data with a different sentence.
    void headerSizeIsReadForEachFormat_data() {
        QTest::addColumn<QByteArray>("bytes");
        QTest::addColumn<QString>("size");
        const auto row = [](const char* name, const std::vector<uint8_t>& v, const char* size) {
            QTest::newRow(name) << QByteArray(reinterpret_cast<const char*>(v.data()), qsizetype(v.size())) << size;
        };
        row("png", pngBomb(5000, 4000), "5000 x 4000");
        row("jpeg", {0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC2, 0, 11, 8, 0x0F, 0xA0, 0x13, 0x88, 3, 1, 0x11, 0},
            "5000 x 4000");
        row("gif", concat({bytesOf("GIF89a"), le(5000, 2), le(4000, 2), {0, 0, 0}}), "5000 x 4000");
        row("bmp", concat({bytesOf("BM"), le(0, 4), le(0, 4), le(54, 4), le(40, 4), le(5000, 4), le(uint32_t(-4000), 4),
                           le(1, 2), le(24, 2)}),
            "5000 x 4000");
        row("webp VP8X", concat({bytesOf("RIFF"), le(30, 4), bytesOf("WEBPVP8X"), le(10, 4), le(0, 4), le(4999, 3), le(3999, 3)}),
            "5000 x 4000");
        row("webp VP8L", concat({bytesOf("RIFF"), le(30, 4), bytesOf("WEBPVP8L"), le(10, 4), {0x2F}, le(4999 | (3999u << 14), 4),
                                 {0, 0, 0, 0, 0}}),
            "5000 x 4000");
        row("webp VP8", concat({bytesOf("RIFF"), le(30, 4), bytesOf("WEBPVP8 "), le(10, 4), {0, 0, 0, 0x9D, 0x01, 0x2A},
                                le(5000, 2), le(4000, 2)}),
            "5000 x 4000");
    }
    void headerSizeIsReadForEachFormat() {
        QFETCH(QByteArray, bytes);
        QFETCH(QString, size);
        const std::vector<uint8_t> v(bytes.begin(), bytes.end());
        QCOMPARE(errorOf([&] { pkv::decodeImageBytes(v, "header-only", 1'000'000); }),
                 QString("Image 'header-only' is %1 = 20000000 pixels, more than the limit of 1000000 pixels.").arg(size));
    }

    // Real files in each format with a limit one pixel short of their size, then exactly at it.
    void limitIsInclusive_data() {
        QTest::addColumn<QString>("file");
        for (const char* f : {"chelsea.png", "chelsea.jpg", "chelsea.bmp", "chelsea.webp"}) QTest::newRow(f) << f;
    }
    void limitIsInclusive() {
        QFETCH(QString, file);
        const RgbImage img = pkv::decodeImageFile(imagePath(file));
        const int64_t pixels = int64_t(img.width) * img.height;
        QVERIFY(errorOf([&] { pkv::decodeImageFile(imagePath(file), pixels - 1); }).contains("more than the limit"));
        QCOMPARE(pkv::decodeImageFile(imagePath(file), pixels).pixels, img.pixels);
    }
};

QTEST_APPLESS_MAIN(TestImage)
#include "test_image.moc"
