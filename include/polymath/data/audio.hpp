// polymath/data/audio.hpp — log-mel spectrogram of a mono signal.
//
// Pipeline, per frame t (frame start t * hop_length):
//   1. x = samples[t*hop .. t*hop + win_length) (zeros past the end of a
//      signal shorter than one window), times a periodic Hann window
//      w[i] = 0.5 - 0.5 cos(2 pi i / win_length) (torch.hann_window's and
//      librosa's default), zero-padded at the end to n_fft samples;
//   2. power spectrum P[k] = |X[k]|^2, X = DFT(x) (unnormalised,
//      X[k] = sum_n x[n] e^{-2 pi i k n / n_fft}), k = 0 .. n_fft/2, computed
//      with Eigen's FFT module (Eigen::FFT<float>, kissfft backend);
//   3. mel energies M[m] = sum_k F[m][k] P[k], F the HTK mel filterbank below;
//   4. output log(M[m] + eps) (natural log).
// Frames: 1 + (n - win_length) / hop_length for n >= win_length samples (the
// tail that does not fill a frame is dropped; no centring/padding of the
// signal), 1 frame for shorter signals. Output Tensor<float> [frames, n_mels].
//
// Mel filterbank (the HTK formula, as librosa.filters.mel(htk=True,
// norm=None)): mel(f) = 2595 log10(1 + f / 700); n_mels + 2 points equally
// spaced in mel between mel(fmin) and mel(fmax), converted back to Hz
// (f_0 < f_1 < ... < f_{n_mels+1}); filter m is the triangle rising from 0 at
// f_m to 1 at f_{m+1} and falling to 0 at f_{m+2}, evaluated at the FFT bin
// frequencies k * sample_rate / n_fft:
//   F[m][k] = max(0, min((f_k - f_m) / (f_{m+1} - f_m), (f_{m+2} - f_k) / (f_{m+2} - f_{m+1}))).
// Peak height 1, no area ("Slaney") normalisation.
//
// Defaults suit the 8 kHz spoken digits: 25 ms window (200 samples), 10 ms hop
// (80), n_fft 256, 40 mels from 20 Hz to 4,000 Hz (the Nyquist frequency).
//
//   auto w = polymath::data::read_wav("data/speech-digits/recordings/0_george_0.wav");
//   Tensor<float> s = polymath::data::log_mel_spectrogram(w.samples);  // [28, 40]
#pragma once

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <span>
#include <vector>

#include <unsupported/Eigen/FFT>

#include "../core/error.hpp"
#include "../tensor/tensor.hpp"

namespace polymath::data {

struct MelOptions {
    int sample_rate = 8000;  // Hz
    int win_length = 200;    // samples per frame (25 ms at 8 kHz)
    int hop_length = 80;     // samples between frame starts (10 ms at 8 kHz)
    int n_fft = 256;         // FFT size, >= win_length
    int n_mels = 40;
    double fmin = 20.0;      // Hz
    double fmax = 4000.0;    // Hz, <= sample_rate / 2; 0 means sample_rate / 2
    double eps = 1e-6;       // added before the log
};

namespace detail {

inline void check_mel_options(const MelOptions& o) {
    const char* op = "log_mel_spectrogram";
    POLYMATH_CHECK(o.sample_rate > 0, op, "sample_rate must be positive, got ", o.sample_rate);
    POLYMATH_CHECK(o.win_length > 0, op, "win_length must be positive, got ", o.win_length);
    POLYMATH_CHECK(o.hop_length > 0, op, "hop_length must be positive, got ", o.hop_length);
    POLYMATH_CHECK(o.n_fft >= o.win_length && o.n_fft <= (1 << 20), op, "n_fft must be in [win_length = ",
                   o.win_length, ", 2^20], got ", o.n_fft);
    POLYMATH_CHECK(o.n_mels >= 1 && o.n_mels <= 4096, op, "n_mels must be in [1, 4096], got ", o.n_mels);
    const double fmax = o.fmax > 0 ? o.fmax : o.sample_rate / 2.0;
    POLYMATH_CHECK(o.fmin >= 0 && o.fmin < fmax && fmax <= o.sample_rate / 2.0, op,
                   "need 0 <= fmin < fmax <= sample_rate / 2, got fmin ", o.fmin, ", fmax ", fmax, ", sample_rate ",
                   o.sample_rate);
    POLYMATH_CHECK(o.eps > 0, op, "eps must be positive, got ", o.eps);
}

}  // namespace detail

inline double hz_to_mel_htk(double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); }
inline double mel_to_hz_htk(double mel) { return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0); }

// Periodic Hann window of length n: 0.5 - 0.5 cos(2 pi i / n).
inline std::vector<float> hann_window(int n) {
    POLYMATH_CHECK(n > 0, "hann_window", "length must be positive, got ", n);
    std::vector<float> w(static_cast<std::size_t>(n));
    const double pi = 3.14159265358979323846;
    for (int i = 0; i < n; ++i) w[std::size_t(i)] = float(0.5 - 0.5 * std::cos(2.0 * pi * i / n));
    return w;
}

