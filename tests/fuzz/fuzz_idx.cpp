// libFuzzer harness for the IDX reader (polymath/data/idx.hpp), fed raw or
// gzip bytes from memory (scripts/fuzz builds and runs it).
//
// Any input must either parse or throw polymath::Error: no crash, no sanitizer
// report, no other exception, no runaway allocation. A parsed array must be
// consistent (data size = product of dims) and a prefix read must return a
// prefix of it. A violated property traps (a crash the fuzzer reports).
#include <cstddef>
#include <cstdint>
#include <span>

#include "polymath/data/idx.hpp"

namespace {
void require(bool ok) {
    if (!ok) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);
    polymath::data::IdxArray a;
    try {
        a = polymath::data::read_idx(input, "fuzz-input");
    } catch (const polymath::Error&) {
        return 0;  // rejected: the expected outcome for most inputs
    }
    require(!a.dims.empty() && a.numel() == std::int64_t(a.data.size()));
    const auto prefix = polymath::data::read_idx(input, "fuzz-input", 1);  // a valid file stays valid
    require(prefix.dims[0] == 1 && prefix.data.size() * std::size_t(a.dims[0]) == a.data.size());
    for (std::size_t i = 0; i < prefix.data.size(); ++i) require(prefix.data[i] == a.data[i]);
    return 0;
}
