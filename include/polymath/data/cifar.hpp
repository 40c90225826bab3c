// polymath/data/cifar.hpp — reader for CIFAR-10 binary batches.
//
// Format (https://www.cs.toronto.edu/~kriz/cifar.html, "binary version"): no
// header; records of 3,073 bytes = 1 label byte (0..9), then 1,024 red, 1,024
// green and 1,024 blue bytes, each a 32x32 plane in row-major order (row 0 =
// top). The official files hold 10,000 records (30,730,000 bytes); any whole
// number of records is accepted here. A file may be gzip-compressed (detected
// by its magic bytes; offsets in messages then count decompressed bytes).
//
// Images are returned as uint8 [N, 3, 32, 32] (channel-major, exactly the
// record layout, 4x smaller than float); convert with
// `images.to<float>()` and scale as the model needs. Labels are int64 [N], the
// type the losses take.
//
//   auto b = polymath::data::load_cifar10_batch("data/cifar10/test_batch_1k.bin");
//   b.images.shape() == {1000, 3, 32, 32}; b.labels.at({0}) == 0
//   auto train = polymath::data::load_cifar10("data/cifar10", /*train=*/true);
//
// Checked (polymath::Error naming the file and the byte offset): the size is a
// whole number of records (else the offset where the partial record starts),
// at least one record, every label 0..9 (else the offset of the bad label).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../tensor/tensor.hpp"
#include "gzip.hpp"

namespace polymath::data {

inline constexpr std::int64_t kCifarImageBytes = 3 * 32 * 32;
inline constexpr std::int64_t kCifarRecordBytes = 1 + kCifarImageBytes;

// Class names of CIFAR-10, index = label (as in batches.meta.txt).
inline const std::array<const char*, 10>& cifar10_class_names() {
    static const std::array<const char*, 10> names = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                      "dog",      "frog",       "horse", "ship", "truck"};
    return names;
}

struct CifarBatch {
    Tensor<std::uint8_t> images;   // [N, 3, 32, 32], R, G, B planes
    Tensor<std::int64_t> labels;   // [N], 0..9
    std::int64_t size() const { return labels.defined() ? labels.numel() : 0; }
};

// Parses the records in `bytes` (already decompressed); `name` names the
// source in messages, `gz` says whether offsets are of decompressed data.
inline CifarBatch parse_cifar10_batch(std::span<const std::uint8_t> bytes, const std::string& name,
                                      bool gz = false) {
    const char* op = "load_cifar10_batch";
    const char* note = gz ? " (decompressed)" : "";
    const std::uint64_t size = bytes.size();
    if (size == 0) POLYMATH_THROW(op, "'", name, "' is empty at offset 0: no CIFAR-10 records");
    if (size % kCifarRecordBytes != 0) {
        const std::uint64_t whole = size / kCifarRecordBytes;
        POLYMATH_THROW(op, "'", name, "': ", size, " bytes", note, " is not a whole number of ", kCifarRecordBytes,
                       "-byte records: the partial record ", whole, " starts at offset ", whole * kCifarRecordBytes,
                       " and has only ", size % kCifarRecordBytes, " bytes");
    }
    const std::int64_t n = std::int64_t(size / kCifarRecordBytes);
    CifarBatch out{Tensor<std::uint8_t>::empty({n, 3, 32, 32}), Tensor<std::int64_t>::empty({n})};
    std::uint8_t* img = out.images.data();
    std::int64_t* lab = out.labels.data();
    for (std::int64_t i = 0; i < n; ++i) {
        const std::uint8_t* rec = bytes.data() + i * kCifarRecordBytes;
        if (rec[0] > 9)
            POLYMATH_THROW(op, "'", name, "': label ", int(rec[0]), " of record ", i, " at offset ",
                           i * kCifarRecordBytes, note, " is not a class 0..9");
        lab[i] = rec[0];
        std::memcpy(img + i * kCifarImageBytes, rec + 1, kCifarImageBytes);
    }
    return out;
}

// From bytes in memory that may be gzip (the fuzz target's entry point).
inline CifarBatch load_cifar10_batch(std::span<const std::uint8_t> bytes, const std::string& name) {
    const std::vector<std::uint8_t> raw = read_bytes(bytes, name, "load_cifar10_batch");
    return parse_cifar10_batch(raw, name, is_gzip(bytes));
}

// One batch file (raw or gzip).
inline CifarBatch load_cifar10_batch(const std::string& path) {
    ByteSource src(path, "load_cifar10_batch");
    const std::vector<std::uint8_t> raw = src.read_all();
    return parse_cifar10_batch(raw, path, src.gzip());
}

// The files load_cifar10 would read for a split, in order (empty: none found).
// Training: data_batch_1.bin .. data_batch_5.bin that exist (each also as
// .bin.gz); if none, the bundled sample data_batch_1_1k.bin[.gz]. Test:
// test_batch.bin[.gz], else test_batch_1k.bin[.gz].
inline std::vector<std::string> cifar10_files(const std::string& dir, bool train) {
    namespace fs = std::filesystem;
    auto find = [&](const std::string& stem) -> std::string {
        for (const char* ext : {".bin", ".bin.gz"}) {
            const fs::path p = fs::path(dir) / (stem + ext);
            std::error_code ec;
            if (fs::is_regular_file(p, ec)) return p.string();
        }
        return {};
    };
    std::vector<std::string> files;
    if (train) {
        for (int k = 1; k <= 5; ++k)
            if (auto f = find("data_batch_" + std::to_string(k)); !f.empty()) files.push_back(f);
        if (files.empty())
            if (auto f = find("data_batch_1_1k"); !f.empty()) files.push_back(f);
    } else {
        if (auto f = find("test_batch"); !f.empty()) files.push_back(f);
        else if (auto g = find("test_batch_1k"); !g.empty()) files.push_back(g);
    }
    return files;
}

// The training or test split in `dir` (see cifar10_files), batches concatenated
// in file order.
inline CifarBatch load_cifar10(const std::string& dir, bool train) {
    const std::vector<std::string> files = cifar10_files(dir, train);
    if (files.empty())
        POLYMATH_THROW("load_cifar10", "no CIFAR-10 ", train ? "training" : "test", " files in '", dir,
                       "' (offset 0); looked for ",
                       train ? "data_batch_1.bin .. data_batch_5.bin, data_batch_1_1k.bin"
                             : "test_batch.bin, test_batch_1k.bin",
                       " (each also .gz)");
    if (files.size() == 1) return load_cifar10_batch(files[0]);
    std::vector<CifarBatch> parts;
    std::int64_t n = 0;
    for (const auto& f : files) {
        parts.push_back(load_cifar10_batch(f));
        n += parts.back().size();
    }
    CifarBatch out{Tensor<std::uint8_t>::empty({n, 3, 32, 32}), Tensor<std::int64_t>::empty({n})};
    std::int64_t at = 0;
    for (const auto& p : parts) {
        std::memcpy(out.images.data() + at * kCifarImageBytes, p.images.data(), p.size() * kCifarImageBytes);
        std::memcpy(out.labels.data() + at, p.labels.data(), p.size() * sizeof(std::int64_t));
        at += p.size();
    }
    return out;
}

}  // namespace polymath::data
