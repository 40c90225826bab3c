// safetensors: a hand-built fixture read and written byte for byte, the
// reference writer's own outputs reproduced, every class of corrupt file
// rejected with the file and the offset/tensor named, atomic saves.
//
// python3 with the `safetensors` package is not installed here, so the
// fixture and the reference-output vectors below stand in for a comparison
// script: their bytes are spelled out from the format description and from
// the reference implementation's documented outputs.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "polymath/io/safetensors.hpp"

using namespace polymath;
using io_test::append;
using io_test::append_u64;
using io_test::Bytes;

namespace {
doctest::Contains has(const std::string& s) { return doctest::Contains(s.c_str()); }
}  // namespace
using io_test::make_file;

namespace {

// The fixture: metadata {"framework": "polymath"}, "ids" I64 [3] = 7, 8, 9 and
// "w" F32 [2, 2] = 1, 2, 3, 4. Header: 154 bytes of JSON + 6 spaces = 160.
// The reference writer orders I64 before F32 (descending dtype rank), so
// "ids" owns buffer bytes 0..24 and "w" 24..40; the file is 8 + 160 + 40 bytes.
const char* const kFixtureHeader = R"({"__metadata__":{"framework":"polymath"},)"
                                   R"("ids":{"dtype":"I64","shape":[3],"data_offsets":[0,24]},)"
                                   R"("w":{"dtype":"F32","shape":[2,2],"data_offsets":[24,40]}})"
                                   "      ";

Bytes fixture_bytes() {
    Bytes b;
    append(b, {160, 0, 0, 0, 0, 0, 0, 0});  // N = 160, u64 little-endian
    append(b, kFixtureHeader);
    append(b, {7, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0});  // 7, 8, 9 as i64
    append(b, {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40,                            // 1.0f, 2.0f
               0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x80, 0x40});                          // 3.0f, 4.0f
    return b;
}

io::SafetensorsFile fixture_contents() {
    io::SafetensorsFile f;
    // Deliberately not in file order: the writer orders.
    io::put(f, "w", Tensor<float>{{1, 2}, {3, 4}});
    io::put(f, "ids", Tensor<std::int64_t>{7, 8, 9});
    f.metadata["framework"] = "polymath";
    return f;
}

Bytes floats_le(std::initializer_list<float> v) {
    Bytes b;
    for (float x : v) {
        std::uint32_t u;
        std::memcpy(&u, &x, 4);
        append(b, {u & 0xFF, (u >> 8) & 0xFF, (u >> 16) & 0xFF, u >> 24});
    }
    return b;
}

io::SafetensorsFile parse(const Bytes& b, const std::string& origin = "corrupt.safetensors") {
    return io::parse_safetensors(b, origin);
}

}  // namespace

TEST_CASE("the hand-built fixture parses to the spelled-out contents") {
    const Bytes b = fixture_bytes();
    REQUIRE(b.size() == 8 + 160 + 40);
    const io::SafetensorsFile f = io::parse_safetensors(b, "fixture.safetensors");
    CHECK(f.origin == "fixture.safetensors");
    REQUIRE(f.metadata.size() == 1);
    CHECK(f.metadata.at("framework") == "polymath");
    REQUIRE(f.tensors.size() == 2);
    // File (offset) order.
    CHECK(f.tensors[0].name == "ids");
    CHECK(f.tensors[0].dtype == DType::Int64);
    CHECK(f.tensors[0].shape == Shape{3});
    CHECK(f.tensors[0].bytes.size() == 24);
    CHECK(f.tensors[1].name == "w");
    CHECK(f.tensors[1].dtype == DType::Float32);
    CHECK(f.tensors[1].shape == Shape{2, 2});

    const Tensor<float> w = io::get<float>(f, "w");
    CHECK(w.shape() == Shape{2, 2});
    CHECK(w.to_vector() == std::vector<float>{1, 2, 3, 4});
    CHECK(io::get<std::int64_t>(f, "ids").to_vector() == std::vector<std::int64_t>{7, 8, 9});
}

