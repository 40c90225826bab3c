// Tests of polymath/data/idx.hpp against the bundled MNIST sample (data/mnist)
// and against malformed files written to a temporary folder.
#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <polymath/data/idx.hpp>

namespace fs = std::filesystem;
using polymath::Error;
using polymath::data::load_mnist;
using polymath::data::read_idx;

namespace {

#ifdef POLYMATH_SOURCE_DIR
const std::string kMnist = std::string(POLYMATH_SOURCE_DIR) + "/data/mnist";
#else
const std::string kMnist = "data/mnist";
#endif

using Bytes = std::vector<unsigned char>;

// A fresh temporary folder per test case, removed at the end.
struct TempDir {
    fs::path dir;
    TempDir() {
        static int counter = 0;
        dir = fs::temp_directory_path() /
              ("polymath_test_idx_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::remove_all(dir);
        fs::create_directories(dir);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string write(const std::string& name, const Bytes& bytes) const {
        const std::string p = (dir / name).string();
        std::ofstream f(p, std::ios::binary);
        f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
        return p;
    }
    std::string write_gz(const std::string& name, const Bytes& bytes) const {
        const std::string p = (dir / name).string();
        gzFile f = gzopen(p.c_str(), "wb");
        REQUIRE(f != nullptr);
        if (!bytes.empty()) REQUIRE(gzwrite(f, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
        REQUIRE(gzclose(f) == Z_OK);
        return p;
    }
};

Bytes read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void put_be32(Bytes& b, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(v >> s));
}

// An unsigned-byte IDX file with the given dims and payload bytes 0, 1, 2, ...
Bytes idx_bytes(const std::vector<std::uint32_t>& dims, std::size_t payload, unsigned char type = 0x08) {
    Bytes b = {0, 0, type, static_cast<unsigned char>(dims.size())};
    for (auto d : dims) put_be32(b, d);
    for (std::size_t i = 0; i < payload; ++i) b.push_back(static_cast<unsigned char>(i));
    return b;
}

}  // namespace

TEST_CASE("read_idx reads the bundled MNIST test set: 10000 images of 28x28 and the known first labels") {
    const auto images = read_idx(kMnist + "/t10k-images-idx3-ubyte.gz");
    CHECK(images.dims == std::vector<std::int64_t>{10000, 28, 28});
    CHECK(images.data.size() == 10000u * 28u * 28u);
    CHECK(images.numel() == 10000 * 28 * 28);

    const auto labels = read_idx(kMnist + "/t10k-labels-idx1-ubyte.gz");
    CHECK(labels.dims == std::vector<std::int64_t>{10000});
    REQUIRE(labels.data.size() == 10000u);
    const std::vector<std::uint8_t> first(labels.data.begin(), labels.data.begin() + 10);
    CHECK(first == std::vector<std::uint8_t>{7, 2, 1, 0, 4, 1, 4, 9, 5, 9});

    // Pixels are bytes 0..255 with both background and full ink present.
    std::uint8_t lo = 255, hi = 0;
    for (auto p : images.data) lo = std::min(lo, p), hi = std::max(hi, p);
    CHECK(lo == 0);
    CHECK(hi == 255);
}

TEST_CASE("load_mnist finds the bundled 20000-image training subset and the full test split") {
    const auto train = load_mnist(kMnist, /*train=*/true);
    CHECK(train.images.dims == std::vector<std::int64_t>{20000, 28, 28});
    CHECK(train.labels.dims == std::vector<std::int64_t>{20000});
    CHECK(train.images.data.size() == 20000u * 784u);

    const auto [images, labels] = load_mnist(kMnist, /*train=*/false);
    CHECK(images.dims[0] == 10000);
    CHECK(labels.dims[0] == 10000);
    CHECK(labels.data[0] == 7);
}

TEST_CASE("max_items limits the first dimension and returns a prefix of the full array") {
    const auto full = read_idx(kMnist + "/t10k-images-idx3-ubyte.gz");
    const auto five = read_idx(kMnist + "/t10k-images-idx3-ubyte.gz", 5);
    CHECK(five.dims == std::vector<std::int64_t>{5, 28, 28});
    REQUIRE(five.data.size() == 5u * 784u);
    CHECK(std::equal(five.data.begin(), five.data.end(), full.data.begin()));

    CHECK(read_idx(kMnist + "/t10k-labels-idx1-ubyte.gz", 0).dims == std::vector<std::int64_t>{0});
    CHECK(read_idx(kMnist + "/t10k-labels-idx1-ubyte.gz", 123456).dims == std::vector<std::int64_t>{10000});

    const auto train = load_mnist(kMnist, true, 100);
    CHECK(train.images.dims == std::vector<std::int64_t>{100, 28, 28});
    CHECK(train.labels.dims == std::vector<std::int64_t>{100});
}

TEST_CASE("an uncompressed IDX file reads the same as its gzip version") {
    TempDir tmp;
    const Bytes raw = idx_bytes({3, 2, 2}, 12);
    const auto a = read_idx(tmp.write("a.idx", raw));
    const auto b = read_idx(tmp.write_gz("a.idx.gz", raw));
    CHECK(a.dims == std::vector<std::int64_t>{3, 2, 2});
    CHECK(a.dims == b.dims);
    CHECK(a.data == b.data);
    CHECK(a.data[11] == 11);
}

TEST_CASE("a missing file throws naming the file") {
    const std::string p = "/nonexistent/dir/missing-images-idx3-ubyte.gz";
    CHECK_THROWS_WITH_AS(read_idx(p), doctest::Contains("missing-images-idx3-ubyte.gz"), Error);
    CHECK_THROWS_WITH_AS(read_idx(p), doctest::Contains("cannot open"), Error);
    CHECK_THROWS_WITH_AS(read_idx(p), doctest::Contains("offset 0"), Error);
}

TEST_CASE("a bad magic number throws with the file name and offset 0") {
    TempDir tmp;
    const auto p = tmp.write("badmagic.idx", Bytes{0x12, 0x34, 0x08, 0x01, 0, 0, 0, 1, 42});
    CHECK_THROWS_WITH_AS(read_idx(p), doctest::Contains("badmagic.idx"), Error);
    CHECK_THROWS_WITH_AS(read_idx(p), doctest::Contains("bad magic number 0x12340801 at offset 0"), Error);
}

TEST_CASE("an unsupported type code throws naming the type and offset 2") {
    TempDir tmp;
    const auto p = tmp.write("float.idx", idx_bytes({2}, 8, 0x0D));
    CHECK_THROWS_WITH_AS(read_idx(p), doctest::Contains("float.idx"), Error);
    CHECK_THROWS_WITH_AS(read_idx(p), doctest::Contains("unsupported type code 0x0D (float32) at offset 2"), Error);
}

TEST_CASE("zero or absurd dimensions throw with the offset of the bad field") {
    TempDir tmp;
    const auto zero = tmp.write("zero.idx", idx_bytes({4, 0}, 0));
    CHECK_THROWS_WITH_AS(read_idx(zero), doctest::Contains("zero.idx"), Error);
    CHECK_THROWS_WITH_AS(read_idx(zero), doctest::Contains("dimension 1 is zero at offset 8"), Error);

    const auto nodims = tmp.write("nodims.idx", Bytes{0, 0, 0x08, 0});
    CHECK_THROWS_WITH_AS(read_idx(nodims), doctest::Contains("number of dimensions is 0 at offset 3"), Error);

    const auto huge = tmp.write("huge.idx", idx_bytes({0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF}, 16));
    CHECK_THROWS_WITH_AS(read_idx(huge), doctest::Contains("huge.idx"), Error);
    CHECK_THROWS_WITH_AS(read_idx(huge), doctest::Contains("absurd dimensions at offset 8"), Error);

    const auto negative = tmp.write("negative.idx", idx_bytes({0x80000000u}, 0));
    CHECK_THROWS_WITH_AS(read_idx(negative), doctest::Contains("not a valid int32 size"), Error);
}

TEST_CASE("a truncated header throws with the expected size, offset and actual length") {
    TempDir tmp;
    const auto two = tmp.write("two.idx", Bytes{0, 0});
    CHECK_THROWS_WITH_AS(read_idx(two), doctest::Contains("two.idx"), Error);
    CHECK_THROWS_WITH_AS(read_idx(two), doctest::Contains("at offset 0, file ended after 2 bytes"), Error);

    Bytes b = idx_bytes({10, 28, 28}, 0);
    b.resize(9);  // magic + 1 dim + one byte of the second
    const auto p = tmp.write("header.idx", b);
    CHECK_THROWS_WITH_AS(read_idx(p), doctest::Contains("header.idx"), Error);
    CHECK_THROWS_WITH_AS(read_idx(p),
                         doctest::Contains("expected 12 bytes of header (dimension sizes) at offset 4, "
                                           "file ended after 9 bytes"),
                         Error);
}

TEST_CASE("truncated data throws: expected N bytes of data at offset X, file ended after Y") {
    TempDir tmp;
    Bytes b = idx_bytes({2, 2, 2}, 8);
    b.resize(b.size() - 5);  // 3 of 8 data bytes left
    const auto raw = tmp.write("short.idx", b);
    CHECK_THROWS_WITH_AS(read_idx(raw), doctest::Contains("short.idx"), Error);
    CHECK_THROWS_WITH_AS(read_idx(raw),
                         doctest::Contains("expected 8 bytes of data at offset 16, file ended after 19 bytes"), Error);
    // max_items = 1 needs only 4 data bytes: still too few.
    CHECK_THROWS_WITH_AS(read_idx(raw, 1),
                         doctest::Contains("expected 4 bytes of data at offset 16, file ended after 19 bytes"), Error);

    const auto gz = tmp.write_gz("short.idx.gz", b);
    CHECK_THROWS_WITH_AS(read_idx(gz), doctest::Contains("short.idx.gz"), Error);
    CHECK_THROWS_WITH_AS(read_idx(gz),
                         doctest::Contains("expected 8 bytes of data at offset 16, file ended after 19 bytes"), Error);
}

TEST_CASE("trailing bytes after the data throw with the offset where they start") {
    TempDir tmp;
    Bytes b = idx_bytes({2}, 2);
    b.push_back(99);
    const auto p = tmp.write("trailing.idx", b);
    CHECK_THROWS_WITH_AS(read_idx(p), doctest::Contains("trailing.idx"), Error);
    CHECK_THROWS_WITH_AS(read_idx(p), doctest::Contains("unexpected trailing data at offset 10"), Error);
    CHECK(read_idx(p, 1).data == std::vector<std::uint8_t>{0});  // a prefix read does not look further
}

TEST_CASE("a corrupt or cut gzip stream throws naming the file and the decompressed offset") {
    TempDir tmp;
    // Valid gzip header followed by a deflate block of reserved type 11.
    const Bytes bad_block = {0x1F, 0x8B, 0x08, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    const auto p = tmp.write("corrupt.idx.gz", bad_block);
    CHECK_THROWS_WITH_AS(read_idx(p), doctest::Contains("corrupt.idx.gz"), Error);
    CHECK_THROWS_WITH_AS(read_idx(p), doctest::Contains("corrupt gzip stream at offset 0"), Error);

    // A flipped CRC-32 in the trailer is caught once the whole array is read.
    const auto good = tmp.write_gz("crc.idx.gz", idx_bytes({4, 4}, 16));
    Bytes crc = read_file(good);
    crc[crc.size() - 8] ^= 0x01;
    const auto bad_crc = tmp.write("crc.idx.gz", crc);
    CHECK_THROWS_WITH_AS(read_idx(bad_crc), doctest::Contains("crc.idx.gz"), Error);
    // zlib decompresses ahead, so the error surfaces at the offset the reader had reached.
    CHECK_THROWS_WITH_AS(read_idx(bad_crc), doctest::Contains("corrupt gzip stream at offset"), Error);
    CHECK_THROWS_WITH_AS(read_idx(bad_crc), doctest::Contains("incorrect data check"), Error);

    // The bundled test labels cut in half: the data is incomplete.
    Bytes labels = read_file(kMnist + "/t10k-labels-idx1-ubyte.gz");
    labels.resize(labels.size() / 2);
    const auto cut = tmp.write("cut-labels.gz", labels);
    CHECK_THROWS_WITH_AS(read_idx(cut), doctest::Contains("cut-labels.gz"), Error);
    CHECK_THROWS_WITH_AS(read_idx(cut), doctest::Contains("expected 10000 bytes of data at offset 8"), Error);
    CHECK_THROWS_WITH_AS(read_idx(cut), doctest::Contains("truncated or corrupt"), Error);

    // Only the 8-byte gzip trailer missing: all data is there, the end is not.
    Bytes no_trailer = read_file(good);
    no_trailer.resize(no_trailer.size() - 8);
    const auto nt = tmp.write("notrailer.idx.gz", no_trailer);
    CHECK_THROWS_WITH_AS(read_idx(nt), doctest::Contains("notrailer.idx.gz"), Error);
    CHECK_THROWS_WITH_AS(read_idx(nt), doctest::Contains("gzip stream truncated at offset 28"), Error);
}

TEST_CASE("load_mnist rejects mismatched image and label counts and reports a missing split") {
    TempDir tmp;
    tmp.write_gz("t10k-images-idx3-ubyte.gz", idx_bytes({2, 28, 28}, 2 * 784));
    tmp.write_gz("t10k-labels-idx1-ubyte.gz", idx_bytes({3}, 3));
    CHECK_THROWS_WITH_AS(load_mnist(tmp.dir.string(), false), doctest::Contains("has 2 images but"), Error);
    CHECK_THROWS_WITH_AS(load_mnist(tmp.dir.string(), false), doctest::Contains("t10k-labels-idx1-ubyte.gz"),
                         Error);
    CHECK_THROWS_WITH_AS(load_mnist(tmp.dir.string(), true), doctest::Contains("no MNIST training files"), Error);
    CHECK_THROWS_WITH_AS(load_mnist(tmp.dir.string(), true), doctest::Contains("train-20k-images-idx3-ubyte.gz"),
                         Error);

    // Original uncompressed names are found too.
    tmp.write("train-images-idx3-ubyte", idx_bytes({1, 28, 28}, 784));
    tmp.write("train-labels-idx1-ubyte", Bytes{0, 0, 8, 1, 0, 0, 0, 1, 3});
    const auto s = load_mnist(tmp.dir.string(), true);
    CHECK(s.images.dims[0] == 1);
    CHECK(s.labels.data == std::vector<std::uint8_t>{3});
}
