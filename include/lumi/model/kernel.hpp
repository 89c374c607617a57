#pragma once

namespace lumi::model {

// How a layer computes: fused, its own single-pass loops with a hand-written backward (float32 on CPU, where
// they exist; the plain ops elsewhere); plain, LibTorch ops differentiated by autograd (the reference the
// fused kernels are tested against, and a benchmark variant).
enum class Kernel { fused, plain };

}  // namespace lumi::model
