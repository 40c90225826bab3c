// polymath/data/gzip.hpp — byte sources for the data readers: a file or a
// memory buffer, read raw or, when it starts with the gzip magic 1F 8B,
// decompressed through zlib's inflate; plus a bounds-checked cursor for
// parsing bytes in memory.
//
//   ByteSource src("data/mnist/t10k-labels-idx1-ubyte.gz", "read_idx");
//   src.read_exact(buf, 8, "header");          // throws on a short file
//   std::vector<std::uint8_t> all = read_bytes("x.csv.gz", "read_csv");
//   ByteCursor c(all, "x.wav", "read_wav");
//   std::uint32_t n = c.le32("chunk size");     // throws "'x.wav' ended at byte 6, expected 2 more bytes of ..."
//
// Offsets in messages count bytes of the decompressed stream for gzip input
// (that is what a reader parses); messages then say "(decompressed)". The
// compressed stream is fully checked: corrupt deflate data, a bad CRC-32 or
// length in the trailer and a missing trailer all throw polymath::Error. Several
// concatenated gzip members (as `cat a.gz b.gz` makes) read as one stream, like
// gzip -d does; bytes after the last member that are not a gzip member are
// ignored, as gzip -d does (with a warning there).
//
// Both the file and the memory form go through the same code, so the fuzz
// targets (which read from memory) exercise exactly what files go through.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"

namespace polymath::data {

// A sequential byte source over a file or a memory buffer, raw or gzip.
// Every failure throws polymath::Error "<op>: '<name>' ...", naming the offset.
class ByteSource {
public:
    // Opens `path`; `op` names the reader in error messages (e.g. "read_idx").
    ByteSource(std::string path, std::string op) : name_(std::move(path)), op_(std::move(op)) {
        file_ = std::fopen(name_.c_str(), "rb");
        if (!file_) {
            const int err = errno;
            POLYMATH_THROW(op_, "cannot open '", name_, "' at offset 0: ", std::strerror(err));
        }
        start();
    }
    // Reads `bytes` (not copied: they must outlive the source); `name` is used
    // in messages in place of a path.
    ByteSource(std::span<const std::uint8_t> bytes, std::string name, std::string op)
        : name_(std::move(name)), op_(std::move(op)), mem_(bytes) {
        start();
    }
    ByteSource(const ByteSource&) = delete;
    ByteSource& operator=(const ByteSource&) = delete;
    ~ByteSource() {
        if (zinit_) inflateEnd(&zs_);
        if (file_) std::fclose(file_);
    }

    const std::string& name() const { return name_; }
    const std::string& op() const { return op_; }
    bool gzip() const { return gzip_; }
    // Bytes delivered so far (of the decompressed stream for gzip input).
    std::int64_t offset() const { return offset_; }

    // Reads up to n bytes; fewer only at the end of the data. Throws on a
    // corrupt gzip stream or an I/O error.
    std::size_t read(void* dst, std::size_t n) {
        auto* out = static_cast<unsigned char*>(dst);
        std::size_t total = 0;
        if (!gzip_) {
            total = raw_read(out, n);
            offset_ += std::int64_t(total);
            return total;
        }
        while (total < n && !finished_) {
            if (zs_.avail_in == 0 && !raw_eof_) refill();
            const std::size_t chunk = std::min<std::size_t>(n - total, std::size_t(1) << 30);
            zs_.next_out = out + total;
            zs_.avail_out = static_cast<uInt>(chunk);
            const int r = inflate(&zs_, Z_NO_FLUSH);
            const std::size_t produced = chunk - zs_.avail_out;
            total += produced;
            offset_ += std::int64_t(produced);
            if (r == Z_STREAM_END) {
                next_member();
            } else if (r == Z_BUF_ERROR || (r == Z_OK && produced == 0 && zs_.avail_in == 0 && raw_eof_)) {
                // No progress possible: input exhausted before the stream ended.
                if (zs_.avail_in == 0 && raw_eof_) {
                    truncated_ = true;
                    finished_ = true;
                }
            } else if (r != Z_OK) {
                POLYMATH_THROW(op_, "'", name_, "': corrupt gzip stream at offset ", offset_,
                               " of the decompressed data: zlib error ", r, " (", zs_.msg ? zs_.msg : "?", ")");
            }
        }
        return total;
    }

    // Reads exactly n bytes of `what` or throws the truncation error.
    void read_exact(void* dst, std::size_t n, const char* what) {
        const std::int64_t start = offset_;
        const std::size_t got = read(dst, n);
        if (got < n) throw_truncated(n, what, start);
    }

