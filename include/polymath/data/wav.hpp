// polymath/data/wav.hpp — reader for RIFF/WAVE files with 16-bit PCM samples.
//
// Layout (all integers little-endian):
//   offset 0   "RIFF", uint32 riff size (= bytes after this field), "WAVE"
//   offset 12  chunks: 4-byte id, uint32 size, `size` bytes, one pad byte when
//              size is odd (RIFF aligns chunks to 2 bytes)
// The "fmt " chunk (>= 16 bytes: format tag, channels, sample rate, byte rate,
// block align, bits per sample) must come before the "data" chunk. Format tag
// 1 (PCM) is accepted, and 0xFFFE (WAVE_FORMAT_EXTENSIBLE) when its sub-format
// is PCM; bits per sample must be 16. Other chunks (LIST, fact, cue, ...) are
// skipped. Bytes after the RIFF chunk (some writers pad files) are ignored.
//
// Samples come back as float s / 32768 in [-1, 1). Multi-channel audio is
// mixed down to mono by averaging the channels of each frame (the readers'
// consumers — spectrogram front-ends — want one channel); `channels` tells
// what the file had.
//
//   auto w = polymath::data::read_wav("data/speech-digits/recordings/0_george_0.wav");
//   w.sample_rate == 8000; w.samples.size() == 2384; w.samples[0] == -1489 / 32768.f
//
// Checked (polymath::Error naming the file and the byte offset): the RIFF and
// WAVE tags, the RIFF size against the file size, every chunk header and size
// against the end of the RIFF chunk, the fmt fields (format, channels >= 1,
// rate >= 1, 16 bits, block align = 2 * channels), fmt before data, a data
// size that is a whole number of frames, and that a data chunk exists. A .gz
// file is decompressed first (offsets then count decompressed bytes).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "gzip.hpp"