TEST_CASE("the writer reproduces the fixture byte for byte, in memory and on disk") {
    const io::SafetensorsFile f = fixture_contents();
    CHECK(io::serialize_safetensors(f) == fixture_bytes());

    io_test::ScratchDir dir("write");
    const std::string path = dir.file("fixture.safetensors");
    io::save_safetensors(path, f);
    CHECK(io_test::read_bytes(path) == fixture_bytes());
    CHECK(dir.listing() == std::vector<std::string>{"fixture.safetensors"});  // no temporary left

    // And the file reads back to the same contents.
    const io::SafetensorsFile g = io::load_safetensors(path);
    CHECK(g.origin == path);
    CHECK(io::serialize_safetensors(g) == fixture_bytes());
}

TEST_CASE("the writer matches the reference implementation's outputs") {
    // F32 [1, 2, 3] = 0..5 named "attn.0": a 64-byte header, no padding needed.
    {
        io::SafetensorsFile f;
        io::put(f, "attn.0", Tensor<float>::from_vector({0, 1, 2, 3, 4, 5}, {1, 2, 3}));
        Bytes want;
        append_u64(want, 64);
        append(want, R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})");
        const Bytes data = floats_le({0, 1, 2, 3, 4, 5});
        want.insert(want.end(), data.begin(), data.end());
        CHECK(io::serialize_safetensors(f) == want);
    }
    // "attn0" [1, 1, 2, 3]: 65 bytes of JSON padded with 7 spaces to 72.
    {
        io::SafetensorsFile f;
        io::put(f, "attn0", Tensor<float>::from_vector({0, 1, 2, 3, 4, 5}, {1, 1, 2, 3}));
        Bytes want;
        append_u64(want, 72);
        append(want, R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       )");
        const Bytes data = floats_le({0, 1, 2, 3, 4, 5});
        want.insert(want.end(), data.begin(), data.end());
        CHECK(io::serialize_safetensors(f) == want);
    }
    // No tensors: "{}" and 6 spaces; with metadata {"framework": "pt"}: 35 + 5.
    {
        io::SafetensorsFile f;
        Bytes want;
        append_u64(want, 8);
        append(want, "{}      ");
        CHECK(io::serialize_safetensors(f) == want);
        CHECK(io::parse_safetensors(want).tensors.empty());

        f.metadata["framework"] = "pt";
        Bytes want_meta;
        append_u64(want_meta, 40);
        append(want_meta, R"({"__metadata__":{"framework":"pt"}}     )");
        CHECK(io::serialize_safetensors(f) == want_meta);
        CHECK(io::parse_safetensors(want_meta).metadata.at("framework") == "pt");
    }
}

TEST_CASE("the reader accepts any key order, pretty-printed JSON and any padding") {
    // "w" first at offset 0, "ids" after it; keys inside entries shuffled;
    // newlines and indentation; padding to a non-multiple of 8.
    std::string header =
        "{\n  \"w\": {\"data_offsets\": [0, 16], \"shape\": [2, 2], \"dtype\": \"F32\", \"extra\": 1},\n"
        "  \"ids\": {\"shape\": [3], \"dtype\": \"I64\", \"data_offsets\": [16, 40]},\n"
        "  \"__metadata__\": {\"b\": \"2\", \"a\": \"1\"}\n}\n   ";
    Bytes b;
    append_u64(b, header.size());
    append(b, header);
    const Bytes w = floats_le({1, 2, 3, 4});
    b.insert(b.end(), w.begin(), w.end());
    append(b, {7, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0});
    const io::SafetensorsFile f = parse(b, "pretty.safetensors");
    REQUIRE(f.tensors.size() == 2);
    CHECK(f.tensors[0].name == "w");  // offset order
    CHECK(io::get<float>(f, "w").to_vector() == std::vector<float>{1, 2, 3, 4});
    CHECK(io::get<std::int64_t>(f, "ids").to_vector() == std::vector<std::int64_t>{7, 8, 9});
    CHECK(f.metadata == std::map<std::string, std::string>{{"a", "1"}, {"b", "2"}});
    // Rewritten canonically, it is the fixture minus the metadata difference.
    io::SafetensorsFile g = f;
    g.metadata = {{"framework", "polymath"}};
    CHECK(io::serialize_safetensors(g) == fixture_bytes());
}