    // The rest of the data, read in chunks so that memory grows only as bytes
    // arrive; more than max_bytes throws.
    std::vector<std::uint8_t> read_all(std::uint64_t max_bytes = std::uint64_t(1) << 34) {
        std::vector<std::uint8_t> out;
        std::size_t chunk = std::size_t(1) << 16;
        for (;;) {
            const std::size_t old = out.size();
            out.resize(old + chunk);
            const std::size_t got = read(out.data() + old, chunk);
            out.resize(old + got);
            if (got < chunk) break;
            if (out.size() > max_bytes)
                POLYMATH_THROW(op_, "'", name_, "': more than ", max_bytes, " bytes", gzip_ ? " (decompressed)" : "",
                               " at offset ", offset_);
            chunk = std::min<std::size_t>(chunk * 2, std::size_t(1) << 26);
        }
        check_complete();
        return out;
    }

    // At the end of the data: nothing may follow, and a gzip stream must have
    // its complete trailer (CRC-32 and length, verified by zlib).
    void expect_end() {
        unsigned char extra[1];
        const std::int64_t end = offset_;
        if (read(extra, 1) != 0)
            POLYMATH_THROW(op_, "'", name_, "': unexpected trailing data at offset ", end, " (the header describes ",
                           end, " bytes)");
        check_complete();
    }

    [[noreturn]] void throw_truncated(std::size_t expected, const char* what, std::int64_t start) const {
        POLYMATH_THROW(op_, "'", name_, "': expected ", expected, " bytes of ", what, " at offset ", start,
                       ", file ended after ", offset_, " bytes", gzip_ ? " (decompressed)" : "",
                       truncated_ ? "; the gzip stream is truncated or corrupt (zlib: unexpected end of file)" : "");
    }

private:
    void start() {
        unsigned char magic[2] = {0, 0};
        const std::size_t n = raw_read(magic, 2);
        gzip_ = n == 2 && magic[0] == 0x1F && magic[1] == 0x8B;
        if (!gzip_) {
            // Not gzip: give the bytes back by rewinding.
            if (file_) std::rewind(file_);
            mem_pos_ = 0;
            raw_pos_ = 0;
            raw_eof_ = false;
            return;
        }
        std::memset(&zs_, 0, sizeof zs_);
        // 16 + MAX_WBITS: gzip wrapper only (the magic was checked).
        if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK)
            POLYMATH_THROW(op_, "'", name_, "': zlib inflateInit2 failed at offset 0");
        zinit_ = true;
        if (file_) {
            buf_.resize(std::size_t(1) << 17);
            buf_[0] = magic[0];
            buf_[1] = magic[1];
            zs_.next_in = buf_.data();
            zs_.avail_in = 2;
        } else {
            // Memory: inflate straight from the caller's bytes, no copy.
            mem_pos_ = 0;
            raw_eof_ = false;
            refill();
        }
    }

    // Reads raw (compressed or not) input bytes.
    std::size_t raw_read(unsigned char* dst, std::size_t n) {
        if (raw_eof_) return 0;
        std::size_t got = 0;
        if (file_) {
            got = std::fread(dst, 1, n, file_);
            if (got < n) {
                if (std::ferror(file_))
                    POLYMATH_THROW(op_, "I/O error reading '", name_, "' at offset ", raw_pos_ + got, ": ",
                                   std::strerror(errno));
                raw_eof_ = true;
            }
        } else {
            got = std::min(n, mem_.size() - mem_pos_);
            if (got) std::memcpy(dst, mem_.data() + mem_pos_, got);
            mem_pos_ += got;
            if (got < n) raw_eof_ = true;
        }
        raw_pos_ += got;
        return got;
    }

    void refill() {
        if (!file_) {
            const std::size_t got = std::min(mem_.size() - mem_pos_, std::size_t(1) << 30);
            zs_.next_in = const_cast<unsigned char*>(mem_.data() + mem_pos_);  // zlib does not write input
            zs_.avail_in = static_cast<uInt>(got);
            mem_pos_ += got;
            raw_pos_ = mem_pos_;
            raw_eof_ = mem_pos_ == mem_.size();
            return;
        }
        const std::size_t got = raw_read(buf_.data(), buf_.size());
        zs_.next_in = buf_.data();
        zs_.avail_in = static_cast<uInt>(got);
    }

    // After a member's end: another member may follow (concatenated gzip).
    void next_member() {
        if (zs_.avail_in == 0 && !raw_eof_) refill();
        if (zs_.avail_in == 0) {
            finished_ = true;
            return;
        }
        if (zs_.avail_in < 2 && !raw_eof_ && !file_) {
            mem_pos_ -= zs_.avail_in;  // back up and hand zlib the rest in one piece
            refill();
        } else if (zs_.avail_in < 2 && !raw_eof_) {
            // Keep the one byte and top up so that the magic can be checked.
            const unsigned char first = *zs_.next_in;
            buf_[0] = first;
            const std::size_t got = raw_read(buf_.data() + 1, buf_.size() - 1);
            zs_.next_in = buf_.data();
            zs_.avail_in = static_cast<uInt>(got + 1);
        }
        if (zs_.avail_in >= 2 && zs_.next_in[0] == 0x1F && zs_.next_in[1] == 0x8B) {
            inflateReset(&zs_);
            return;
        }
        finished_ = true;  // trailing non-gzip bytes: ignored, as gzip -d does
    }

