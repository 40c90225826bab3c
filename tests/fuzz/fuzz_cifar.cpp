// libFuzzer harness for the CIFAR-10 batch reader (polymath/data/cifar.hpp),
// fed raw or gzip bytes from memory (scripts/fuzz builds and runs it).
//
// Any input must either parse or throw polymath::Error. A parsed batch must
// hold N = size / 3073 records, labels 0..9 and the record bytes unchanged.
#include <cstddef>
#include <cstdint>
#include <span>

#include "polymath/data/cifar.hpp"

namespace {
void require(bool ok) {
    if (!ok) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);
    polymath::data::CifarBatch b;
    try {
        b = polymath::data::load_cifar10_batch(input, "fuzz-input");
    } catch (const polymath::Error&) {
        return 0;
    }
    const std::int64_t n = b.size();
    require(n >= 1 && b.images.numel() == n * 3072);
    for (std::int64_t i = 0; i < n; ++i) require(b.labels.data()[i] >= 0 && b.labels.data()[i] <= 9);
    if (!polymath::data::is_gzip(input)) {
        require(std::size_t(n) * 3073 == size);
        for (std::int64_t i = 0; i < n; ++i)
            require(b.images.data()[i * 3072 + 3071] == data[std::size_t(i) * 3073 + 3072]);
    }
    return 0;
}