// HTK mel filterbank (see the header comment), [n_mels, n_fft / 2 + 1].
inline Tensor<float> mel_filterbank(const MelOptions& o = {}) {
    detail::check_mel_options(o);
    const double fmax = o.fmax > 0 ? o.fmax : o.sample_rate / 2.0;
    const int bins = o.n_fft / 2 + 1;
    std::vector<double> f(std::size_t(o.n_mels) + 2);
    const double m0 = hz_to_mel_htk(o.fmin), m1 = hz_to_mel_htk(fmax);
    for (std::size_t i = 0; i < f.size(); ++i) f[i] = mel_to_hz_htk(m0 + (m1 - m0) * double(i) / double(o.n_mels + 1));
    Tensor<float> fb = Tensor<float>::empty({o.n_mels, bins});
    float* p = fb.data();
    for (int m = 0; m < o.n_mels; ++m)
        for (int k = 0; k < bins; ++k) {
            const double fk = double(k) * o.sample_rate / o.n_fft;
            const double lower = (fk - f[std::size_t(m)]) / (f[std::size_t(m) + 1] - f[std::size_t(m)]);
            const double upper = (f[std::size_t(m) + 2] - fk) / (f[std::size_t(m) + 2] - f[std::size_t(m) + 1]);
            p[std::int64_t(m) * bins + k] = float(std::max(0.0, std::min(lower, upper)));
        }
    return fb;
}

// |DFT(frame zero-padded to n_fft)|^2 for bins 0 .. n_fft/2, through
// Eigen::FFT. frame.size() must be <= n_fft.
inline std::vector<float> power_spectrum(std::span<const float> frame, int n_fft) {
    POLYMATH_CHECK(n_fft > 0 && frame.size() <= std::size_t(n_fft), "power_spectrum", "frame of ", frame.size(),
                   " samples does not fit n_fft = ", n_fft);
    std::vector<float> in(std::size_t(n_fft), 0.0f);
    std::copy(frame.begin(), frame.end(), in.begin());
    Eigen::FFT<float> fft;
    fft.SetFlag(Eigen::FFT<float>::HalfSpectrum);
    std::vector<std::complex<float>> out;
    fft.fwd(out, in);
    std::vector<float> power(std::size_t(n_fft / 2 + 1));
    for (std::size_t k = 0; k < power.size(); ++k) power[k] = std::norm(out[k]);
    return power;
}

// Number of frames log_mel_spectrogram produces for n samples.
inline std::int64_t mel_frame_count(std::size_t n, const MelOptions& o = {}) {
    if (n <= std::size_t(o.win_length)) return 1;
    return 1 + std::int64_t((n - std::size_t(o.win_length)) / std::size_t(o.hop_length));
}

// log(mel energies + eps), [frames, n_mels] (see the header comment).
inline Tensor<float> log_mel_spectrogram(std::span<const float> samples, const MelOptions& o = {}) {
    detail::check_mel_options(o);
    POLYMATH_CHECK(!samples.empty(), "log_mel_spectrogram", "no samples (an empty signal has no frames)");
    const std::int64_t frames = mel_frame_count(samples.size(), o);
    const int bins = o.n_fft / 2 + 1;
    const Tensor<float> fb = mel_filterbank(o);
    const std::vector<float> window = hann_window(o.win_length);

    Eigen::FFT<float> fft;
    fft.SetFlag(Eigen::FFT<float>::HalfSpectrum);
    std::vector<float> buf(std::size_t(o.n_fft));
    std::vector<std::complex<float>> spec;
    std::vector<float> power(static_cast<std::size_t>(bins));
    Tensor<float> out = Tensor<float>::empty({frames, o.n_mels});
    float* dst = out.data();
    const float* F = fb.data();
    for (std::int64_t t = 0; t < frames; ++t) {
        const std::size_t start = std::size_t(t) * std::size_t(o.hop_length);
        std::fill(buf.begin(), buf.end(), 0.0f);
        for (int i = 0; i < o.win_length; ++i) {
            const std::size_t s = start + std::size_t(i);
            if (s < samples.size()) buf[std::size_t(i)] = samples[s] * window[std::size_t(i)];
        }
        fft.fwd(spec, buf);
        for (int k = 0; k < bins; ++k) power[std::size_t(k)] = std::norm(spec[std::size_t(k)]);
        for (int m = 0; m < o.n_mels; ++m) {
            double e = 0;
            const float* row = F + std::int64_t(m) * bins;
            for (int k = 0; k < bins; ++k) e += double(row[k]) * power[std::size_t(k)];
            dst[t * o.n_mels + m] = float(std::log(e + o.eps));
        }
    }
    return out;
}

}  // namespace polymath::data
