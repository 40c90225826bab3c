// polymath/data/text.hpp — line-oriented text and line-aligned parallel text.
//
// read_lines splits a file (raw or gzip) at '\n'; a '\r' before the '\n' (or
// at the very end) is removed. A final '\n' ends the last line, it does not
// start an empty one; empty lines inside the file are kept (they count for
// alignment). Bytes are kept as they are: UTF-8 stays UTF-8 (no decoding, no
// normalisation).
//
// read_parallel reads two such files whose line i are translations of each
// other (Multi30k: train.en.gz / train.de.gz) and pairs them; different line
// counts throw, naming both files, both counts and the byte offset where the
// shorter file ended.
//
//   auto en = polymath::data::read_lines("data/translation/val.en.gz");  // 1014 lines
//   auto pairs = polymath::data::read_parallel("data/translation/train.en.gz",
//                                              "data/translation/train.de.gz");
//   pairs[0].first == "Two young, White males are outside near many bushes."
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "gzip.hpp"

namespace polymath::data {

// Splits decompressed text into lines (see the header comment).
inline std::vector<std::string> split_lines(std::string_view text) {
    std::vector<std::string> lines;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        const bool last = nl == std::string_view::npos;
        std::size_t end = last ? text.size() : nl;
        if (end > pos && text[end - 1] == '\r') --end;
        lines.emplace_back(text.substr(pos, end - pos));
        pos = last ? text.size() : nl + 1;
    }
    return lines;
}

// From bytes in memory that may be gzip (the fuzz target's entry point).
inline std::vector<std::string> read_lines(std::span<const std::uint8_t> bytes, const std::string& name) {
    const std::vector<std::uint8_t> raw = read_bytes(bytes, name, "read_lines");
    return split_lines(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()));
}

// The lines of a text file (raw or gzip).
inline std::vector<std::string> read_lines(const std::string& path) {
    const std::vector<std::uint8_t> raw = read_bytes(path, "read_lines");
    return split_lines(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()));
}

namespace detail {

// Byte offset (of the decompressed text) where line `count` would start: the
// end of the text when it has exactly `count` lines.
inline std::size_t text_size_of(const std::vector<std::string>& lines) {
    std::size_t n = 0;
    for (const auto& l : lines) n += l.size() + 1;  // +1 for '\n' (a '\r' is not counted)
    return n;
}

inline std::vector<std::pair<std::string, std::string>> pair_lines(std::vector<std::string> src,
                                                                   std::vector<std::string> tgt,
                                                                   const std::string& src_name,
                                                                   const std::string& tgt_name) {
    if (src.size() != tgt.size()) {
        const bool src_short = src.size() < tgt.size();
        const auto& shorter = src_short ? src : tgt;
        POLYMATH_THROW("read_parallel", "the files are not line-aligned: '", src_name, "' has ", src.size(),
                       " lines but '", tgt_name, "' has ", tgt.size(), "; '", src_short ? src_name : tgt_name,
                       "' ends after line ", shorter.size(), " (about offset ", text_size_of(shorter),
                       " of its text), where line ", shorter.size() + 1, " of the other file starts");
    }
    std::vector<std::pair<std::string, std::string>> out;
    out.reserve(src.size());
    for (std::size_t i = 0; i < src.size(); ++i) out.emplace_back(std::move(src[i]), std::move(tgt[i]));
    return out;
}

}  // namespace detail

// Pairs line i of src_path with line i of tgt_path (both raw or gzip).
inline std::vector<std::pair<std::string, std::string>> read_parallel(const std::string& src_path,
                                                                      const std::string& tgt_path) {
    return detail::pair_lines(read_lines(src_path), read_lines(tgt_path), src_path, tgt_path);
}

// The same from two memory buffers.
inline std::vector<std::pair<std::string, std::string>> read_parallel(std::span<const std::uint8_t> src,
                                                                      const std::string& src_name,
                                                                      std::span<const std::uint8_t> tgt,
                                                                      const std::string& tgt_name) {
    return detail::pair_lines(read_lines(src, src_name), read_lines(tgt, tgt_name), src_name, tgt_name);
}

}  // namespace polymath::data
