#pragma once
// Makes the CUDA backend selectable: call once at program start (before LlavaModel::load) in
// builds with PKV_HAVE_CUDA. The engine then uses CUDA when a device is present with room for the
// weights, and otherwise says why not (registry.h: BackendChoice::reason).
namespace pkv::cuda {

void registerBackend();

}  // namespace pkv::cuda