namespace polymath::data {

struct WavAudio {
    std::vector<float> samples;  // mono, in [-1, 1)
    int sample_rate = 0;         // Hz
    int channels = 0;            // channels in the file (averaged into `samples`)
    double duration() const { return sample_rate ? double(samples.size()) / sample_rate : 0.0; }
};

namespace detail {

inline std::string fourcc(std::span<const std::uint8_t> b) {
    std::string s;
    for (std::uint8_t c : b) {
        if (c >= 32 && c < 127) s += char(c);
        else {
            static const char* k = "0123456789ABCDEF";
            s += "\\x";
            s += k[c >> 4];
            s += k[c & 15];
        }
    }
    return s;
}

}  // namespace detail

// Parses WAV bytes that are already decompressed; `gz` marks offsets as
// decompressed in messages.
inline WavAudio parse_wav(std::span<const std::uint8_t> bytes, const std::string& name, bool gz = false) {
    ByteCursor c(bytes, name, "read_wav", gz);
    const auto riff = c.bytes(4, "RIFF header");
    if (detail::fourcc(riff) != "RIFF")
        c.fail(0, "not a RIFF file: starts with '", detail::fourcc(riff), "', expected 'RIFF'");
    const std::uint32_t riff_size = c.le32("RIFF header (size)");
    const auto wave = c.bytes(4, "RIFF header (form type)");
    if (detail::fourcc(wave) != "WAVE")
        c.fail(8, "RIFF form type is '", detail::fourcc(wave), "', expected 'WAVE'");
    if (std::uint64_t(riff_size) + 8 > bytes.size())
        c.fail(4, "RIFF size ", riff_size, " says the file has ", std::uint64_t(riff_size) + 8, " bytes, but it has ",
               bytes.size());
    if (riff_size < 4) c.fail(4, "RIFF size ", riff_size, " is smaller than the 'WAVE' tag");
    const std::size_t riff_end = std::size_t(riff_size) + 8;

    WavAudio out;
    bool have_fmt = false;
    int block_align = 0;
    while (c.offset() < riff_end) {
        const std::size_t at = c.offset();
        if (riff_end - at < 8)
            c.fail(at, "chunk header needs 8 bytes but the RIFF chunk ends at offset ", riff_end, " (", riff_end - at,
                   " bytes left)");
        const std::string id = detail::fourcc(c.bytes(4, "chunk id"));
        const std::uint32_t size = c.le32("chunk size");
        const std::size_t body = c.offset();
        if (size > riff_end - body)
            c.fail(at + 4, "chunk '", id, "' declares ", size, " bytes, but only ", riff_end - body,
                   " bytes remain in the RIFF chunk (which ends at offset ", riff_end, ")");
        if (id == "fmt ") {
            if (have_fmt) c.fail(at, "second 'fmt ' chunk");
            if (size < 16) c.fail(at + 4, "'fmt ' chunk has ", size, " bytes, expected at least 16");
            const std::uint16_t tag = c.le16("fmt format tag");
            const std::uint16_t channels = c.le16("fmt channels");
            const std::uint32_t rate = c.le32("fmt sample rate");
            c.le32("fmt byte rate");  // redundant (rate * block align); not trusted
            const std::uint16_t align = c.le16("fmt block align");
            const std::uint16_t bits = c.le16("fmt bits per sample");
            bool pcm = tag == 1;
            if (tag == 0xFFFE && size >= 40) {
                // WAVE_FORMAT_EXTENSIBLE: cbSize, valid bits, channel mask, then
                // the sub-format GUID whose first two bytes are the format tag.
                c.skip(8, "fmt extension");
                pcm = c.le16("fmt sub-format") == 1;
            }
            if (!pcm)
                c.fail(body, "format tag ", tag, " is not PCM (1, or 0xFFFE with a PCM sub-format); only 16-bit PCM is "
                       "supported");
            if (channels == 0) c.fail(body + 2, "0 channels");
            if (rate == 0 || rate > 0x7FFFFFFFu) c.fail(body + 4, "sample rate ", rate, " is not valid");
            if (bits != 16) c.fail(body + 14, bits, " bits per sample; only 16-bit PCM is supported");
            if (align != 2 * channels)
                c.fail(body + 12, "block align ", align, " does not match ", channels, " channels of 16 bits (expected ",
                       2 * channels, ")");
            out.sample_rate = int(rate);
            out.channels = channels;
            block_align = align;
            have_fmt = true;
        } else if (id == "data") {
            if (!have_fmt) c.fail(at, "'data' chunk comes before the 'fmt ' chunk");
            if (size % std::uint32_t(block_align) != 0)
                c.fail(at + 4, "'data' chunk has ", size, " bytes, not a whole number of ", block_align,
                       "-byte frames");
            const auto data = c.bytes(size, "'data' chunk");
            const std::size_t frames = size / std::size_t(block_align);
            out.samples.resize(frames);
            const int ch = out.channels;
            for (std::size_t f = 0; f < frames; ++f) {
                double sum = 0;
                for (int k = 0; k < ch; ++k) {
                    const std::size_t i = (f * ch + k) * 2;
                    sum += std::int16_t(std::uint16_t(data[i] | (data[i + 1] << 8)));
                }
                out.samples[f] = float(sum / ch / 32768.0);
            }
            return out;  // what follows the samples (LIST etc.) is not needed
        }
        c.seek(body + size);
        // Pad byte after an odd-sized chunk; a missing pad at the very end is
        // tolerated (some writers omit it).
        if ((size & 1) && c.offset() < riff_end) c.skip(1, "chunk pad byte");
    }
    if (!have_fmt) c.fail(riff_end, "no 'fmt ' chunk before the end of the RIFF chunk");
    c.fail(riff_end, "no 'data' chunk before the end of the RIFF chunk");
}

// From bytes in memory that may be gzip (the fuzz target's entry point).
inline WavAudio read_wav(std::span<const std::uint8_t> bytes, const std::string& name) {
    if (is_gzip(bytes)) return parse_wav(read_bytes(bytes, name, "read_wav"), name, true);
    return parse_wav(bytes, name, false);
}

// A WAV file (raw or gzip).
inline WavAudio read_wav(const std::string& path) {
    ByteSource src(path, "read_wav");
    const std::vector<std::uint8_t> raw = src.read_all(std::uint64_t(1) << 32);
    return parse_wav(raw, path, src.gzip());
}

}  // namespace polymath::data
