// Tests of the data readers (gzip.hpp, cifar.hpp, wav.hpp, csv.hpp, text.hpp,
// idx.hpp from memory) on the bundled samples in data/ and on corrupt inputs
// written in the test. Expected values of the bundled files were computed
// independently with Python's standard library (struct/wave/csv/gzip), e.g.
//   b = open('data/cifar10/data_batch_1_1k.bin','rb').read(); sum(b[1:3073]) -> 398583
//   wave.open('.../0_george_0.wav').getnframes() -> 2384, first samples -1489 -962 -606 163 1033
//   csv.reader over the Dongsi CSV: 35064 rows, PM2.5 750 'NA', mean of the rest 86.194296788482831
#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <polymath/data/cifar.hpp>
#include <polymath/data/csv.hpp>
#include <polymath/data/gzip.hpp>
#include <polymath/data/idx.hpp>
#include <polymath/data/text.hpp>
#include <polymath/data/wav.hpp>

namespace fs = std::filesystem;
using polymath::Error;
namespace pd = polymath::data;

namespace {

std::string data_dir() {
    const char* env = std::getenv("POLYMATH_SOURCE_DIR");
    return (env ? std::string(env) : std::string(".")) + "/data";
}

using Bytes = std::vector<std::uint8_t>;

struct TempDir {
    fs::path dir;
    TempDir() {
        static int counter = 0;
        dir = fs::temp_directory_path() /
              ("polymath_test_readers_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::remove_all(dir);
        fs::create_directories(dir);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string path(const std::string& name) const { return (dir / name).string(); }
    std::string write(const std::string& name, const Bytes& bytes) const {
        std::ofstream f(path(name), std::ios::binary);
        f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
        return path(name);
    }
    std::string write(const std::string& name, const std::string& text) const {
        return write(name, Bytes(text.begin(), text.end()));
    }
    std::string write_gz(const std::string& name, const Bytes& bytes) const {
        const std::string p = path(name);
        gzFile f = gzopen(p.c_str(), "wb");
        REQUIRE(f != nullptr);
        if (!bytes.empty()) REQUIRE(gzwrite(f, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
        REQUIRE(gzclose(f) == Z_OK);
        return p;
    }
};

Bytes file_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

Bytes gzip_mem(const Bytes& in) {
    TempDir t;
    return file_bytes(t.write_gz("x.gz", in));
}

void put_le16(Bytes& b, unsigned v) {
    b.push_back(std::uint8_t(v));
    b.push_back(std::uint8_t(v >> 8));
}
void put_le32(Bytes& b, std::uint32_t v) {
    for (int s = 0; s < 32; s += 8) b.push_back(std::uint8_t(v >> s));
}
void put_tag(Bytes& b, const char* tag) {
    for (int i = 0; i < 4; ++i) b.push_back(std::uint8_t(tag[i]));  // (insert() trips a GCC 12 false -Wstringop-overflow)
}

// A chunk: id, size, body, pad byte when odd.
void put_chunk(Bytes& b, const char* id, const Bytes& body) {
    put_tag(b, id);
    put_le32(b, std::uint32_t(body.size()));
    b.insert(b.end(), body.begin(), body.end());
    if (body.size() & 1) b.push_back(0);
}
Bytes fmt_body(unsigned channels, std::uint32_t rate, unsigned bits = 16, unsigned tag = 1) {
    Bytes f;
    put_le16(f, tag);
    put_le16(f, channels);
    put_le32(f, rate);
    put_le32(f, rate * channels * bits / 8);
    put_le16(f, channels * bits / 8);
    put_le16(f, bits);
    return f;
}
Bytes pcm16(const std::vector<int>& samples) {
    Bytes d;
    for (int s : samples) put_le16(d, unsigned(s) & 0xFFFF);
    return d;
}
// RIFF/WAVE around the given chunks (already encoded).
Bytes riff(const Bytes& chunks) {
    Bytes b;
    put_tag(b, "RIFF");
    put_le32(b, std::uint32_t(chunks.size() + 4));
    put_tag(b, "WAVE");
    b.insert(b.end(), chunks.begin(), chunks.end());
    return b;
}
Bytes simple_wav(const std::vector<int>& samples, unsigned channels = 1, std::uint32_t rate = 8000) {
    Bytes c;
    put_chunk(c, "fmt ", fmt_body(channels, rate));
    put_chunk(c, "data", pcm16(samples));
    return riff(c);
}

std::span<const std::uint8_t> span_of(const Bytes& b) { return {b.data(), b.size()}; }

}  // namespace

// ---------------------------------------------------------------------------------------------- gzip.hpp

TEST_CASE("ByteSource reads memory raw and gzip to the same bytes, and concatenated gzip members as one stream") {
    const Bytes text = {'h', 'e', 'l', 'l', 'o', '\n'};
    CHECK(pd::read_bytes(span_of(text), "raw", "t") == text);
    const Bytes gz = gzip_mem(text);
    CHECK(pd::is_gzip(span_of(gz)));
    CHECK(pd::read_bytes(span_of(gz), "gz", "t") == text);
    Bytes two = gz;
    two.insert(two.end(), gz.begin(), gz.end());  // what `cat a.gz a.gz` gives
    Bytes twice = text;
    twice.insert(twice.end(), text.begin(), text.end());
    CHECK(pd::read_bytes(span_of(two), "two", "t") == twice);
    // The same through a file (the file path refills zlib from a buffer).
    TempDir t;
    CHECK(pd::read_bytes(t.write("two.gz", two), "t") == twice);
    CHECK(pd::read_bytes(t.write("raw.txt", text), "t") == text);
    CHECK(pd::read_bytes(t.write("one.txt", Bytes{'x'}), "t") == Bytes{'x'});  // shorter than the gzip magic
    CHECK(pd::read_bytes(t.write("empty.txt", Bytes{}), "t").empty());
}

TEST_CASE("ByteSource reports a gzip stream cut before its trailer with the name and decompressed offset") {
    Bytes gz = gzip_mem(Bytes(100, 'a'));
    gz.resize(gz.size() - 8);  // drop CRC-32 + length
    CHECK_THROWS_WITH_AS(pd::read_bytes(span_of(gz), "cut.gz", "op"),
                         doctest::Contains("op: 'cut.gz': gzip stream truncated at offset 100"), Error);
    Bytes bad = gzip_mem(Bytes(100, 'a'));
    bad[bad.size() - 6] ^= 0x40;  // CRC-32 byte flipped
    CHECK_THROWS_WITH_AS(pd::read_bytes(span_of(bad), "crc.gz", "op"), doctest::Contains("incorrect data check"),
                         Error);
    CHECK_THROWS_WITH_AS(pd::read_bytes(span_of(bad), "crc.gz", "op"), doctest::Contains("'crc.gz'"), Error);
}

TEST_CASE("ByteCursor reading past the end names the file, its size, the missing byte count and the offset") {
    const Bytes b = {1, 0, 0, 0, 7, 0};
    pd::ByteCursor c(span_of(b), "six.bin", "op");
    CHECK(c.le32("a") == 1u);
    CHECK_THROWS_WITH_AS(c.le32("the count"),
                         doctest::Contains("op: 'six.bin' ended at byte 6, expected 2 more bytes of the count "
                                           "(4 bytes at offset 4)"),
                         Error);
}

// ---------------------------------------------------------------------------------------------- IDX (memory)

TEST_CASE("read_idx from memory equals the file read, and load_mnist finds the Fashion-MNIST sample") {
    const std::string p = data_dir() + "/fashion-mnist/t10k-2k-labels-idx1-ubyte.gz";
    const Bytes gz = file_bytes(p);
    const auto a = pd::read_idx(span_of(gz), "labels");
    CHECK(a.data == pd::read_idx(p).data);
    REQUIRE(a.dims == std::vector<std::int64_t>{2000});
    // First test labels (Python: gzip.open(...).read()[8:18]).
    CHECK(std::vector<int>(a.data.begin(), a.data.begin() + 10) == std::vector<int>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7});

    const auto train = pd::load_mnist(data_dir() + "/fashion-mnist", true);
    CHECK(train.images.dims == std::vector<std::int64_t>{5000, 28, 28});
    CHECK(std::vector<int>(train.labels.data.begin(), train.labels.data.begin() + 5) ==
          std::vector<int>{9, 0, 0, 3, 0});
    std::vector<int> counts(10);
    for (auto l : train.labels.data) ++counts[l];
    CHECK(counts == std::vector<int>{457, 556, 504, 501, 488, 493, 493, 512, 490, 506});
    CHECK(pd::load_mnist(data_dir() + "/fashion-mnist", false).images.dims[0] == 2000);

    Bytes cut = gz;
    cut.resize(cut.size() / 2);
    CHECK_THROWS_WITH_AS(pd::read_idx(span_of(cut), "half.gz"), doctest::Contains("'half.gz': expected 2000 bytes"),
                         Error);
}

// ---------------------------------------------------------------------------------------------- CIFAR-10

TEST_CASE("load_cifar10 reads the bundled training sample: 1000 images, known labels and pixel values") {
    const auto b = pd::load_cifar10(data_dir() + "/cifar10", true);
    REQUIRE(b.images.shape() == polymath::Shape{1000, 3, 32, 32});
    REQUIRE(b.labels.shape() == polymath::Shape{1000});
    const std::int64_t* l = b.labels.data();
    CHECK(std::vector<std::int64_t>(l, l + 10) == std::vector<std::int64_t>{9, 3, 7, 0, 9, 7, 7, 9, 6, 5});
    std::vector<int> counts(10);
    for (std::int64_t i = 0; i < 1000; ++i) ++counts[std::size_t(l[i])];
    CHECK(counts == std::vector<int>(10, 100));
    const std::uint8_t* px = b.images.data();
    CHECK(int(px[0]) == 61);  // record 0, R plane, row 0, columns 0..3
    CHECK(int(px[1]) == 62);
    CHECK(int(px[2]) == 64);
    CHECK(int(px[3]) == 55);
    CHECK(int(px[1024]) == 57);  // G[0]
    CHECK(int(px[2048]) == 54);  // B[0]
    long sum0 = 0, sum999 = 0;
    for (int i = 0; i < 3072; ++i) {
        sum0 += px[i];
        sum999 += px[999 * 3072 + i];
    }
    CHECK(sum0 == 398583);
    CHECK(sum999 == 367975);
    CHECK(l[999] == 5);
}

TEST_CASE("load_cifar10 reads the bundled test sample, sorted by class, and a gzip copy reads the same") {
    const std::string p = data_dir() + "/cifar10/test_batch_1k.bin";
    const auto b = pd::load_cifar10(data_dir() + "/cifar10", false);
    REQUIRE(b.size() == 1000);
    CHECK(b.labels.data()[99] == 0);
    CHECK(b.labels.data()[100] == 1);
    CHECK(b.labels.data()[999] == 9);
    long sum0 = 0;
    for (int i = 0; i < 3072; ++i) sum0 += b.images.data()[i];
    CHECK(sum0 == 475641);

    TempDir t;
    const Bytes raw = file_bytes(p);
    const auto gz = t.write_gz("test_batch.bin.gz", raw);
    const auto g = pd::load_cifar10_batch(gz);
    CHECK(g.labels.to_vector() == b.labels.to_vector());
    CHECK(g.images.to_vector() == b.images.to_vector());
    CHECK(pd::cifar10_class_names()[9] == std::string("truck"));
}

TEST_CASE("load_cifar10 concatenates data_batch_1..5 in order when present, preferring them to the sample") {
    TempDir t;
    Bytes b1(3073 * 2, 1), b2(3073, 2);
    b1[0] = 3;
    b1[3073] = 4;
    b2[0] = 8;
    t.write("data_batch_1.bin", b1);
    t.write("data_batch_2.bin", b2);
    t.write("data_batch_1_1k.bin", Bytes(3073, 0));
    CHECK(pd::cifar10_files(t.dir.string(), true).size() == 2);
    const auto b = pd::load_cifar10(t.dir.string(), true);
    CHECK(b.labels.to_vector() == std::vector<std::int64_t>{3, 4, 8});
    CHECK(int(b.images.data()[2 * 3072]) == 2);  // first pixel of the third image, from batch 2
    CHECK_THROWS_WITH_AS(pd::load_cifar10(t.dir.string(), false), doctest::Contains("no CIFAR-10 test files"), Error);
    // A gzip-compressed test batch is found by its .bin.gz name.
    Bytes tb(3073, 5);
    tb[0] = 7;
    t.write_gz("test_batch.bin.gz", tb);
    CHECK(pd::load_cifar10(t.dir.string(), false).labels.to_vector() == std::vector<std::int64_t>{7});
}

TEST_CASE("corrupt CIFAR-10 batches throw naming the file and the offset of the bad record") {
    TempDir t;
    Bytes partial(3073 + 100, 0);
    const auto p = t.write("partial.bin", partial);
    CHECK_THROWS_WITH_AS(pd::load_cifar10_batch(p), doctest::Contains("partial.bin"), Error);
    CHECK_THROWS_WITH_AS(pd::load_cifar10_batch(p),
                         doctest::Contains("the partial record 1 starts at offset 3073 and has only 100 bytes"), Error);
    Bytes bad_label(3073 * 3, 0);
    bad_label[2 * 3073] = 10;
    const auto q = t.write("label.bin", bad_label);
    CHECK_THROWS_WITH_AS(pd::load_cifar10_batch(q),
                         doctest::Contains(("'" + q + "': label 10 of record 2 at offset 6146").c_str()), Error);
    const auto e = t.write("empty.bin", Bytes{});
    CHECK_THROWS_WITH_AS(pd::load_cifar10_batch(e), doctest::Contains("is empty at offset 0"), Error);
    Bytes gz = gzip_mem(Bytes(3073, 0));
    gz.resize(gz.size() - 3);
    CHECK_THROWS_WITH_AS(pd::load_cifar10_batch(span_of(gz), "cut.bin.gz"),
                         doctest::Contains("'cut.bin.gz': gzip stream truncated at offset 3073"), Error);
    CHECK_THROWS_WITH_AS(pd::load_cifar10_batch(t.path("missing.bin")), doctest::Contains("cannot open"), Error);
}

// ---------------------------------------------------------------------------------------------- WAV

TEST_CASE("read_wav reads bundled FSDD recordings: 8 kHz mono, known lengths and sample values") {
    const auto w = pd::read_wav(data_dir() + "/speech-digits/recordings/0_george_0.wav");
    CHECK(w.sample_rate == 8000);
    CHECK(w.channels == 1);
    REQUIRE(w.samples.size() == 2384);
    const int first[] = {-1489, -962, -606, 163, 1033};
    for (int i = 0; i < 5; ++i) CHECK(w.samples[std::size_t(i)] == float(first[i]) / 32768.0f);
    CHECK(w.samples.back() == -15.0f / 32768.0f);
    CHECK(w.duration() == doctest::Approx(0.298));

    const auto j = pd::read_wav(data_dir() + "/speech-digits/recordings/7_jackson_32.wav");
    REQUIRE(j.samples.size() == 4301);
    CHECK(j.samples[0] == 307.0f / 32768.0f);
    CHECK(j.samples.back() == -358.0f / 32768.0f);
}

TEST_CASE("all 3000 bundled recordings read as 8 kHz mono with 10498424 samples in total") {
    std::size_t files = 0, total = 0;
    for (const auto& e : fs::directory_iterator(data_dir() + "/speech-digits/recordings")) {
        const auto w = pd::read_wav(e.path().string());
        CHECK(w.sample_rate == 8000);
        CHECK(w.channels == 1);
        total += w.samples.size();
        ++files;
    }
    CHECK(files == 3000);
    CHECK(total == 10498424);  // Python: sum of wave.open(f).getnframes()
}

TEST_CASE("read_wav skips unknown chunks with odd sizes, averages stereo and accepts WAVE_FORMAT_EXTENSIBLE") {
    Bytes c;
    put_chunk(c, "LIST", Bytes{'I', 'N', 'F'});  // odd size: one pad byte follows
    put_chunk(c, "fmt ", fmt_body(2, 16000));
    put_chunk(c, "fact", Bytes{1, 0, 0, 0});
    put_chunk(c, "data", pcm16({100, 300, -32768, -32768, 32767, -32767}));
    put_chunk(c, "LIST", Bytes(5, 'x'));
    const Bytes b = riff(c);
    const auto w = pd::read_wav(span_of(b), "stereo.wav");
    CHECK(w.sample_rate == 16000);
    CHECK(w.channels == 2);
    REQUIRE(w.samples.size() == 3);
    CHECK(w.samples[0] == 200.0f / 32768.0f);
    CHECK(w.samples[1] == -1.0f);
    CHECK(w.samples[2] == 0.0f);

    // Extensible: 40-byte fmt, sub-format GUID starting with 01 00 (PCM).
    Bytes f = fmt_body(1, 8000, 16, 0xFFFE);
    put_le16(f, 22);       // cbSize
    put_le16(f, 16);       // valid bits
    put_le32(f, 4);        // channel mask
    put_le16(f, 1);        // sub-format: PCM ...
    f.resize(f.size() + 14, 0);  // ... rest of the GUID
    Bytes e;
    put_chunk(e, "fmt ", f);
    put_chunk(e, "data", pcm16({16384}));
    const auto x = pd::read_wav(span_of(riff(e)), "ext.wav");
    REQUIRE(x.samples.size() == 1);
    CHECK(x.samples[0] == 0.5f);

    // gzip input reads the same.
    const Bytes gz = gzip_mem(b);
    CHECK(pd::read_wav(span_of(gz), "stereo.wav.gz").samples == w.samples);
}

TEST_CASE("corrupt WAV files throw naming the file and the offset of the bad field") {
    // RIFF header 12 bytes, "fmt " chunk at 12 (body 20..35), "data" chunk at 36 (size at 40,
    // samples 44..49): 50 bytes, RIFF size 42.
    const Bytes good = simple_wav({1, 2, 3});
    auto throws = [](const Bytes& b, const std::string& what) {
        CHECK_THROWS_WITH_AS(pd::read_wav(span_of(b), "bad.wav"), doctest::Contains(what.c_str()), Error);
        CHECK_THROWS_WITH_AS(pd::read_wav(span_of(b), "bad.wav"), doctest::Contains("'bad.wav'"), Error);
    };
    Bytes m = good;
    m[0] = 'X';
    throws(m, "at offset 0: not a RIFF file: starts with 'XIFF'");
    m = good;
    m[8] = 'A';
    throws(m, "at offset 8: RIFF form type is 'AAVE'");
    throws(Bytes(good.begin(), good.begin() + 6), "ended at byte 6, expected 2 more bytes of RIFF header (size)");
    // The RIFF size claims 100 bytes more than the file has.
    m = good;
    m[4] = std::uint8_t(m[4] + 100);
    throws(m, "at offset 4: RIFF size 142 says the file has 150 bytes, but it has 50");
    // Truncated in the data: the RIFF size no longer fits the file.
    throws(Bytes(good.begin(), good.end() - 2), "RIFF size 42 says the file has 50 bytes, but it has 48");
    // A data chunk that claims more bytes than the RIFF chunk holds.
    m = good;
    m[40] = 200;
    throws(m, "at offset 40: chunk 'data' declares 200 bytes, but only 6 bytes remain");
    // data before fmt.
    Bytes c;
    put_chunk(c, "data", pcm16({1}));
    put_chunk(c, "fmt ", fmt_body(1, 8000));
    throws(riff(c), "at offset 12: 'data' chunk comes before the 'fmt ' chunk");
    // 8-bit PCM.
    c.clear();
    put_chunk(c, "fmt ", fmt_body(1, 8000, 8));
    put_chunk(c, "data", Bytes{1, 2});
    throws(riff(c), "at offset 34: 8 bits per sample; only 16-bit PCM is supported");
    // Float format.
    c.clear();
    put_chunk(c, "fmt ", fmt_body(1, 8000, 16, 3));
    throws(riff(c), "at offset 20: format tag 3 is not PCM");
    // No data chunk.
    c.clear();
    put_chunk(c, "fmt ", fmt_body(1, 8000));
    throws(riff(c), "at offset 36: no 'data' chunk");
    // Odd data size with 16-bit samples.
    c.clear();
    put_chunk(c, "fmt ", fmt_body(1, 8000));
    put_chunk(c, "data", Bytes{1, 2, 3});
    throws(riff(c), "at offset 40: 'data' chunk has 3 bytes, not a whole number of 2-byte frames");
    // A half chunk header at the end of the RIFF chunk.
    c.clear();
    put_chunk(c, "fmt ", fmt_body(1, 8000));
    c.insert(c.end(), {'d', 'a', 't'});
    throws(riff(c), "at offset 36: chunk header needs 8 bytes but the RIFF chunk ends at offset 39");
    TempDir t;
    CHECK_THROWS_WITH_AS(pd::read_wav(t.path("none.wav")), doctest::Contains("none.wav' at offset 0"), Error);
}

// ---------------------------------------------------------------------------------------------- CSV

TEST_CASE("read_csv reads a bundled air-quality station: 35064 rows, 18 columns, NA as NaN") {
    const auto t = pd::read_csv(data_dir() + "/air-quality/PRSA_Data_Dongsi_20130301-20170228.csv.gz");
    CHECK(t.rows() == 35064);
    REQUIRE(t.columns() == 18);
    CHECK(t.names.front() == "No");
    CHECK(t.names[5] == "PM2.5");
    CHECK(t.names.back() == "station");
    auto pm = t.numeric("PM2.5");
    CHECK(pm[0] == 9);
    CHECK(pm[1] == 4);
    CHECK(pm[2] == 7);
    CHECK(pm.back() == 30);
    std::size_t na = 0;
    double sum = 0;
    for (double v : pm) {
        if (std::isnan(v)) ++na;
        else sum += v;
    }
    CHECK(na == 750);
    CHECK(sum / double(pm.size() - na) == doctest::Approx(86.194296788482831).epsilon(1e-12));
    CHECK(std::isnan(pm[616]));
    CHECK(pm[615] == 187);
    CHECK(t.row_line[616] == 618);  // header is line 1, row 0 is line 2

    auto filled = pm;
    CHECK(pd::forward_fill(filled) == 750);
    CHECK(filled[616] == 187);
    auto imputed = pm;
    CHECK(pd::mean_impute(imputed) == 750);
    CHECK(imputed[616] == doctest::Approx(86.194296788482831).epsilon(1e-12));

    const auto& wd = t.strings("wd");
    CHECK(wd[0] == "NNW");
    CHECK(wd[1] == "NW");
    CHECK(wd.back() == "NNE");
    CHECK(t.strings("station")[0] == "Dongsi");
    CHECK(t.is_numeric("TEMP"));
    CHECK_FALSE(t.is_numeric("wd"));
    const auto temp = t.numeric("TEMP");
    CHECK(temp[0] == -0.5);
    CHECK(temp.back() == 8.6);
    CHECK_THROWS_WITH_AS(t.numeric("wd"), doctest::Contains("line 2 (row at offset"), Error);
    CHECK_THROWS_WITH_AS(t.numeric("wd"), doctest::Contains("column 'wd' holds 'NNW'"), Error);
    CHECK_THROWS_WITH_AS(t.numeric("PM25"), doctest::Contains("has no column 'PM25'"), Error);
}

TEST_CASE("read_csv handles quoted commas, doubled quotes, line breaks in quotes, CRLF, blank lines and NA") {
    const std::string text =
        "name,value,note\r\n"
        "\"a,b\",1.5,\"he said \"\"hi\"\"\"\r\n"
        "\r\n"
        "c,NA,\"two\nlines\"\r\n"
        "d,,\"\"\r\n"
        "e, -2e3 ,+4\r\n";
    const Bytes b(text.begin(), text.end());
    const auto t = pd::read_csv(span_of(b), "q.csv");
    REQUIRE(t.rows() == 4);
    CHECK(t.strings("name") == std::vector<std::string>{"a,b", "c", "d", "e"});
    CHECK(t.strings("note") == std::vector<std::string>{"he said \"hi\"", "two\nlines", "", "+4"});
    const auto v = t.numeric("value");
    CHECK(v[0] == 1.5);
    CHECK(std::isnan(v[1]));
    CHECK(std::isnan(v[2]));
    CHECK(v[3] == -2000.0);
    CHECK(t.row_line == std::vector<std::int64_t>{2, 4, 6, 7});  // line 3 is blank, row 1 spans lines 4-5
    CHECK(t.row_offset[1] == 47);  // header 17 + row "a,b" 28 + blank line 2 bytes before "c,NA"
    // The same text gzip-compressed.
    const Bytes gz = gzip_mem(b);
    CHECK(pd::read_csv(span_of(gz), "q.csv.gz").strings("note") == t.strings("note"));
}

TEST_CASE("forward_fill and mean_impute fill NaNs as documented") {
    const double nan = std::nan("");
    std::vector<double> v = {nan, 2, nan, nan, 5, nan};
    CHECK(pd::forward_fill(v) == 4);
    CHECK(v == std::vector<double>{2, 2, 2, 2, 5, 5});
    std::vector<double> m = {nan, 1, nan, 3, 8};
    CHECK(pd::mean_impute(m) == 2);
    CHECK(m == std::vector<double>{4, 1, 4, 3, 8});
    std::vector<double> all = {nan, nan};
    CHECK(pd::forward_fill(all) == 0);
    CHECK(pd::mean_impute(all) == 0);
    CHECK(std::isnan(all[0]));
}

TEST_CASE("malformed CSV throws naming the file, the line and the byte offset") {
    auto throws = [](const std::string& text, const std::string& what) {
        const Bytes b(text.begin(), text.end());
        CHECK_THROWS_WITH_AS(pd::read_csv(span_of(b), "bad.csv"), doctest::Contains(what.c_str()), Error);
        CHECK_THROWS_WITH_AS(pd::read_csv(span_of(b), "bad.csv"), doctest::Contains("'bad.csv'"), Error);
    };
    throws("a,b,c\n1,2,3\n4,5\n", "line 3 (offset 12): 2 fields, but the header has 3 columns");
    throws("a,b\n1,2,3\n", "line 2 (offset 4): 3 fields, but the header has 2 columns");
    throws("a,b\n1,\"open\n", "line 2: quoted field opened at offset 6 is not closed before the end of the file");
    throws("a,b\n\"x\"y,2\n", "line 2: unexpected character 'y' after the closing quote at offset 7");
    throws("a,b,a\n", "line 1 (header at offset 0): column name 'a' appears twice (columns 1 and 3)");
    throws("", "has no header row (offset 0, 0 bytes)");
    throws("\n\n", "has no header row");
    TempDir t;
    const auto gz = t.write_gz("bad.csv.gz", Bytes{'a', ',', 'b', '\n', '1', '\n'});
    CHECK_THROWS_WITH_AS(pd::read_csv(gz),
                         doctest::Contains("bad.csv.gz' line 2 (offset 4 (decompressed)): 1 fields"), Error);
}

// ---------------------------------------------------------------------------------------------- text

TEST_CASE("read_parallel pairs the bundled Multi30k files line by line, keeping UTF-8 bytes") {
    const std::string dir = data_dir() + "/translation/";
    const auto train = pd::read_parallel(dir + "train.en.gz", dir + "train.de.gz");
    REQUIRE(train.size() == 29000);
    CHECK(train[0].first == "Two young, White males are outside near many bushes.");
    CHECK(train[0].second == "Zwei junge wei\xC3\x9F" "e M\xC3\xA4nner sind im Freien in der N\xC3\xA4he vieler B\xC3\xBCsche.");
    CHECK(train[0].second.size() == 69);  // bytes, not characters (Python: len(s.encode()))
    CHECK(pd::read_parallel(dir + "val.en.gz", dir + "val.de.gz").size() == 1014);
    const auto test = pd::read_parallel(dir + "test_2016_flickr.en.gz", dir + "test_2016_flickr.de.gz");
    REQUIRE(test.size() == 1000);
    CHECK(test[0].first == "A man in an orange hat starring at something.");
}

TEST_CASE("read_lines strips CR LF, keeps empty lines and needs no final newline") {
    const std::string text = "one\r\n\ntwo\rx\nlast";
    const Bytes b(text.begin(), text.end());
    CHECK(pd::read_lines(span_of(b), "t") == std::vector<std::string>{"one", "", "two\rx", "last"});
    const std::string nl = "a\nb\n";
    CHECK(pd::read_lines(span_of(Bytes(nl.begin(), nl.end())), "t") == std::vector<std::string>{"a", "b"});
    CHECK(pd::read_lines(span_of(Bytes{}), "t").empty());
}

TEST_CASE("read_parallel with different line counts names both files and both counts") {
    TempDir t;
    const auto en = t.write("x.en", std::string("a\nb\nc\n"));
    const auto de = t.write_gz("x.de.gz", Bytes{'A', '\n', 'B', '\n'});
    CHECK_THROWS_WITH_AS(pd::read_parallel(en, de),
                         doctest::Contains(("'" + en + "' has 3 lines but '" + de + "' has 2").c_str()), Error);
    CHECK_THROWS_WITH_AS(pd::read_parallel(en, de),
                         doctest::Contains("x.de.gz' ends after line 2 (about offset 4 of its text)"), Error);
    Bytes bad = file_bytes(de);
    bad[12] ^= 0xFF;  // inside the deflate data
    const auto b = t.write("bad.de.gz", bad);
    CHECK_THROWS_WITH_AS(pd::read_lines(b), doctest::Contains("bad.de.gz"), Error);
    CHECK_THROWS_WITH_AS(pd::read_lines(t.path("missing.txt")), doctest::Contains("cannot open"), Error);
}
