// Tests of polymath/data/audio.hpp: Hann window, HTK mel filterbank, power
// spectrum (against a direct O(n^2) DFT), a sine's mel bin, and log-mel values
// of a bundled recording against an independent Python computation.
//
// Reference values (numpy is not installed here; Python standard library, a
// direct DFT with cmath, run from the repository root):
//   w = wave.open('data/speech-digits/recordings/0_george_0.wav'); n = w.getnframes()
//   x = [s / 32768.0 for s in struct.unpack('<%dh' % n, w.readframes(n))]
//   sr, win, hop, nfft, nmels, fmin, fmax, eps = 8000, 200, 80, 256, 40, 20.0, 4000.0, 1e-6
//   hann = [0.5 - 0.5 * math.cos(2 * math.pi * i / win) for i in range(win)]
//   mel = lambda f: 2595 * math.log10(1 + f / 700); hz = lambda m: 700 * (10 ** (m / 2595) - 1)
//   pts = [hz(mel(fmin) + (mel(fmax) - mel(fmin)) * i / (nmels + 1)) for i in range(nmels + 2)]
//   fb = lambda m, k: max(0.0, min((k*sr/nfft - pts[m]) / (pts[m+1] - pts[m]),
//                                  (pts[m+2] - k*sr/nfft) / (pts[m+2] - pts[m+1])))
//   def logmel(t):
//       fr = [x[t*hop + i] * hann[i] for i in range(win)] + [0.0] * (nfft - win)
//       P = [abs(sum(fr[j] * cmath.exp(-2j*math.pi*k*j/nfft) for j in range(nfft)))**2 for k in range(nfft//2 + 1)]
//       return [math.log(sum(fb(m, k) * P[k] for k in range(nfft//2 + 1)) + eps) for m in range(nmels)]
// Output:
//   samples 2384 frames 28
//   frame 0 m0=-8.807625 m5=0.323730 m20=-5.505627 m39=-5.732072
//   frame 10 m0=-7.413039 m5=0.940728 m20=-5.570939 m39=-1.987519
//   frame 27 m0=-8.418180 m5=-1.526229 m20=-5.151264 m39=-8.036792
//   fb[0] nonzero [(1, 0.33372), (2, 0.750943)]
//   fb[39] nonzero [(115, 0.023794), ..., (121, 0.957498), (122, 0.891943), ..., (127, 0.148657)]
#include <doctest/doctest.h>

#include <cmath>
#include <complex>
#include <cstdlib>
#include <string>
#include <vector>

#include <polymath/core/philox.hpp>
#include <polymath/data/audio.hpp>
#include <polymath/data/wav.hpp>

using polymath::Error;
namespace pd = polymath::data;

namespace {

std::string data_dir() {
    const char* env = std::getenv("POLYMATH_SOURCE_DIR");
    return (env ? std::string(env) : std::string(".")) + "/data";
}

const double kPi = 3.14159265358979323846;

}  // namespace

TEST_CASE("hann_window is the periodic Hann window") {
    const auto w = pd::hann_window(4);  // 0.5 - 0.5 cos(2 pi i / 4)
    REQUIRE(w.size() == 4);
    CHECK(w[0] == doctest::Approx(0.0));
    CHECK(w[1] == doctest::Approx(0.5));
    CHECK(w[2] == doctest::Approx(1.0));
    CHECK(w[3] == doctest::Approx(0.5));
}

TEST_CASE("the HTK mel scale and filterbank match the formula's values computed in Python") {
    CHECK(pd::hz_to_mel_htk(700.0) == doctest::Approx(781.1728387480312));  // 2595 log10(2)
    CHECK(pd::mel_to_hz_htk(pd::hz_to_mel_htk(1234.5)) == doctest::Approx(1234.5));
    const auto fb = pd::mel_filterbank();
    REQUIRE(fb.shape() == polymath::Shape{40, 129});
    const float* f = fb.data();
    CHECK(f[0] == 0.0f);
    CHECK(f[1] == doctest::Approx(0.33372).epsilon(1e-4));
    CHECK(f[2] == doctest::Approx(0.750943).epsilon(1e-4));
    CHECK(f[3] == 0.0f);
    CHECK(f[39 * 129 + 114] == 0.0f);
    CHECK(f[39 * 129 + 115] == doctest::Approx(0.023794).epsilon(1e-3));
    CHECK(f[39 * 129 + 121] == doctest::Approx(0.957498).epsilon(1e-4));
    CHECK(f[39 * 129 + 127] == doctest::Approx(0.148657).epsilon(1e-4));
    CHECK(f[39 * 129 + 128] == 0.0f);  // fmax = 4000 Hz is the last point: weight 0 there
}