    void check_complete() const {
        if (gzip_ && truncated_)
            POLYMATH_THROW(op_, "'", name_, "': gzip stream truncated at offset ", offset_,
                           " of the decompressed data (its trailer is missing): zlib: unexpected end of file");
    }

    std::string name_;
    std::string op_;
    std::FILE* file_ = nullptr;
    std::span<const std::uint8_t> mem_;
    std::size_t mem_pos_ = 0;
    std::uint64_t raw_pos_ = 0;
    bool raw_eof_ = false;
    bool gzip_ = false;
    bool zinit_ = false;
    bool finished_ = false;
    bool truncated_ = false;
    z_stream zs_{};
    std::vector<unsigned char> buf_;
    std::int64_t offset_ = 0;
};

// The whole content of a file, decompressed when it is gzip.
inline std::vector<std::uint8_t> read_bytes(const std::string& path, const std::string& op) {
    ByteSource src(path, op);
    return src.read_all();
}

// The whole content of a memory buffer, decompressed when it is gzip.
inline std::vector<std::uint8_t> read_bytes(std::span<const std::uint8_t> bytes, const std::string& name,
                                            const std::string& op) {
    ByteSource src(bytes, name, op);
    return src.read_all();
}

// True when the bytes start with the gzip magic 1F 8B.
inline bool is_gzip(std::span<const std::uint8_t> bytes) {
    return bytes.size() >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B;
}

// A bounds-checked little/big-endian cursor over bytes in memory. Every read
// past the end throws "<op>: '<name>' ended at byte N, expected M more bytes of
// <what> (at offset K)".
class ByteCursor {
public:
    ByteCursor(std::span<const std::uint8_t> bytes, std::string name, std::string op, bool decompressed = false)
        : bytes_(bytes), name_(std::move(name)), op_(std::move(op)), decompressed_(decompressed) {}

    std::size_t offset() const { return pos_; }
    std::size_t size() const { return bytes_.size(); }
    std::size_t remaining() const { return bytes_.size() - pos_; }
    bool at_end() const { return pos_ == bytes_.size(); }
    const std::string& name() const { return name_; }
    const std::string& op() const { return op_; }
    // " (decompressed)" for gzip input, so that offsets are not misread.
    const char* note() const { return decompressed_ ? " (decompressed)" : ""; }

    void need(std::size_t n, const char* what) const {
        if (n > remaining())
            POLYMATH_THROW(op_, "'", name_, "' ended at byte ", bytes_.size(), note(), ", expected ", n - remaining(),
                           " more bytes of ", what, " (", n, " bytes at offset ", pos_, ")");
    }
    std::span<const std::uint8_t> bytes(std::size_t n, const char* what) {
        need(n, what);
        auto s = bytes_.subspan(pos_, n);
        pos_ += n;
        return s;
    }
    void skip(std::size_t n, const char* what) { bytes(n, what); }
    void seek(std::size_t pos) {
        POLYMATH_CHECK(pos <= bytes_.size(), op_, "'", name_, "': seek to offset ", pos, " past the end (", bytes_.size(),
                       " bytes)");
        pos_ = pos;
    }
    std::uint8_t u8(const char* what) { return bytes(1, what)[0]; }
    std::uint16_t le16(const char* what) {
        auto b = bytes(2, what);
        return static_cast<std::uint16_t>(b[0] | (b[1] << 8));
    }
    std::uint32_t le32(const char* what) {
        auto b = bytes(4, what);
        return std::uint32_t(b[0]) | (std::uint32_t(b[1]) << 8) | (std::uint32_t(b[2]) << 16) |
               (std::uint32_t(b[3]) << 24);
    }
    std::uint32_t be32(const char* what) {
        auto b = bytes(4, what);
        return (std::uint32_t(b[0]) << 24) | (std::uint32_t(b[1]) << 16) | (std::uint32_t(b[2]) << 8) |
               std::uint32_t(b[3]);
    }

    // Throws "<op>: '<name>' at offset <offset>: <message...>".
    template <class... Args>
    [[noreturn]] void fail(std::size_t offset, Args&&... msg) const {
        POLYMATH_THROW(op_, "'", name_, "' at offset ", offset, note(), ": ", std::forward<Args>(msg)...);
    }

private:
    std::span<const std::uint8_t> bytes_;
    std::string name_;
    std::string op_;
    bool decompressed_ = false;
    std::size_t pos_ = 0;
};

}  // namespace polymath::data