TEST_CASE("every supported dtype, scalars and empty tensors round-trip") {
    io::SafetensorsFile f;
    io::put(f, "f64", Tensor<double>{1.5, -2.25, 1e300});
    io::put(f, "f32", Tensor<float>{{0.5f, -0.0f}, {3e38f, 1e-40f}});
    io::put(f, "f16", Tensor<half>{half(1.0f), half(-65504.0f), half::from_bits(0x7C01)});
    io::put(f, "bf16", Tensor<bfloat16>{bfloat16(3.0f), bfloat16::from_bits(0x7F80)});
    io::put(f, "i64", Tensor<std::int64_t>{INT64_MIN, -1, INT64_MAX});
    io::put(f, "i32", Tensor<std::int32_t>{INT32_MIN, 0, INT32_MAX});
    io::put(f, "u8", Tensor<std::uint8_t>{0, 128, 255});
    io::put(f, "bool", Tensor<bool>{true, false, true});
    io::put(f, "scalar", Tensor<float>::full(Shape{}, 42.0f));
    io::put(f, "empty", Tensor<float>::empty({0, 3}));
    // A non-contiguous view is written as its values.
    const Tensor<float> base = Tensor<float>::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
    io::put(f, "transposed", base.transpose(0, 1));
    f.metadata = {{"k", "v"}, {"unicode", "h\xC3\xA9llo \"quoted\" \\ \n"}};

    io_test::ScratchDir dir("dtypes");
    const std::string path = dir.file("all.safetensors");
    io::save_safetensors(path, f);
    const io::SafetensorsFile g = io::load_safetensors(path);
    CHECK(g.metadata == f.metadata);
    CHECK(g.tensors.size() == f.tensors.size());
    for (const auto& e : f.tensors) {
        const io::TensorEntry* h = g.find(e.name);
        REQUIRE(h != nullptr);
        CHECK(h->dtype == e.dtype);
        CHECK(h->shape == e.shape);
        CHECK(h->bytes == e.bytes);
    }
    CHECK(io::get<double>(g, "f64").to_vector() == std::vector<double>{1.5, -2.25, 1e300});
    CHECK(io::get<half>(g, "f16").to_vector()[2].bits == 0x7C01);  // NaN payload kept
    CHECK(io::get<bfloat16>(g, "bf16").to_vector()[1].bits == 0x7F80);
    CHECK(io::get<std::int64_t>(g, "i64").to_vector() == std::vector<std::int64_t>{INT64_MIN, -1, INT64_MAX});
    CHECK(io::get<bool>(g, "bool").to_vector() == std::vector<bool>{true, false, true});
    CHECK(io::get<float>(g, "scalar").item() == 42.0f);
    CHECK(io::get<float>(g, "scalar").dim() == 0);
    CHECK(io::get<float>(g, "empty").shape() == Shape{0, 3});
    CHECK(io::get<float>(g, "transposed").to_vector() == std::vector<float>{1, 4, 2, 5, 3, 6});
    // The writer's order: descending dtype rank, then name.
    std::vector<std::string> order;
    for (const auto& e : g.tensors) order.push_back(e.name);
    CHECK(order == std::vector<std::string>{"i64", "f64", "empty", "f32", "scalar", "transposed", "i32", "bf16", "f16",
                                            "u8", "bool"});
}

TEST_CASE("BOOL bytes other than 0/1 read as true") {
    const Bytes b = make_file(R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})",
                              Bytes{std::byte{0}, std::byte{2}, std::byte{255}});
    CHECK(io::get<bool>(parse(b), "m").to_vector() == std::vector<bool>{false, true, true});
}

TEST_CASE("get names the tensor, the file and both dtypes") {
    const io::SafetensorsFile f = io::parse_safetensors(fixture_bytes(), "fixture.safetensors");
    CHECK_THROWS_WITH_AS(io::get<float>(f, "nope"),
                         doctest::Contains("no tensor named 'nope' in 'fixture.safetensors'"), Error);
    CHECK_THROWS_WITH_AS(io::get<float>(f, "nope"), doctest::Contains("'ids', 'w'"), Error);
    CHECK_THROWS_WITH_AS(io::get<double>(f, "w"), doctest::Contains("tensor 'w' in 'fixture.safetensors'"), Error);
    CHECK_THROWS_WITH_AS(io::get<double>(f, "w"),
                         doctest::Contains("has dtype F32 (float32), not the requested F64 (float64)"), Error);
}

