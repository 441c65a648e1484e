#include "ui/image_view.h"

#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileInfo>
#include <QMimeData>

#include "engine/common/error.h"

namespace pkvui {

QImage toQImage(const pkv::RgbImage& img) {
    QImage out(img.width, img.height, QImage::Format_RGB888);
    for (int y = 0; y < img.height; ++y)
        std::memcpy(out.scanLine(y), img.pixels.data() + size_t(y) * size_t(img.width) * 3, size_t(img.width) * 3);
    return out;
}

pkv::RgbImage fromQImage(const QImage& src) {
    const QImage rgb = src.convertToFormat(QImage::Format_RGB888);
    pkv::RgbImage img;
    img.width = rgb.width();
    img.height = rgb.height();
    img.pixels.resize(size_t(img.width) * size_t(img.height) * 3);
    for (int y = 0; y < img.height; ++y)
        std::memcpy(img.pixels.data() + size_t(y) * size_t(img.width) * 3, rgb.constScanLine(y), size_t(img.width) * 3);
    return img;
}

ImageView::ImageView(QWidget* parent) : QLabel(parent) {
    setAcceptDrops(true);
    setAlignment(Qt::AlignCenter);
    setMinimumSize(200, 160);
    setFrameShape(QFrame::StyledPanel);
    setText("Drop an image here,\nopen one, or paste (Ctrl+V)");
    setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Ignored);
}

bool ImageView::loadFile(const QString& path) {
    try {
        show(pkv::decodeImageFile(path.toStdString()), QFileInfo(path).fileName());
        return true;
    } catch (const pkv::Error& e) {
        emit imageRejected(QString::fromStdString(e.what()));
        return false;
    }
}

void ImageView::setImage(const QImage& image, const QString& name) {
    if (image.isNull()) {
        emit imageRejected("The clipboard holds no image.");
        return;
    }
    show(fromQImage(image), name);
}

void ImageView::clearImage() {
    image_.reset();
    shown_ = {};
    name_.clear();
    setPixmap({});
    setText("Drop an image here,\nopen one, or paste (Ctrl+V)");
    emit imageChanged({});
}

void ImageView::show(const pkv::RgbImage& img, const QString& name) {
    image_ = std::make_shared<const pkv::RgbImage>(img);
    shown_ = toQImage(img);
    name_ = name;
    rescale();
    emit imageChanged(QString("%1 — %2 × %3 px").arg(name).arg(img.width).arg(img.height));
}

void ImageView::rescale() {
    if (shown_.isNull()) return;
    setPixmap(QPixmap::fromImage(shown_.scaled(size(), Qt::KeepAspectRatio, Qt::SmoothTransformation)));
}

void ImageView::resizeEvent(QResizeEvent* e) {
    QLabel::resizeEvent(e);
    rescale();
}

void ImageView::dragEnterEvent(QDragEnterEvent* e) {
    if (e->mimeData()->hasUrls() || e->mimeData()->hasImage()) e->acceptProposedAction();
}

void ImageView::dropEvent(QDropEvent* e) {
    takeMimeData(e->mimeData());
    e->acceptProposedAction();
}

bool ImageView::takeMimeData(const QMimeData* m) {
    if (m->hasImage()) {
        const QImage img = qvariant_cast<QImage>(m->imageData());
        setImage(img, "dropped image");
        return !img.isNull();
    }
    if (!m->hasUrls() || m->urls().isEmpty()) {
        emit imageRejected("What was dropped is neither an image nor an image file.");
        return false;
    }
    const QUrl url = m->urls().first();
    if (!url.isLocalFile()) {
        emit imageRejected("Only local image files can be dropped, not " + url.toString() + ".");
        return false;
    }
    return loadFile(url.toLocalFile());
}

}  // namespace pkvui
