#include "engine/model/projector.h"

namespace pkv {

Projector::Projector(const ModelFolder& folder, Backend& backend) : be_(backend) {
    const int64_t dv = folder.config().vision.hiddenSize, dt = folder.config().text.hiddenSize;
    auto load = [&](const std::string& name, std::vector<int64_t> shape) {
        const TensorView& t = folder.require("multi_modal_projector." + name, shape);
        return be_.weight(t, shape.size() == 1 ? 1 : shape[0], shape.back());
    };
    w1_ = load("linear_1.weight", {dt, dv});
    w2_ = load("linear_2.weight", {dt, dt});
    if (folder.config().projectorBias) {
        b1_ = load("linear_1.bias", {dt});
        b2_ = load("linear_2.bias", {dt});
    }
}

Tensor Projector::forward(const Tensor& features) {
    Tensor h = be_.allocOutput(features.rows(), w1_.rows);
    be_.linear(features, w1_, &b1_, h);
    be_.gelu(h);
    Tensor out = be_.allocOutput(features.rows(), w2_.rows);
    be_.linear(h, w2_, &b2_, out);
    return out;
}

}  // namespace pkv