TEST_CASE("put refuses duplicate, reserved and undefined tensors; the writer refuses inconsistent entries") {
    io::SafetensorsFile f = fixture_contents();
    CHECK_THROWS_WITH_AS(io::put(f, "w", Tensor<float>{1}), doctest::Contains("'w' is already"), Error);
    CHECK_THROWS_WITH_AS(io::put(f, "__metadata__", Tensor<float>{1}), doctest::Contains("reserved"), Error);
    CHECK_THROWS_WITH_AS(io::put(f, "u", Tensor<float>{}), doctest::Contains("undefined"), Error);

    io::SafetensorsFile dup = f;
    dup.tensors.push_back(dup.tensors[0]);
    CHECK_THROWS_WITH_AS(io::serialize_safetensors(dup), doctest::Contains("duplicate tensor name 'w'"), Error);
    io::SafetensorsFile short_bytes = f;
    short_bytes.tensors[0].bytes.pop_back();
    CHECK_THROWS_WITH_AS(io::serialize_safetensors(short_bytes), doctest::Contains("needs 16 bytes but holds 15"),
                         Error);
    io::SafetensorsFile bad_utf8 = f;
    bad_utf8.metadata["x"] = "\xFF\xFE";
    CHECK_THROWS_WITH_AS(io::serialize_safetensors(bad_utf8), doctest::Contains("not valid UTF-8"), Error);
}

// ---- corrupt files ---------------------------------------------------------------------

namespace {
// The fixture's valid buffer for headers that describe w [2, 2] F32 at [0, 16].
Bytes w_buffer() { return floats_le({1, 2, 3, 4}); }
}  // namespace

#define CHECK_CORRUPT(bytes, ...)                                                                                \
    do {                                                                                                         \
        const Bytes corrupt_ = (bytes);                                                                          \
        CHECK_THROWS_WITH_AS(parse(corrupt_), doctest::Contains("safetensors: 'corrupt.safetensors': "), Error); \
        for (const char* piece_ : {__VA_ARGS__})                                                                 \
            CHECK_THROWS_WITH_AS(parse(corrupt_), doctest::Contains(piece_), Error);                             \
    } while (0)

TEST_CASE("corrupt: the length field and the header bounds") {
    CHECK_CORRUPT(Bytes{}, "the file is 0 bytes", "byte 0");
    CHECK_CORRUPT((Bytes{std::byte{8}, std::byte{0}, std::byte{0}}), "the file is 3 bytes", "byte 0");

    Bytes too_long;
    append_u64(too_long, 1000);
    append(too_long, "{}");
    CHECK_CORRUPT(too_long, "header length 1000 (u64 at byte 0) runs past the end of the file",
                  "would end at byte 1008 but the file is 10 bytes");

    Bytes over_limit;
    append_u64(over_limit, 100'000'001);
    CHECK_CORRUPT(over_limit, "header length 100000001 (u64 at byte 0) exceeds the 100000000-byte limit");
    Bytes huge;
    append_u64(huge, ~std::uint64_t(0));
    CHECK_CORRUPT(huge, "header length 18446744073709551615 (u64 at byte 0) exceeds");

    Bytes zero;
    append_u64(zero, 0);
    CHECK_CORRUPT(zero, "the header at byte 8 does not start with '{'");
    CHECK_CORRUPT(make_file("[1, 2]"), "the header at byte 8 does not start with '{'");
    CHECK_CORRUPT(make_file(" {}"), "the header at byte 8 does not start with '{'");
}

