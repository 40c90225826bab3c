// libFuzzer harness for the WAV reader (polymath/data/wav.hpp) and the log-mel
// spectrogram of what it read (polymath/data/audio.hpp), fed raw or gzip bytes
// from memory (scripts/fuzz builds and runs it).
//
// Any input must either parse or throw polymath::Error. Parsed samples must
// lie in [-1, 1); their log-mel spectrogram (at the file's sample rate, up to
// the Nyquist frequency; at most the first 16,000 samples, to keep each run
// fast) must have the documented frame count and only finite values.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "polymath/data/audio.hpp"
#include "polymath/data/wav.hpp"

namespace {
void require(bool ok) {
    if (!ok) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    polymath::data::WavAudio w;
    try {
        w = polymath::data::read_wav(std::span<const std::uint8_t>(data, size), "fuzz-input");
    } catch (const polymath::Error&) {
        return 0;
    }
    require(w.sample_rate >= 1 && w.channels >= 1);
    for (float s : w.samples) require(s >= -1.0f && s < 1.0f);
    if (w.samples.empty()) return 0;
    polymath::data::MelOptions o;
    o.sample_rate = w.sample_rate;
    o.fmin = 0;
    o.fmax = 0;  // the Nyquist frequency of this rate
    const std::size_t n = std::min<std::size_t>(w.samples.size(), 16000);
    const auto m = polymath::data::log_mel_spectrogram(std::span<const float>(w.samples.data(), n), o);
    require(m.shape()[0] == polymath::data::mel_frame_count(n, o) && m.shape()[1] == o.n_mels);
    for (std::int64_t i = 0; i < m.numel(); ++i) require(std::isfinite(m.data()[i]));
    return 0;
}
