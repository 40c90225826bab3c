// polymath/io/safetensors.hpp — tensors in the safetensors layout (Hugging Face).
//
// The format (https://github.com/huggingface/safetensors, "Format"):
//
//   bytes 0..8        N, the header length, u64 little-endian
//   bytes 8..8+N      the header: UTF-8 JSON, one object
//                       {"__metadata__": {"k": "v", ...},            (optional, string -> string)
//                        "name": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
//                        ...}
//                     padded with spaces (0x20) to a multiple of 8 bytes when written
//   bytes 8+N..end    the byte buffer: every tensor's elements, row-major (C order),
//                     little-endian, at [begin, end) of `data_offsets`, counted
//                     from the start of the buffer (not of the file).
//
// dtypes polymath reads and writes: F64 F32 F16 BF16 I64 I32 U8 BOOL. The other
// safetensors dtypes (I8 I16 U16 U32 U64 F8_* ...) are recognised and rejected
// as unsupported, anything else as unknown.
//
// What the writer guarantees (serialize_safetensors / save_safetensors):
//   - the exact layout of the reference implementation: compact JSON, fields in
//     the order dtype, shape, data_offsets, "__metadata__" first (omitted when
//     empty, keys sorted), tensors ordered as the reference orders them
//     (descending dtype rank U64 I64 F64 F32 I32 BF16 F16 U8 BOOL, then by name
//     byte-wise), packed back to back from offset 0, header padded with spaces
//     to a multiple of 8 so every tensor starts 8-byte aligned in the file. The
//     same contents always give the same bytes (byte-identical to what the
//     Python package writes for at most one metadata key);
//   - save_safetensors is atomic: it writes `path + ".tmp.<pid>"`, fsyncs it,
//     renames it over `path` and fsyncs the directory. On any failure (invalid
//     entries, I/O error, rename refused) the old file at `path` is untouched,
//     the temporary is removed and polymath::Error says why. (Two threads of one
//     process must not save to the same path at the same time.)
//
// What the reader checks (load_safetensors / parse_safetensors) — it never
// trusts the header; every failure is a polymath::Error naming the file (or the
// caller's `origin`) and the byte offset or the tensor involved:
//   - the file holds the 8-byte length; N <= 100'000'000 (the reference limit)
//     and 8 + N <= file size;
//   - the header starts with '{', is valid UTF-8 JSON (no comments, no NUL byte,
//     nothing but whitespace after the object), nests at most 64 levels, and has no
//     duplicate key in any object (duplicate tensor names included);
//   - "__metadata__" is an object of strings; every other entry is an object
//     with "dtype" (a known, supported name), "shape" (at most 8 integers in
//     [0, 2^63)) and "data_offsets" (two integers begin <= end <= buffer size);
//     other fields are ignored, as the reference does;
//   - end - begin == numel * itemsize, computed without overflow (a shape whose
//     strides would not fit in int64 is rejected too);
//   - sorted by offset, the tensors tile the buffer exactly: the first starts at
//     0, each starts where the previous ended (no overlap, no gap) and the last
//     ends at the end of the file.
// Element values are not checked (NaN and inf are data); BOOL bytes other than
// 0/1 read as true.
//
// Usage:
//
//   namespace io = polymath::io;
//   io::SafetensorsFile f;
//   io::put(f, "w", Tensor<float>{{1, 2}, {3, 4}});
//   io::put(f, "ids", Tensor<std::int64_t>{7, 8, 9});
//   f.metadata["note"] = "hello";
//   io::save_safetensors("model.safetensors", f);
//
//   io::SafetensorsFile g = io::load_safetensors("model.safetensors");
//   Tensor<float> w = io::get<float>(g, "w");          // Error if missing or not F32
//   for (const io::TensorEntry& e : g.tensors) std::cout << e.name << ' ' << e.dtype << ' ' << e.shape << '\n';
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "polymath/core/dtype.hpp"
#include "polymath/core/error.hpp"
#include "polymath/core/shape.hpp"
#include "polymath/tensor/tensor.hpp"