TEST_CASE("corrupt: invalid JSON names the byte") {
    // `{"w":` then garbage: the error is at file byte 8 + 5 = 13.
    CHECK_CORRUPT(make_file(R"({"w":x})"), "is not valid JSON: error at byte 13");
    CHECK_CORRUPT(make_file(R"({"w":{}} trailing)"), "is not valid JSON");
    CHECK_CORRUPT(make_file(R"({"a":"b" /* comment */})"), "is not valid JSON");
    CHECK_CORRUPT(make_file("{\"a\xFF\":1}"), "is not valid JSON");  // invalid UTF-8
    Bytes nul = make_file("{}");
    nul[9 + 1] = std::byte{0};  // NUL inside the header, where the padding was
    CHECK_CORRUPT(nul, "the header contains a NUL byte at file byte 10");
    std::string deep = "{\"a\":";
    for (int i = 0; i < 100; ++i) deep += "[";
    for (int i = 0; i < 100; ++i) deep += "]";
    deep += "}";
    CHECK_CORRUPT(make_file(deep), "nests deeper than 64 levels");
}

TEST_CASE("corrupt: entries that are not tensor objects") {
    CHECK_CORRUPT(make_file(R"({"w":5})"), "tensor 'w' must be a JSON object, not a number");
    // A huge key is cut short in the message.
    CHECK_CORRUPT(make_file("{\"" + std::string(300, 'n') + "\":5}"), "nnnn...(300 bytes)' must be a JSON object");
    CHECK_CORRUPT(make_file(R"({"__metadata__":[1]})"), "'__metadata__' must be an object of strings");
    CHECK_CORRUPT(make_file(R"({"__metadata__":{"k":1}})"), "'__metadata__' value of key 'k' is a JSON number");
    CHECK_CORRUPT(make_file(R"({"w":{"shape":[2,2],"data_offsets":[0,16]}})", w_buffer()),
                  "tensor 'w' has no \"dtype\"");
    CHECK_CORRUPT(make_file(R"({"w":{"dtype":"F32","data_offsets":[0,16]}})", w_buffer()),
                  "tensor 'w' has no \"shape\"");
    CHECK_CORRUPT(make_file(R"({"w":{"dtype":"F32","shape":[2,2]}})", w_buffer()),
                  "tensor 'w' has no \"data_offsets\"");
    CHECK_CORRUPT(make_file(R"({"w":{"dtype":32,"shape":[2,2],"data_offsets":[0,16]}})", w_buffer()),
                  "tensor 'w': \"dtype\" is a JSON number");
    CHECK_CORRUPT(make_file(R"({"w":{"dtype":"F32","shape":4,"data_offsets":[0,16]}})", w_buffer()),
                  "tensor 'w': \"shape\" is a JSON number");
}

TEST_CASE("corrupt: unknown and unsupported dtypes") {
    CHECK_CORRUPT(make_file(R"({"w":{"dtype":"F33","shape":[2,2],"data_offsets":[0,16]}})", w_buffer()),
                  "tensor 'w': unknown dtype 'F33'");
    CHECK_CORRUPT(make_file(R"({"w":{"dtype":"f32","shape":[2,2],"data_offsets":[0,16]}})", w_buffer()),
                  "unknown dtype 'f32'");
    CHECK_CORRUPT(make_file(R"({"w":{"dtype":"I16","shape":[2,4],"data_offsets":[0,16]}})", w_buffer()),
                  "tensor 'w': dtype 'I16' is valid safetensors but polymath does not support it");
}

TEST_CASE("corrupt: shapes") {
    CHECK_CORRUPT(make_file(R"({"w":{"dtype":"F32","shape":[-2,2],"data_offsets":[0,16]}})", w_buffer()),
                  "tensor 'w': shape dimension 0 is -2, not an integer in [0, 2^63)");
    CHECK_CORRUPT(make_file(R"({"w":{"dtype":"F32","shape":[2,2.5],"data_offsets":[0,16]}})", w_buffer()),
                  "tensor 'w': shape dimension 1 is 2.5");
    CHECK_CORRUPT(make_file(R"({"w":{"dtype":"F32","shape":[2,"2"],"data_offsets":[0,16]}})", w_buffer()),
                  "shape dimension 1 is \"2\"");
    CHECK_CORRUPT(make_file(R"({"w":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,16]}})", w_buffer()),
                  "shape dimension 0 is 9223372036854775808, not an integer in [0, 2^63)");
    CHECK_CORRUPT(
        make_file(R"({"w":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,16]}})", w_buffer()),
        "tensor 'w': shape dimension 0");
    // numel * itemsize overflows 64 bits: 2^32 * 2^32 elements.
    CHECK_CORRUPT(
        make_file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", w_buffer()),
        "tensor 'w': shape [4294967296, 4294967296] x 4-byte elements overflows 64 bits");
    // 2^62 elements fit in u64, times 4 bytes do not.
    CHECK_CORRUPT(make_file(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,16]}})", w_buffer()),
                  "overflows 64 bits");
    // A zero makes numel 0, but the strides of the other dimensions would still overflow.
    CHECK_CORRUPT(
        make_file(R"({"w":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})", w_buffer()),
        "overflows 64 bits");
    CHECK_CORRUPT(make_file(R"({"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,4],"data_offsets":[0,16]}})", w_buffer()),
                  "tensor 'w': shape has 9 dimensions, more than the 8 polymath supports");
}

