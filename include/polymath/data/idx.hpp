// polymath/data/idx.hpp — reader for IDX files (the MNIST format), raw or gzip.
//
// The IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/) is a
// big-endian binary array:
//
//   offset 0          2 bytes    zero
//   offset 2          1 byte     type code (0x08 unsigned byte, 0x09 signed
//                                byte, 0x0B int16, 0x0C int32, 0x0D float32,
//                                0x0E float64)
//   offset 3          1 byte     number of dimensions D
//   offset 4          4*D bytes  the size of each dimension, uint32 big-endian
//   offset 4 + 4*D    ...        the elements, row-major (last index fastest)
//
// MNIST images are `ubyte` N x 28 x 28, labels `ubyte` N. Files are usually
// gzip-compressed; read_idx() detects gzip by its magic bytes (1F 8B) and
// decompresses through zlib (data/gzip.hpp's ByteSource), otherwise it reads
// the file raw. Fashion-MNIST uses the same format and names.
//
// What is checked (every failure throws polymath::Error naming the file and a
// byte offset; for .gz files offsets count bytes of the decompressed IDX
// stream):
//   - the file exists and can be opened;
//   - the magic: two zero bytes, then a type code; only 0x08 (unsigned byte)
//     is supported, any other type code throws;
//   - 1 <= D <= 16, every dimension is >= 1 and < 2^31, and the element
//     count is at most 2^40 (a corrupt header cannot make us allocate
//     terabytes: data is also read in chunks and only grows as it arrives);
//   - the header and the data are complete ("expected N bytes of data at
//     offset X, file ended after Y bytes");
//   - the gzip stream is intact (zlib errors, including the CRC check at the
//     end of the stream, are reported with zlib's message; zlib decompresses
//     ahead, so the offset is where the reader was when zlib noticed);
//   - when the whole array is read, nothing follows it in the file.
//
//   auto a = polymath::data::read_idx("data/mnist/t10k-labels-idx1-ubyte.gz");
//   a.dims == {10000}; a.data[0] == 7
//   auto [images, labels] = polymath::data::load_mnist("data/mnist", /*train=*/false);
#pragma once

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "gzip.hpp"

namespace polymath::data {

// A dense unsigned-byte array read from an IDX file. `data` holds
// product(dims) bytes in row-major order.
struct IdxArray {
    std::vector<std::int64_t> dims;
    std::vector<std::uint8_t> data;

    std::int64_t numel() const {
        std::int64_t n = 1;
        for (std::int64_t d : dims) n *= d;
        return dims.empty() ? 0 : n;
    }
};

namespace detail {

inline const char* idx_type_name(unsigned code) {
    switch (code) {
        case 0x08: return "unsigned byte";
        case 0x09: return "signed byte";
        case 0x0B: return "int16";
        case 0x0C: return "int32";
        case 0x0D: return "float32";
        case 0x0E: return "float64";
        default: return "unknown";
    }
}

inline std::string hex(std::uint64_t v, int digits) {
    static const char* k = "0123456789ABCDEF";
    std::string s = "0x";
    for (int i = digits - 1; i >= 0; --i) s += k[(v >> (4 * i)) & 0xF];
    return s;
}

inline std::uint32_t be32(const unsigned char* p) {
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
           std::uint32_t(p[3]);
}

}  // namespace detail

namespace detail {

// The IDX parser over any ByteSource (file or memory).
inline IdxArray read_idx_from(ByteSource& src, std::int64_t max_items) {
    constexpr unsigned kMaxDims = 16;
    constexpr std::uint64_t kMaxElements = std::uint64_t(1) << 40;
    const std::string& path = src.name();

    unsigned char magic[4];
    src.read_exact(magic, 4, "header (magic number)");
    if (magic[0] != 0 || magic[1] != 0)
        POLYMATH_THROW("read_idx", "'", path, "': bad magic number ", detail::hex(detail::be32(magic), 8),
                       " at offset 0 (an IDX file starts with two zero bytes, a type code and the number of "
                       "dimensions)");
    const unsigned type = magic[2];
    if (type != 0x08)
        POLYMATH_THROW("read_idx", "'", path, "': unsupported type code ", detail::hex(type, 2), " (",
                       detail::idx_type_name(type), ") at offset 2; only 0x08 (unsigned byte) is supported");
    const unsigned ndims = magic[3];
    if (ndims == 0 || ndims > kMaxDims)
        POLYMATH_THROW("read_idx", "'", path, "': number of dimensions is ", ndims,
                       " at offset 3 (expected 1 to ", kMaxDims, ")");

    std::array<unsigned char, 4 * kMaxDims> raw_dims{};
    src.read_exact(raw_dims.data(), 4 * std::size_t(ndims), "header (dimension sizes)");
    IdxArray out;
    out.dims.resize(ndims);
    std::uint64_t elements = 1;
    for (unsigned i = 0; i < ndims; ++i) {
        const std::uint32_t d = detail::be32(raw_dims.data() + 4 * i);
        const std::int64_t at = 4 + 4 * std::int64_t(i);
        if (d == 0)
            POLYMATH_THROW("read_idx", "'", path, "': dimension ", i, " is zero at offset ", at);
        if (d > 0x7FFFFFFFu)
            POLYMATH_THROW("read_idx", "'", path, "': dimension ", i, " is ", d, " at offset ", at,
                           " (not a valid int32 size)");
        if (elements > kMaxElements / d)
            POLYMATH_THROW("read_idx", "'", path, "': absurd dimensions at offset ", at, " (more than 2^40 elements)");
        elements *= d;
        out.dims[i] = std::int64_t(d);
    }

    const std::int64_t items = out.dims[0];
    const std::int64_t item_size = std::int64_t(elements) / items;
    const bool partial = max_items >= 0 && max_items < items;
    if (partial) out.dims[0] = max_items;
    const std::uint64_t want = std::uint64_t(out.dims[0]) * std::uint64_t(item_size);

    // Read in chunks so that a lying header cannot allocate more than the file holds.
    const std::int64_t data_offset = src.offset();
    // Chunks start at 64 KiB and double up to 16 MiB, so that a short file
    // with a large header costs little before its truncation is noticed.
    std::size_t chunk_cap = std::size_t(1) << 16;
    while (out.data.size() < want) {
        const std::size_t old = out.data.size();
        const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(want - old, chunk_cap));
        chunk_cap = std::min<std::size_t>(chunk_cap * 2, std::size_t(1) << 24);
        out.data.resize(old + chunk);
        const std::size_t got = src.read(out.data.data() + old, chunk);
        if (got < chunk) src.throw_truncated(static_cast<std::size_t>(want), "data", data_offset);
    }

