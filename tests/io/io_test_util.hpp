// Shared helpers of the io tests: byte buffers, scratch directories.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace io_test {

using Bytes = std::vector<std::byte>;

inline void append(Bytes& b, std::string_view s) {
    for (char c : s) b.push_back(static_cast<std::byte>(static_cast<unsigned char>(c)));
}
inline void append(Bytes& b, std::initializer_list<unsigned> raw) {
    for (unsigned v : raw) b.push_back(static_cast<std::byte>(v));
}
inline void append_u64(Bytes& b, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xFF));
}

// A safetensors file from a header text (padded here with spaces to a multiple
// of 8) and a raw buffer.
inline Bytes make_file(std::string header, const Bytes& buffer = {}) {
    header.append((8 - header.size() % 8) % 8, ' ');
    Bytes b;
    append_u64(b, header.size());
    append(b, header);
    b.insert(b.end(), buffer.begin(), buffer.end());
    return b;
}

inline Bytes read_bytes(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Bytes b(c.size());
    for (std::size_t i = 0; i < c.size(); ++i) b[i] = static_cast<std::byte>(static_cast<unsigned char>(c[i]));
    return b;
}
inline void write_bytes(const std::filesystem::path& p, const Bytes& b) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// A fresh directory under the temp dir, removed with everything in it at scope exit.
struct ScratchDir {
    std::filesystem::path path;
    explicit ScratchDir(const std::string& tag) {
        path = std::filesystem::temp_directory_path() /
               ("polymath_io_" + tag + "_" + std::to_string(static_cast<long long>(::getpid())));
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~ScratchDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
    // Names of everything in the directory, sorted.
    std::vector<std::string> listing() const {
        std::vector<std::string> names;
        for (const auto& e : std::filesystem::directory_iterator(path)) names.push_back(e.path().filename().string());
        std::sort(names.begin(), names.end());
        return names;
    }
};

}  // namespace io_test