namespace polymath::io {

// The largest header accepted (and written): the reference implementation's limit.
inline constexpr std::uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;
// Deepest JSON nesting accepted in a header (a valid one needs 3).
inline constexpr int kSafetensorsMaxJsonDepth = 64;

// One tensor, type-erased: `bytes` holds numel(shape) * dtype_size(dtype)
// bytes, row-major, little-endian.
struct TensorEntry {
    std::string name;
    DType dtype = DType::Float32;
    Shape shape;
    std::vector<std::byte> bytes;

    std::int64_t numel() const noexcept { return numel_of(shape); }
};

// The contents of one safetensors file. `tensors` is in file (offset) order
// after a load; any order is fine for a save. `origin` names the file in error
// messages (set by the loader; optional otherwise).
struct SafetensorsFile {
    std::vector<TensorEntry> tensors;
    std::map<std::string, std::string> metadata;
    std::string origin;

    const TensorEntry* find(std::string_view name) const noexcept {
        for (const auto& e : tensors)
            if (e.name == name) return &e;
        return nullptr;
    }
    bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }
};

// "F32", "I64", ... for the dtypes polymath supports.
constexpr std::string_view safetensors_dtype_name(DType d) {
    switch (d) {
        case DType::Float32: return "F32";
        case DType::Float64: return "F64";
        case DType::Int32: return "I32";
        case DType::Int64: return "I64";
        case DType::UInt8: return "U8";
        case DType::Bool: return "BOOL";
        case DType::BFloat16: return "BF16";
        case DType::Float16: return "F16";
    }
    return "?";
}

namespace detail {

inline std::string origin_label(const std::string& origin) {
    return origin.empty() ? std::string("<memory>") : "'" + origin + "'";
}

// Throws Error("safetensors: '<origin>': <pieces>").
template <class... A>
[[noreturn]] void fail(const std::string& origin, A&&... pieces) {
    throw Error(polymath::detail::str_cat("safetensors: ", origin_label(origin), ": ", std::forward<A>(pieces)...));
}

inline bool checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t& out) noexcept {
    return !__builtin_mul_overflow(a, b, &out);
}

// The reference's Dtype enum order (its writer sorts by it, descending).
inline int dtype_rank(DType d) noexcept {
    switch (d) {
        case DType::Bool: return 0;
        case DType::UInt8: return 1;
        case DType::Float16: return 7;
        case DType::BFloat16: return 8;
        case DType::Int32: return 9;
        case DType::Float32: return 11;
        case DType::Float64: return 12;
        case DType::Int64: return 13;
    }
    return -1;
}

enum class DTypeLookup { Supported, Unsupported, Unknown };

inline DTypeLookup dtype_from_name(std::string_view s, DType& out) noexcept {
    static constexpr DType all[] = {DType::Float32, DType::Float64, DType::Int32,    DType::Int64,
                                    DType::UInt8,   DType::Bool,    DType::BFloat16, DType::Float16};
    for (DType d : all)
        if (safetensors_dtype_name(d) == s) {
            out = d;
            return DTypeLookup::Supported;
        }
    static constexpr std::string_view other[] = {"I8",      "I16",     "U16",     "U32", "U64",
                                                 "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4",  "F6_E2M3",
                                                 "F6_E3M2", "C64",     "E8M0",    "I4",  "U4"};
    for (auto o : other)
        if (o == s) return DTypeLookup::Unsupported;
    return DTypeLookup::Unknown;
}