TEST_CASE("corrupt: offsets") {
    // Header of 64 bytes ("{...}" padded), so the buffer starts at file byte 72.
    auto file = [](const std::string& offsets, const Bytes& buffer) {
        std::string h = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":)" + offsets + "}}";
        if (h.size() < 64) h.resize(64, ' ');
        return make_file(h, buffer);
    };
    CHECK(parse(file("[0,16]", w_buffer())).tensors.size() == 1);  // the valid baseline
    CHECK_CORRUPT(file("[0,17]", w_buffer()),
                  "tensor 'w': data_offsets [0, 17] run past the byte buffer (16 bytes, file bytes 72..88)");
    CHECK_CORRUPT(file("[16,0]", w_buffer()), "tensor 'w': data_offsets [16, 0] end before they begin");
    CHECK_CORRUPT(file("[0,18446744073709551615]", w_buffer()),
                  "tensor 'w': data_offsets [0, 18446744073709551615] run past");
    CHECK_CORRUPT(file("[-1,16]", w_buffer()),
                  "tensor 'w': \"data_offsets\" is [-1,16], not two non-negative integers");
    CHECK_CORRUPT(file("[0,16,32]", w_buffer()), "not two non-negative integers");
    CHECK_CORRUPT(file("[0.0,16]", w_buffer()), "not two non-negative integers");
    CHECK_CORRUPT(file("\"0-16\"", w_buffer()), "not two non-negative integers");

    Bytes bigger = w_buffer();
    append(bigger, {0, 0, 0, 0});
    CHECK_CORRUPT(file("[0,20]", bigger),
                  "tensor 'w': data_offsets [0, 20] (file bytes 72..92) hold 20 bytes, but F32 [2, 2] needs 16");
    CHECK_CORRUPT(file("[0,16]", bigger),
                  "buffer bytes 16..20 (file bytes 88..92) belong to no tensor: the tensors end before the file does");
    CHECK_CORRUPT(file("[4,20]", bigger),
                  "buffer bytes 0..4 (file bytes 72..76) belong to no tensor: a gap before tensor 'w'");
}

TEST_CASE("corrupt: overlapping tensors, gaps between them and duplicate names") {
    const Bytes two = floats_le({1, 2, 3, 4, 5, 6, 7, 8});
    CHECK(parse(make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                          R"("b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})",
                          two))
              .tensors.size() == 2);
    CHECK_CORRUPT(make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                            R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                            two),
                  "tensor 'b' data_offsets [8, 24]", "overlap tensor 'a', which ends at buffer offset 16");
    CHECK_CORRUPT(make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                            R"("b":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                            two),
                  "overlap tensor 'a'");
    CHECK_CORRUPT(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})",
                            two),
                  "buffer bytes 8..16", "a gap before tensor 'b'");
    CHECK_CORRUPT(make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                            R"("a":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})",
                            two),
                  "duplicate tensor name 'a' in the header");
    CHECK_CORRUPT(make_file(R"({"a":{"dtype":"F32","dtype":"F32","shape":[4],"data_offsets":[0,16]}})", w_buffer()),
                  "duplicate key 'dtype'");
    CHECK_CORRUPT(make_file(R"({"__metadata__":{"k":"1","k":"2"}})"), "duplicate key 'k'");
    CHECK_CORRUPT(make_file(R"({"__metadata__":{},"__metadata__":{}})"), "duplicate tensor name '__metadata__'");
    // Zero-size tensors take no room and may sit anywhere in the tiling.
    CHECK(parse(make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                          R"("e":{"dtype":"F32","shape":[0],"data_offsets":[16,16]},)"
                          R"("b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})",
                          two))
              .tensors.size() == 3);
}