    if (!partial) src.expect_end();  // the whole array was read: nothing may follow
    return out;
}

}  // namespace detail

// Reads an unsigned-byte IDX file (raw or gzip). With max_items >= 0 at most
// that many items along the first dimension are read (dims[0] is reduced
// accordingly); a negative max_items reads everything.
inline IdxArray read_idx(const std::string& path, std::int64_t max_items = -1) {
    ByteSource src(path, "read_idx");
    return detail::read_idx_from(src, max_items);
}

// The same from bytes in memory (raw or gzip); `name` stands for the path in
// messages. Used by the fuzz target.
inline IdxArray read_idx(std::span<const std::uint8_t> bytes, const std::string& name, std::int64_t max_items = -1) {
    ByteSource src(bytes, name, "read_idx");
    return detail::read_idx_from(src, max_items);
}

// MNIST images (N x 28 x 28, pixels 0..255) and labels (N, values 0..9).
struct MnistSplit {
    IdxArray images;
    IdxArray labels;
};

// Loads the MNIST training or test split from `dir`. Tries, in this order,
// the original file names (train-images-idx3-ubyte[.gz], train-images.idx3-ubyte,
// t10k-...) and the names of polymath's bundled samples (data/mnist:
// train-20k-images-idx3-ubyte.gz; data/fashion-mnist: train-5k-..., t10k-2k-...);
// images and labels always come from the same family. Reads at most max_items
// (negative: all). Checks 28x28 images, matching counts and labels <= 9.
inline MnistSplit load_mnist(const std::string& dir, bool train, std::int64_t max_items = -1) {
    namespace fs = std::filesystem;
    const std::vector<std::string> prefixes =
        train ? std::vector<std::string>{"train", "train-20k", "train-5k"} : std::vector<std::string>{"t10k", "t10k-2k"};
    std::vector<std::string> tried;
    for (const std::string& p : prefixes) {
        const std::string variants[][2] = {
            {p + "-images-idx3-ubyte.gz", p + "-labels-idx1-ubyte.gz"},
            {p + "-images-idx3-ubyte", p + "-labels-idx1-ubyte"},
            {p + "-images.idx3-ubyte", p + "-labels.idx1-ubyte"},
        };
        for (const auto& v : variants) {
            const std::string img = (fs::path(dir) / v[0]).string();
            const std::string lab = (fs::path(dir) / v[1]).string();
            tried.push_back(v[0] + " + " + v[1]);
            std::error_code ec;
            if (!fs::exists(img, ec) || !fs::exists(lab, ec)) continue;

            MnistSplit s{read_idx(img, max_items), read_idx(lab, max_items)};
            POLYMATH_CHECK(s.images.dims.size() == 3 && s.images.dims[1] == 28 && s.images.dims[2] == 28,
                           "load_mnist", "'", img, "': expected N x 28 x 28 images, got ", s.images.dims.size(),
                           " dimensions (header at offset 4)");
            POLYMATH_CHECK(s.labels.dims.size() == 1, "load_mnist", "'", lab, "': expected 1 dimension, got ",
                           s.labels.dims.size(), " (header at offset 3)");
            POLYMATH_CHECK(s.images.dims[0] == s.labels.dims[0], "load_mnist", "'", img, "' has ",
                           s.images.dims[0], " images but '", lab, "' has ", s.labels.dims[0],
                           " labels (counts at offset 4)");
            for (std::size_t i = 0; i < s.labels.data.size(); ++i)
                POLYMATH_CHECK(s.labels.data[i] <= 9, "load_mnist", "'", lab, "': label ", int(s.labels.data[i]),
                               " at offset ", 8 + i, " is not a digit 0..9");
            return s;
        }
    }
    std::string list;
    for (const auto& t : tried) list += "\n  " + t;
    POLYMATH_THROW("load_mnist", "no MNIST ", train ? "training" : "test", " files in '", dir,
                   "' (offset 0); tried:", list);
}

}  // namespace polymath::data
