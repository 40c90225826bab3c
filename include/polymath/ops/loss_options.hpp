// polymath/ops/loss_options.hpp — the options of the loss ops, shared by the
// CPU (ops/loss.hpp) and CUDA (ops/cuda/loss.cuh) implementations, so that a
// translation unit may include both. No Eigen here: nvcc includes it.
#pragma once
#include <cstdint>

namespace polymath {

enum class Reduction { None, Mean, Sum };

struct CrossEntropyOptions {
    std::int64_t ignore_index = -100;
    double label_smoothing = 0.0;  // in [0, 1]
    Reduction reduction = Reduction::Mean;
};

struct NllLossOptions {
    std::int64_t ignore_index = -100;
    Reduction reduction = Reduction::Mean;
};

}  // namespace polymath
