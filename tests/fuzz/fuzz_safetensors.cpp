// libFuzzer harness for the safetensors reader (scripts/fuzz builds and runs it).
//
// Any input must either parse or throw polymath::Error — nothing else: no
// crash, no sanitizer report, no other exception, no runaway allocation.
// A file that parses is also checked against the writer: it re-serializes,
// the result parses back to the same contents, and every entry converts to a
// typed tensor. A violated property traps (a crash the fuzzer reports).
//
//   scripts/fuzz          # 60 s
//   scripts/fuzz 600      # 10 min
#include <cstddef>
#include <cstdint>
#include <span>

#include "polymath/io/safetensors.hpp"

namespace {

namespace io = polymath::io;

void require(bool ok) {
    if (!ok) __builtin_trap();
}

void read_typed(const io::SafetensorsFile& f, const io::TensorEntry& e) {
    using polymath::DType;
    std::int64_t n = 0;
    switch (e.dtype) {
        case DType::Float32: n = io::get<float>(f, e.name).numel(); break;
        case DType::Float64: n = io::get<double>(f, e.name).numel(); break;
        case DType::Int32: n = io::get<std::int32_t>(f, e.name).numel(); break;
        case DType::Int64: n = io::get<std::int64_t>(f, e.name).numel(); break;
        case DType::UInt8: n = io::get<std::uint8_t>(f, e.name).numel(); break;
        case DType::Bool: n = io::get<bool>(f, e.name).numel(); break;
        case DType::BFloat16: n = io::get<polymath::bfloat16>(f, e.name).numel(); break;
        case DType::Float16: n = io::get<polymath::half>(f, e.name).numel(); break;
    }
    require(n == e.numel());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
    io::SafetensorsFile f;
    try {
        f = io::parse_safetensors(input, "fuzz-input");
    } catch (const polymath::Error&) {
        return 0;  // rejected: the expected outcome for most inputs
    }
    // Accepted: the contents must survive the writer and a second read unchanged.
    for (const auto& e : f.tensors) read_typed(f, e);
    const std::vector<std::byte> again = io::serialize_safetensors(f);
    const io::SafetensorsFile g = io::parse_safetensors(again, "fuzz-reserialized");
    require(g.metadata == f.metadata);
    require(g.tensors.size() == f.tensors.size());
    for (const auto& e : f.tensors) {
        const io::TensorEntry* h = g.find(e.name);
        require(h != nullptr && h->dtype == e.dtype && h->shape == e.shape && h->bytes == e.bytes);
    }
    require(io::serialize_safetensors(g) == again);  // the writer is deterministic
    return 0;
}