// Byte size of numel(shape) * itemsize, or nullopt on overflow. Also rejects
// shapes whose contiguous strides (product of max(dim, 1)) exceed int64.
inline std::optional<std::uint64_t> byte_size(const Shape& shape, std::size_t itemsize) noexcept {
    std::uint64_t n = 1, stride_extent = 1;
    for (auto d : shape) {
        if (d < 0) return std::nullopt;
        const auto u = static_cast<std::uint64_t>(d);
        if (!checked_mul(n, u, n)) return std::nullopt;
        if (!checked_mul(stride_extent, std::max<std::uint64_t>(u, 1), stride_extent)) return std::nullopt;
        if (stride_extent > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
    }
    std::uint64_t bytes = 0;
    if (!checked_mul(n, itemsize, bytes)) return std::nullopt;
    return bytes;
}

// Reverses the bytes of each `itemsize`-wide element (big-endian hosts only).
inline void swap_elements(std::byte* p, std::size_t nbytes, std::size_t itemsize) noexcept {
    if (itemsize <= 1) return;
    for (std::size_t i = 0; i + itemsize <= nbytes; i += itemsize) std::reverse(p + i, p + i + itemsize);
}

// A name or JSON text as shown in a message: at most 200 bytes (a hostile
// header may hold a 100 MB key).
inline std::string shown(std::string_view s) {
    return s.size() <= 200 ? std::string(s)
                           : std::string(s.substr(0, 200)) + "...(" + std::to_string(s.size()) + " bytes)";
}

// The header text and the tensors in write order, after every check.
struct Prepared {
    std::string header;  // padded, without the 8-byte length
    std::vector<const TensorEntry*> order;
    std::uint64_t buffer_bytes = 0;
};

inline Prepared prepare(const SafetensorsFile& f, const std::string& origin) {
    Prepared p;
    std::set<std::string_view> names;
    for (const auto& e : f.tensors) {
        if (e.name == "__metadata__")
            fail(origin, "a tensor may not be named '__metadata__' (the key is reserved for the metadata)");
        if (!names.insert(e.name).second) fail(origin, "duplicate tensor name '", e.name, "'");
        if (dtype_rank(e.dtype) < 0) fail(origin, "tensor '", e.name, "' has an invalid dtype");
        const auto need = byte_size(e.shape, dtype_size(e.dtype));
        if (!need) fail(origin, "tensor '", e.name, "': shape ", e.shape, " is negative or overflows");
        if (*need != e.bytes.size())
            fail(origin, "tensor '", e.name, "' (", safetensors_dtype_name(e.dtype), " ", e.shape, ") needs ", *need,
                 " bytes but holds ", e.bytes.size());
        p.order.push_back(&e);
    }
    std::sort(p.order.begin(), p.order.end(), [](const TensorEntry* a, const TensorEntry* b) {
        const int ra = dtype_rank(a->dtype), rb = dtype_rank(b->dtype);
        if (ra != rb) return ra > rb;
        return a->name < b->name;  // char_traits<char>: byte-wise, as the reference
    });

    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    if (!f.metadata.empty()) {
        nlohmann::ordered_json m = nlohmann::ordered_json::object();
        for (const auto& [k, v] : f.metadata) m[k] = v;
        h["__metadata__"] = std::move(m);
    }
    std::uint64_t offset = 0;
    for (const TensorEntry* e : p.order) {
        nlohmann::ordered_json info = nlohmann::ordered_json::object();
        info["dtype"] = std::string(safetensors_dtype_name(e->dtype));
        nlohmann::ordered_json shape = nlohmann::ordered_json::array();
        for (auto d : e->shape) shape.push_back(static_cast<std::uint64_t>(d));
        info["shape"] = std::move(shape);
        const std::uint64_t end = offset + e->bytes.size();
        info["data_offsets"] = nlohmann::ordered_json::array({offset, end});
        offset = end;
        h[e->name] = std::move(info);
    }
    p.buffer_bytes = offset;
    try {
        p.header = h.dump();
    } catch (const nlohmann::json::exception& ex) {
        fail(origin, "cannot write the header (a tensor name or metadata string is not valid UTF-8): ", ex.what());
    }
    p.header.append((8 - p.header.size() % 8) % 8, ' ');
    if (p.header.size() > kSafetensorsMaxHeaderBytes)
        fail(origin, "the header would be ", p.header.size(), " bytes, above the ", kSafetensorsMaxHeaderBytes,
             "-byte limit readers enforce");
    return p;
}

inline void put_u64_le(std::byte* out, std::uint64_t v) noexcept {
    for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>((v >> (8 * i)) & 0xFFu);
}

inline std::string errno_text(int e) { return std::strerror(e); }

}  // namespace detail

// ---- typed access -------------------------------------------------------------------