TEST_CASE("power_spectrum through Eigen's FFT equals a direct DFT computed in the test") {
    polymath::Generator gen(7);
    const int n = 200, nfft = 256;
    std::vector<float> frame(n);
    const auto r = polymath::rand<float>({n}, gen);
    for (int i = 0; i < n; ++i) frame[std::size_t(i)] = r.data()[i] * 2.0f - 1.0f;
    const auto p = pd::power_spectrum(frame, nfft);
    REQUIRE(p.size() == 129);
    for (int k = 0; k <= nfft / 2; ++k) {
        std::complex<double> x = 0;
        for (int j = 0; j < n; ++j) x += double(frame[std::size_t(j)]) * std::polar(1.0, -2 * kPi * k * j / nfft);
        CHECK(p[std::size_t(k)] == doctest::Approx(std::norm(x)).epsilon(1e-4).scale(1e-3));
    }
}

TEST_CASE("a 1000 Hz sine puts its energy in mel bin 18, whose filter peaks at 1017.5 Hz") {
    // HTK points: mel(20) = 31.75, mel(4000) = 2146.06, step (2146.06 - 31.75) / 41 = 51.57 mel;
    // 1000 Hz = 1000.0 mel = point 18.78, so the nearest peak is point 19 (1017.5 Hz), the peak of
    // filter 18 (filter m peaks at point m + 1). 1000 Hz is FFT bin 32 exactly (8000 / 256 = 31.25 Hz).
    std::vector<float> s(8000);
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = 0.5f * float(std::sin(2 * kPi * 1000.0 * double(i) / 8000.0));
    const auto m = pd::log_mel_spectrogram(s);
    REQUIRE(m.shape() == polymath::Shape{98, 40});  // 1 + (8000 - 200) / 80
    for (std::int64_t t : {0, 50, 97}) {
        const float* row = m.data() + t * 40;
        int best = 0;
        for (int b = 1; b < 40; ++b)
            if (row[b] > row[best]) best = b;
        CHECK(best == 18);
        CHECK(row[18] > row[30] + 10.0f);  // far bins hold only window leakage
    }
}

TEST_CASE("log_mel_spectrogram of a bundled recording matches the Python reference values") {
    const auto w = pd::read_wav(data_dir() + "/speech-digits/recordings/0_george_0.wav");
    const auto m = pd::log_mel_spectrogram(w.samples);
    REQUIRE(m.shape() == polymath::Shape{28, 40});
    auto at = [&](std::int64_t t, int b) { return double(m.data()[t * 40 + b]); };
    const double tol = 2e-3;  // float FFT vs double DFT, in log units
    CHECK(std::abs(at(0, 0) - -8.807625) < tol);
    CHECK(std::abs(at(0, 5) - 0.323730) < tol);
    CHECK(std::abs(at(0, 20) - -5.505627) < tol);
    CHECK(std::abs(at(0, 39) - -5.732072) < tol);
    CHECK(std::abs(at(10, 0) - -7.413039) < tol);
    CHECK(std::abs(at(10, 5) - 0.940728) < tol);
    CHECK(std::abs(at(10, 20) - -5.570939) < tol);
    CHECK(std::abs(at(10, 39) - -1.987519) < tol);
    CHECK(std::abs(at(27, 0) - -8.418180) < tol);
    CHECK(std::abs(at(27, 5) - -1.526229) < tol);
    CHECK(std::abs(at(27, 20) - -5.151264) < tol);
    CHECK(std::abs(at(27, 39) - -8.036792) < tol);
}

TEST_CASE("log_mel_spectrogram frames short signals as one zero-padded frame and rejects bad options") {
    std::vector<float> tiny(50, 0.0f);
    const auto m = pd::log_mel_spectrogram(tiny);
    REQUIRE(m.shape() == polymath::Shape{1, 40});
    CHECK(m.data()[0] == doctest::Approx(std::log(1e-6)));  // silence: log(0 + eps)
    CHECK(pd::mel_frame_count(200) == 1);
    CHECK(pd::mel_frame_count(279) == 1);
    CHECK(pd::mel_frame_count(280) == 2);
    CHECK_THROWS_WITH_AS(pd::log_mel_spectrogram(std::vector<float>{}), doctest::Contains("no samples"), Error);
    pd::MelOptions o;
    o.n_fft = 128;  // < win_length 200
    CHECK_THROWS_WITH_AS(pd::log_mel_spectrogram(tiny, o), doctest::Contains("n_fft must be in [win_length = 200"),
                         Error);
    o = {};
    o.fmax = 5000;
    CHECK_THROWS_WITH_AS(pd::log_mel_spectrogram(tiny, o), doctest::Contains("fmax 5000"), Error);
}
