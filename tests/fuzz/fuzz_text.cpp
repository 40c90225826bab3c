// libFuzzer harness for the line readers (polymath/data/text.hpp), fed raw or
// gzip bytes from memory (scripts/fuzz builds and runs it).
//
// Any input must either read or throw polymath::Error. Lines hold no '\n'.
// The input split at its first byte's value (mod size) into two "files" must
// either pair up line by line or throw polymath::Error (different counts).
#include <cstddef>
#include <cstdint>
#include <span>

#include "polymath/data/text.hpp"

namespace {
void require(bool ok) {
    if (!ok) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);
    try {
        const auto lines = polymath::data::read_lines(input, "fuzz-input");
        for (const auto& l : lines) require(l.find('\n') == std::string::npos);
    } catch (const polymath::Error&) {
    }
    if (size == 0) return 0;
    const std::size_t cut = data[0] % size;
    try {
        const auto pairs =
            polymath::data::read_parallel(input.subspan(0, cut), "fuzz-src", input.subspan(cut), "fuzz-tgt");
        const auto src = polymath::data::read_lines(input.subspan(0, cut), "fuzz-src");
        require(pairs.size() == src.size());
    } catch (const polymath::Error&) {
    }
    return 0;
}