// Adds (a contiguous copy of) `t` under `name`. Throws when the name is taken
// or reserved, or `t` is undefined.
template <class T>
void put(SafetensorsFile& f, std::string name, const Tensor<T>& t) {
    POLYMATH_CHECK(t.defined(), "safetensors put", "tensor '", name, "' is undefined");
    POLYMATH_CHECK(name != "__metadata__", "safetensors put", "the name '__metadata__' is reserved");
    POLYMATH_CHECK(!f.contains(name), "safetensors put", "a tensor named '", name, "' is already in ",
                   detail::origin_label(f.origin));
    TensorEntry e;
    e.name = std::move(name);
    e.dtype = dtype_of_v<T>;
    e.shape = t.shape();
    const Tensor<T> c = t.contiguous();
    const std::size_t n = static_cast<std::size_t>(c.numel()) * sizeof(T);
    e.bytes.resize(n);
    if (n) std::memcpy(e.bytes.data(), c.data(), n);
    if constexpr (std::endian::native == std::endian::big) detail::swap_elements(e.bytes.data(), n, sizeof(T));
    f.tensors.push_back(std::move(e));
}

// The tensor `name` as a fresh Tensor<T>. Throws naming the tensor and the
// file when it is missing, or when its dtype is not T (naming both dtypes).
template <class T>
Tensor<T> get(const SafetensorsFile& f, std::string_view name) {
    const TensorEntry* e = f.find(name);
    if (!e) {
        std::string have;
        std::size_t shown = 0;
        for (const auto& x : f.tensors) {
            if (shown++ == 20) {
                have += ", ...";
                break;
            }
            have += (have.empty() ? "'" : ", '") + x.name + "'";
        }
        POLYMATH_THROW("safetensors get", "no tensor named '", name, "' in ", detail::origin_label(f.origin),
                       " (it holds ", f.tensors.size(), " tensor(s)", have.empty() ? "" : ": ", have, ")");
    }
    POLYMATH_CHECK(e->dtype == dtype_of_v<T>, "safetensors get", "tensor '", name, "' in ",
                   detail::origin_label(f.origin), " has dtype ", safetensors_dtype_name(e->dtype), " (", e->dtype,
                   "), not the requested ", safetensors_dtype_name(dtype_of_v<T>), " (", dtype_of_v<T>, ")");
    const auto need = detail::byte_size(e->shape, sizeof(T));
    POLYMATH_CHECK(need && *need == e->bytes.size(), "safetensors get", "tensor '", name, "' in ",
                   detail::origin_label(f.origin), " holds ", e->bytes.size(), " bytes, not the ", need ? *need : 0,
                   " its shape ", e->shape, " needs");
    Tensor<T> t = Tensor<T>::empty(e->shape);
    const std::size_t n = e->bytes.size();
    if constexpr (std::is_same_v<T, bool>) {
        // Not every byte is a valid bool object: convert, nonzero is true.
        for (std::size_t i = 0; i < n; ++i) t.data()[i] = e->bytes[i] != std::byte{0};
    } else {
        if (n) std::memcpy(t.data(), e->bytes.data(), n);
        if constexpr (std::endian::native == std::endian::big)
            detail::swap_elements(reinterpret_cast<std::byte*>(t.data()), n, sizeof(T));
    }
    return t;
}

// ---- writing ----------------------------------------------------------------------------

// The whole file in memory. Throws (naming f.origin) when an entry is invalid:
// duplicate or reserved name, byte count that does not match dtype and shape,
// strings that are not UTF-8.
inline std::vector<std::byte> serialize_safetensors(const SafetensorsFile& f) {
    const detail::Prepared p = detail::prepare(f, f.origin);
    std::vector<std::byte> out(8 + p.header.size() + p.buffer_bytes);
    detail::put_u64_le(out.data(), p.header.size());
    std::memcpy(out.data() + 8, p.header.data(), p.header.size());
    std::size_t at = 8 + p.header.size();
    for (const TensorEntry* e : p.order) {
        if (!e->bytes.empty()) std::memcpy(out.data() + at, e->bytes.data(), e->bytes.size());
        at += e->bytes.size();
    }
    return out;
}