TEST_CASE("every truncation of a valid file throws, and byte flips never crash") {
    io::SafetensorsFile f = fixture_contents();
    io::put(f, "e", Tensor<float>::empty({0}));
    const Bytes full = io::serialize_safetensors(f);
    REQUIRE_NOTHROW(parse(full));
    for (std::size_t len = 0; len < full.size(); ++len) {
        const Bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
        CHECK_THROWS_AS(parse(prefix), Error);
    }
    // Every single-byte corruption either still parses (data bytes, harmless
    // header bytes) or throws Error; never anything else.
    int rejected = 0;
    for (std::size_t i = 0; i < full.size(); ++i) {
        for (unsigned x : {0x01u, 0x80u, 0xFFu}) {
            Bytes m = full;
            m[i] ^= static_cast<std::byte>(x);
            try {
                (void)parse(m);
            } catch (const Error&) {
                ++rejected;
            }
        }
    }
    CHECK(rejected > 0);
}

// ---- files on disk ------------------------------------------------------------------------

TEST_CASE("load_safetensors names a missing file") {
    CHECK_THROWS_WITH_AS(io::load_safetensors("/nonexistent/dir/x.safetensors"),
                         doctest::Contains("'/nonexistent/dir/x.safetensors': cannot open"), Error);
    io_test::ScratchDir dir("missing");
    CHECK_THROWS_WITH_AS(io::load_safetensors(dir.path.string()), doctest::Contains("not a regular file"), Error);
    const std::string p = dir.file("short.safetensors");
    io_test::write_bytes(p, Bytes{std::byte{1}, std::byte{2}});
    CHECK_THROWS_WITH_AS(io::load_safetensors(p), has("'" + p + "': the file is 2 bytes"), Error);
}

TEST_CASE("save_safetensors is atomic") {
    io_test::ScratchDir dir("atomic");
    const io::SafetensorsFile f = fixture_contents();

    SUBCASE("into a missing directory: throws, creates nothing") {
        const std::string p = dir.file("no/such/dir/x.safetensors");
        CHECK_THROWS_WITH_AS(io::save_safetensors(p, f), doctest::Contains("cannot create the temporary file"), Error);
        CHECK(dir.listing().empty());
    }
    SUBCASE("invalid contents over an existing file: the old file stays, no temporary is left") {
        const std::string p = dir.file("keep.safetensors");
        io::save_safetensors(p, f);
        io::SafetensorsFile bad = f;
        bad.tensors[1].bytes.resize(3);
        CHECK_THROWS_WITH_AS(io::save_safetensors(p, bad), has("'" + p + "'"), Error);
        CHECK(io_test::read_bytes(p) == fixture_bytes());
        CHECK(dir.listing() == std::vector<std::string>{"keep.safetensors"});
    }
    SUBCASE("a rename that fails after the data was written: the temporary is removed") {
        // The target is a non-empty directory: the write succeeds, rename() refuses.
        const std::filesystem::path target = dir.path / "occupied";
        std::filesystem::create_directories(target / "inner");
        CHECK_THROWS_WITH_AS(io::save_safetensors(target.string(), f), doctest::Contains("cannot rename"), Error);
        CHECK(dir.listing() == std::vector<std::string>{"occupied"});
        CHECK(std::filesystem::is_directory(target / "inner"));
    }
    SUBCASE("a successful save replaces the old file") {
        const std::string p = dir.file("replace.safetensors");
        io_test::write_bytes(p, Bytes(100, std::byte{0x55}));
        io::save_safetensors(p, f);
        CHECK(io_test::read_bytes(p) == fixture_bytes());
        CHECK(dir.listing() == std::vector<std::string>{"replace.safetensors"});
    }
}
