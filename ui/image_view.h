#pragma once
// The question's image: opened from a file, dropped, or pasted. Files are decoded by the engine's
// own decoder, so what is shown is exactly what the model will see before preprocessing; a file
// that is not an image yields the engine's sentence, and the previous image stays.
#include <QImage>
#include <QLabel>
#include <memory>

class QMimeData;

#include "engine/io/image.h"

namespace pkvui {

class ImageView : public QLabel {
    Q_OBJECT
public:
    explicit ImageView(QWidget* parent = nullptr);

    bool loadFile(const QString& path);
    void setImage(const QImage& image, const QString& name);
    void clearImage();
    // What a drop or a paste delivers: an image, or a local image file; false when rejected.
    bool takeMimeData(const QMimeData* mime);
    std::shared_ptr<const pkv::RgbImage> image() const { return image_; }
    QString name() const { return name_; }

signals:
    void imageChanged(const QString& description);
    void imageRejected(const QString& sentence);

protected:
    void dragEnterEvent(QDragEnterEvent* e) override;
    void dropEvent(QDropEvent* e) override;
    void resizeEvent(QResizeEvent* e) override;

private:
    void show(const pkv::RgbImage& img, const QString& name);
    void rescale();

    std::shared_ptr<const pkv::RgbImage> image_;
    QImage shown_;
    QString name_;
};

QImage toQImage(const pkv::RgbImage& img);
pkv::RgbImage fromQImage(const QImage& img);

}  // namespace pkvui