// Writes `f` to `path` atomically (see the file comment).
inline void save_safetensors(const std::string& path, const SafetensorsFile& f) {
    const detail::Prepared p = detail::prepare(f, path);  // every check before the disk is touched
    const std::string tmp = path + ".tmp." + std::to_string(static_cast<long long>(::getpid()));

    struct TempFile {
        std::string path;
        int fd = -1;
        bool committed = false;
        ~TempFile() {
            if (fd >= 0) ::close(fd);
            if (!committed) ::unlink(path.c_str());
        }
    } guard{tmp};

    guard.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (guard.fd < 0) {
        const int e = errno;
        guard.committed = true;  // nothing was created
        detail::fail(path, "cannot create the temporary file '", tmp, "': ", detail::errno_text(e));
    }
    auto write_all = [&](const void* data, std::size_t n) {
        const char* c = static_cast<const char*>(data);
        while (n > 0) {
            const ::ssize_t w = ::write(guard.fd, c, std::min<std::size_t>(n, std::size_t(1) << 30));
            if (w < 0) {
                if (errno == EINTR) continue;
                const int e = errno;
                detail::fail(path, "writing '", tmp, "' failed: ", detail::errno_text(e));
            }
            c += w;
            n -= static_cast<std::size_t>(w);
        }
    };
    std::byte len[8];
    detail::put_u64_le(len, p.header.size());
    write_all(len, 8);
    write_all(p.header.data(), p.header.size());
    for (const TensorEntry* e : p.order) write_all(e->bytes.data(), e->bytes.size());
    if (::fsync(guard.fd) != 0) {
        const int e = errno;
        detail::fail(path, "fsync of '", tmp, "' failed: ", detail::errno_text(e));
    }
    const int fd = guard.fd;
    guard.fd = -1;
    if (::close(fd) != 0) {
        const int e = errno;
        detail::fail(path, "closing '", tmp, "' failed: ", detail::errno_text(e));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int e = errno;
        detail::fail(path, "cannot rename '", tmp, "' over it: ", detail::errno_text(e));
    }
    guard.committed = true;
    // Make the rename itself durable (best effort: some file systems refuse).
    const auto slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)::fsync(dfd);
        ::close(dfd);
    }
}

// ---- reading ----------------------------------------------------------------------------

