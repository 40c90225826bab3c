// polymath/ops/padding_mode.hpp — padding of the channels-last 1-D ops
// (depthwise_conv1d, max_pool1d_channels_last), shared by the CPU
// (ops/conv.hpp) and CUDA (ops/cuda/conv.cuh) implementations. No Eigen here.
#pragma once
#include <ostream>

namespace polymath {

enum class PaddingMode { Valid, Same, Causal };
inline const char* padding_mode_name(PaddingMode m) {
    switch (m) {
        case PaddingMode::Valid: return "Valid";
        case PaddingMode::Same: return "Same";
        case PaddingMode::Causal: return "Causal";
    }
    return "?";
}
inline std::ostream& operator<<(std::ostream& os, PaddingMode m) { return os << padding_mode_name(m); }

}  // namespace polymath

namespace polymath::ops {
using polymath::PaddingMode;
}  // namespace polymath::ops
