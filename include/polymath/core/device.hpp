// polymath/core/device.hpp — device tags. Device is a template parameter of
// Tensor and of every layer, so CPU/GPU dispatch costs nothing at run time.
#pragma once
#include <string_view>
#include <type_traits>

namespace polymath {

struct Cpu {
    static constexpr std::string_view name = "cpu";
};
struct Cuda {
    static constexpr std::string_view name = "cuda";
};

template <class D>
inline constexpr bool is_device_v = std::is_same_v<D, Cpu> || std::is_same_v<D, Cuda>;

}  // namespace polymath