// Parses a whole safetensors file held in memory; `origin` names it in errors.
inline SafetensorsFile parse_safetensors(std::span<const std::byte> data, std::string origin = "<memory>") {
    using nlohmann::json;
    const std::size_t size = data.size();
    if (size < 8)
        detail::fail(origin, "the file is ", size,
                     " bytes, shorter than the 8-byte header length at byte 0 (truncated or not safetensors)");
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<std::uint64_t>(data[static_cast<std::size_t>(i)]);
    if (n > kSafetensorsMaxHeaderBytes)
        detail::fail(origin, "header length ", n, " (u64 at byte 0) exceeds the ", kSafetensorsMaxHeaderBytes,
                     "-byte limit");
    if (n > size - 8)
        detail::fail(origin, "header length ", n,
                     " (u64 at byte 0) runs past the end of the file: the header would end at byte ", 8 + n,
                     " but the file is ", size, " bytes");
    if (n == 0 || data[8] != std::byte{'{'}) detail::fail(origin, "the header at byte 8 does not start with '{'");

    const char* hbegin = reinterpret_cast<const char*>(data.data() + 8);
    const char* hend = hbegin + n;
    // nlohmann's lexer takes a NUL byte for the end of the input and would
    // ignore whatever follows; JSON text never holds a raw NUL.
    if (const void* nul = std::memchr(hbegin, 0, static_cast<std::size_t>(n)))
        detail::fail(origin, "the header contains a NUL byte at file byte ",
                     8 + static_cast<std::uint64_t>(static_cast<const char*>(nul) - hbegin));
    const std::uint64_t buffer_start = 8 + n;
    const std::uint64_t buffer_size = size - buffer_start;

    // Duplicate keys (nlohmann keeps one silently) and runaway nesting are
    // caught while parsing.
    std::vector<std::set<std::string>> open_objects;
    json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) -> bool {
        switch (ev) {
            case json::parse_event_t::object_start:
            case json::parse_event_t::array_start:
                if (depth >= kSafetensorsMaxJsonDepth)
                    detail::fail(origin, "the header nests deeper than ", kSafetensorsMaxJsonDepth, " levels");
                if (ev == json::parse_event_t::object_start) open_objects.emplace_back();
                break;
            case json::parse_event_t::object_end:
                if (!open_objects.empty()) open_objects.pop_back();
                break;
            case json::parse_event_t::key:
                if (!open_objects.empty() && parsed.is_string() &&
                    !open_objects.back().insert(parsed.get_ref<const std::string&>()).second) {
                    if (depth <= 1)
                        detail::fail(origin, "duplicate tensor name '",
                                     detail::shown(parsed.get_ref<const std::string&>()), "' in the header");
                    detail::fail(origin, "duplicate key '", detail::shown(parsed.get_ref<const std::string&>()),
                                 "' in an object of the header (depth ", depth, ")");
                }
                break;
            default: break;
        }
        return true;
    };
    json root;
    try {
        root = json::parse(hbegin, hend, cb, /*allow_exceptions=*/true, /*ignore_comments=*/false);
    } catch (const json::parse_error& ex) {
        const std::uint64_t at = 8 + (ex.byte > 0 ? std::min<std::uint64_t>(ex.byte - 1, n) : 0);
        detail::fail(origin, "the header (bytes 8..", 8 + n, ") is not valid JSON: error at byte ", at, ": ",
                     ex.what());
    } catch (const json::exception& ex) {
        detail::fail(origin, "the header (bytes 8..", 8 + n, ") is not valid JSON: ", ex.what());
    }
    if (!root.is_object()) detail::fail(origin, "the header at byte 8 is a JSON ", root.type_name(), ", not an object");

    SafetensorsFile out;
    out.origin = origin;
    struct Span {
        std::uint64_t begin, end;
        std::size_t index;
    };
    std::vector<Span> spans;
    for (const auto& [key, value] : root.items()) {
        if (key == "__metadata__") {
            if (!value.is_object())
                detail::fail(origin, "'__metadata__' must be an object of strings, not a JSON ", value.type_name());
            for (const auto& [mk, mv] : value.items()) {
                if (!mv.is_string())
                    detail::fail(origin, "'__metadata__' value of key '", detail::shown(mk), "' is a JSON ",
                                 mv.type_name(), ", not a string");
                out.metadata.emplace(mk, mv.get<std::string>());
            }
            continue;
        }
        const std::string where = "tensor '" + detail::shown(key) + "'";
        if (!value.is_object()) detail::fail(origin, where, " must be a JSON object, not a ", value.type_name());

        TensorEntry e;
        e.name = key;
        const auto dt = value.find("dtype");
        if (dt == value.end()) detail::fail(origin, where, " has no \"dtype\"");
        if (!dt->is_string()) detail::fail(origin, where, ": \"dtype\" is a JSON ", dt->type_name(), ", not a string");
        const std::string& dname = dt->get_ref<const std::string&>();
        switch (detail::dtype_from_name(dname, e.dtype)) {
            case detail::DTypeLookup::Supported: break;
            case detail::DTypeLookup::Unsupported:
                detail::fail(
                    origin, where, ": dtype '", dname,
                    "' is valid safetensors but polymath does not support it (F64 F32 F16 BF16 I64 I32 U8 BOOL)");
            case detail::DTypeLookup::Unknown:
                detail::fail(origin, where, ": unknown dtype '", detail::shown(dname), "'");
        }

        const auto sh = value.find("shape");
        if (sh == value.end()) detail::fail(origin, where, " has no \"shape\"");
        if (!sh->is_array()) detail::fail(origin, where, ": \"shape\" is a JSON ", sh->type_name(), ", not an array");
        if (sh->size() > static_cast<std::size_t>(kMaxDims))
            detail::fail(origin, where, ": shape has ", sh->size(), " dimensions, more than the ", kMaxDims,
                         " polymath supports");
        for (std::size_t i = 0; i < sh->size(); ++i) {
            const json& d = (*sh)[i];
            if (!d.is_number_unsigned() ||
                d.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                detail::fail(origin, where, ": shape dimension ", i, " is ", detail::shown(d.dump()),
                             ", not an integer in [0, 2^63)");
            e.shape.push_back(static_cast<std::int64_t>(d.get<std::uint64_t>()));
        }

        const auto off = value.find("data_offsets");
        if (off == value.end()) detail::fail(origin, where, " has no \"data_offsets\"");
        if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
            detail::fail(origin, where, ": \"data_offsets\" is ", detail::shown(off->dump()),
                         ", not two non-negative integers [begin, end]");
        const std::uint64_t b = (*off)[0].get<std::uint64_t>(), en = (*off)[1].get<std::uint64_t>();
        if (en < b) detail::fail(origin, where, ": data_offsets [", b, ", ", en, "] end before they begin");
        if (en > buffer_size)
            detail::fail(origin, where, ": data_offsets [", b, ", ", en, "] run past the byte buffer (", buffer_size,
                         " bytes, file bytes ", buffer_start, "..", size, "): it would end at file byte ",
                         en <= std::numeric_limits<std::uint64_t>::max() - buffer_start ? en + buffer_start : en);
        const auto need = detail::byte_size(e.shape, dtype_size(e.dtype));
        if (!need)
            detail::fail(origin, where, ": shape ", e.shape, " x ", dtype_size(e.dtype),
                         "-byte elements overflows 64 bits");
        if (*need != en - b)
            detail::fail(origin, where, ": data_offsets [", b, ", ", en, "] (file bytes ", buffer_start + b, "..",
                         buffer_start + en, ") hold ", en - b, " bytes, but ", dname, " ", e.shape, " needs ", *need);
        spans.push_back({b, en, out.tensors.size()});
        out.tensors.push_back(std::move(e));
    }

    // The tensors must tile the buffer: sorted by offset, each begins where the
    // previous one ended, the first at 0 and the last at the end of the file.
    std::sort(spans.begin(), spans.end(),
              [](const Span& a, const Span& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
    std::uint64_t at = 0;
    const TensorEntry* prev = nullptr;
    for (const Span& s : spans) {
        const TensorEntry& e = out.tensors[s.index];
        if (s.begin < at)
            detail::fail(origin, "tensor '", detail::shown(e.name), "' data_offsets [", s.begin, ", ", s.end,
                         "] (file bytes ", buffer_start + s.begin, "..", buffer_start + s.end, ") overlap tensor '",
                         prev ? detail::shown(prev->name) : std::string(), "', which ends at buffer offset ", at);
        if (s.begin > at)
            detail::fail(origin, "buffer bytes ", at, "..", s.begin, " (file bytes ", buffer_start + at, "..",
                         buffer_start + s.begin, ") belong to no tensor: a gap before tensor '", detail::shown(e.name),
                         "'");
        at = s.end;
        prev = &e;
    }
    if (at != buffer_size)
        detail::fail(origin, "buffer bytes ", at, "..", buffer_size, " (file bytes ", buffer_start + at, "..", size,
                     ") belong to no tensor: the tensors end before the file does");

    // Copy the data out, and keep the entries in offset order.
    std::vector<TensorEntry> ordered;
    ordered.reserve(spans.size());
    for (const Span& s : spans) {
        TensorEntry& e = out.tensors[s.index];
        const auto* src = data.data() + buffer_start + s.begin;
        e.bytes.assign(src, src + (s.end - s.begin));
        ordered.push_back(std::move(e));
    }
    out.tensors = std::move(ordered);
    return out;
}

// Reads and parses `path` (see parse_safetensors for what is checked).
inline SafetensorsFile load_safetensors(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int e = errno;
        detail::fail(path, "cannot open: ", detail::errno_text(e));
    }
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct ::stat st {};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        detail::fail(path, "cannot stat: ", detail::errno_text(e));
    }
    if (!S_ISREG(st.st_mode)) detail::fail(path, "not a regular file");
    std::vector<std::byte> bytes(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < bytes.size()) {
        const ::ssize_t r =
            ::read(fd, bytes.data() + got, std::min<std::size_t>(bytes.size() - got, std::size_t(1) << 30));
        if (r < 0) {
            if (errno == EINTR) continue;
            const int e = errno;
            detail::fail(path, "read failed at byte ", got, ": ", detail::errno_text(e));
        }
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
    }
    bytes.resize(got);  // a file that shrank while read is parsed as what was read
    return parse_safetensors(bytes, path);
}

}  // namespace polymath::io
