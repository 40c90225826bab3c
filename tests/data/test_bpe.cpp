// Tests of polymath/data/bpe.hpp: a hand-worked merge sequence on a small
// fixture, the round trip on every Multi30k validation line (en and de) with
// an 8k vocabulary trained on the Multi30k training text, save/load, corrupt
// files, special tokens and byte fallback.
#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <polymath/data/bpe.hpp>

namespace fs = std::filesystem;
using polymath::Error;
using polymath::data::BpeTokenizer;
using polymath::data::BpeTrainOptions;
using polymath::data::normalize_whitespace;

namespace {

std::string source_dir() {
    if (const char* e = std::getenv("POLYMATH_SOURCE_DIR")) return e;
#ifdef POLYMATH_SOURCE_DIR
    return POLYMATH_SOURCE_DIR;
#else
    return ".";
#endif
}

// Lines of a text file, plain or gzip (zlib's gzread reads both).
std::vector<std::string> read_lines(const std::string& path) {
    gzFile f = gzopen(path.c_str(), "rb");
    REQUIRE_MESSAGE(f != nullptr, "cannot open ", path);
    std::string all;
    char buf[1 << 16];
    int n;
    while ((n = gzread(f, buf, sizeof buf)) > 0) all.append(buf, std::size_t(n));
    REQUIRE(n == 0);
    gzclose(f);
    std::vector<std::string> lines;
    std::istringstream is(all);
    for (std::string l; std::getline(is, l);) lines.push_back(l);
    return lines;
}

std::string translation(const std::string& name) { return source_dir() + "/data/translation/" + name; }

// The Multi30k 8k joint vocabulary, trained once for every test case below.
struct Multi30k {
    std::vector<std::string> train_lines;  // en then de
    BpeTokenizer tok;
    double train_seconds = 0;
    static const Multi30k& get() {
        static const Multi30k m = [] {
            Multi30k r;
            r.train_lines = read_lines(translation("train.en.gz"));
            const auto de = read_lines(translation("train.de.gz"));
            r.train_lines.insert(r.train_lines.end(), de.begin(), de.end());
            const auto t0 = std::chrono::steady_clock::now();
            r.tok = BpeTokenizer::train(r.train_lines, 8000);
            r.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            return r;
        }();
        return m;
    }
};

struct TempDir {
    fs::path dir;
    TempDir() {
        static int counter = 0;
        dir = fs::temp_directory_path() /
              ("polymath_test_bpe_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::remove_all(dir);
        fs::create_directories(dir);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string path(const std::string& name) const { return (dir / name).string(); }
};

std::vector<std::string> pieces(const BpeTokenizer& tok, const std::vector<std::int32_t>& ids) {
    std::vector<std::string> out;
    for (auto id : ids) out.push_back(tok.token(id));
    return out;
}

BpeTokenizer small_tokenizer(int vocab_size = 100) {
    BpeTrainOptions opt;
    opt.byte_fallback = false;
    return BpeTokenizer::train(read_lines(source_dir() + "/tests/data/fixtures/bpe_small.txt"), vocab_size, opt);
}

std::string merge_text(const BpeTokenizer& tok, std::size_t m) {
    return tok.token(tok.merges()[m].first) + "+" + tok.token(tok.merges()[m].second);
}

}  // namespace

TEST_CASE("pre-tokenizer splits on whitespace and ASCII punctuation and marks word starts") {
    std::vector<std::string> got;
    polymath::data::bpe_pretokenize("A dog's  ball.\tHi ,x", [&](std::string_view w, bool sp) {
        got.push_back((sp ? "_" : "") + std::string(w));
    });
    CHECK(got == std::vector<std::string>{"_A", "_dog", "'", "s", "_ball", ".", "_Hi", "_,", "x"});
    CHECK(normalize_whitespace("  a \t b\n\r ") == "a b");
    CHECK(normalize_whitespace("a\xE2\x96\x81" "b") == "a b");  // U+2581 counts as whitespace
}

TEST_CASE("training on the small fixture performs the hand-worked merge sequence") {
    // Words (with the marker "▁"): ▁low x5, ▁lower x2, ▁newest x6, ▁widest x3.
    // Initial pair counts: es 9, st 9, ▁l 7, lo 7, ow 7, we 8, ▁n/ne/ew 6, ...
    //  1. e+s (9; ties with s+t, "e" < "s")      2. es+t (9)
    //  3. l+o (7; ties ▁l/ow, "l" < "o" < "▁")    4. lo+w (7)       5. ▁+low (7)
    //  6. e+w (6; ties ▁n, ne, w+est: "e" first)  7. ew+est         8. n+ewest
    //  9. ▁+newest  10. d+est (3)  11. i+dest  12. w+idest  13. ▁+widest
    // 14. e+r (2; ties ▁low+e, "e" < "▁low")     15. ▁low+er — then every word is one symbol.
    const BpeTokenizer tok = small_tokenizer();
    const std::vector<std::string> expected = {"e+s",      "es+t",      "l+o",     "lo+w",    "▁+low",
                                               "e+w",      "ew+est",    "n+ewest", "▁+newest", "d+est",
                                               "i+dest",   "w+idest",   "▁+widest", "e+r",     "▁low+er"};
    REQUIRE(tok.num_merges() == int(expected.size()));
    for (std::size_t m = 0; m < expected.size(); ++m) CHECK(merge_text(tok, m) == expected[m]);
    // 3 specials + 11 characters (d e i l n o r s t w ▁, byte order) + 15 merges.
    CHECK(tok.vocab_size() == 29);
    CHECK(tok.token(3) == "d");
    CHECK(tok.token(13) == "▁");
    CHECK(tok.token(14) == "es");
    CHECK(tok.token(28) == "▁lower");
    // Encoding applies the merges in order: "lowest" = ▁low + est.
    CHECK(pieces(tok, tok.encode("lowest")) == std::vector<std::string>{"▁low", "est"});
    CHECK(pieces(tok, tok.encode("newest lower")) == std::vector<std::string>{"▁newest", "▁lower"});
}

TEST_CASE("vocab_size caps the merges and too small a vocab_size throws") {
    const BpeTokenizer tok = small_tokenizer(19);  // 14 base tokens + the first 5 merges
    CHECK(tok.vocab_size() == 19);
    CHECK(tok.num_merges() == 5);
    CHECK(merge_text(tok, 4) == "▁+low");
    CHECK_THROWS_AS(small_tokenizer(13), Error);
    BpeTrainOptions opt;
    opt.min_pair_count = 7;  // stops before e+w (count 6)
    opt.byte_fallback = false;
    const auto t7 = BpeTokenizer::train(read_lines(source_dir() + "/tests/data/fixtures/bpe_small.txt"), 100, opt);
    CHECK(t7.num_merges() == 5);
}

TEST_CASE("unseen characters: UNK without byte fallback, exact bytes with it") {
    const BpeTokenizer tok = small_tokenizer();
    const auto ids = tok.encode("lox");
    CHECK(pieces(tok, ids) == std::vector<std::string>{"▁", "lo", "<unk>"});
    CHECK(tok.decode(ids) == "lo\xE2\x81\x87");  // UNK decodes to U+2047

    BpeTokenizer bytes = BpeTokenizer::train({"low low lower"}, 400);
    REQUIRE(bytes.byte_fallback());
    const std::string s = "lo\xC3\xA9w \xFF\xFE z\xF0\x9F\x98\x80";  // é, two invalid bytes, an emoji
    const auto bid = bytes.encode(s);
    CHECK(bytes.decode(bid) == s);
    CHECK(pieces(bytes, bytes.encode("\xC3\xA9")) == std::vector<std::string>{"▁", "<0xC3>", "<0xA9>"});
}

TEST_CASE("special tokens: fixed base ids, training-time extras, add_special appends and is idempotent") {
    BpeTrainOptions opt;
    opt.specials = {"<to_en>"};
    BpeTokenizer tok = BpeTokenizer::train({"a b c ab ab"}, 300, opt);
    CHECK(tok.pad_id() == 0);
    CHECK(tok.eos_id() == 1);
    CHECK(tok.unk_id() == 2);
    CHECK(tok.token(0) == "<pad>");
    CHECK(tok.special_id("<to_en>") == 3);
    const auto before = tok.vocab_size();
    const auto fp = tok.fingerprint();
    const auto to_de = tok.add_special("<to_de>");
    CHECK(to_de == before);
    CHECK(tok.vocab_size() == before + 1);
    CHECK(tok.add_special("<to_de>") == to_de);
    CHECK(tok.fingerprint() != fp);
    CHECK(tok.is_special(to_de));
    // Specials decode to nothing and are never read from text.
    CHECK(tok.decode(std::vector<std::int32_t>{to_de, tok.piece_id("▁ab"), tok.eos_id(), tok.pad_id()}) == "ab");
    for (auto id : tok.encode("<to_de>")) CHECK_FALSE(tok.is_special(id));
    CHECK_THROWS_AS(tok.add_special("has space"), Error);
    CHECK_THROWS_AS(tok.add_special(""), Error);
    CHECK_THROWS_AS(tok.special_id("<nope>"), Error);
    CHECK_THROWS_AS(tok.decode(std::vector<std::int32_t>{tok.vocab_size()}), Error);
    CHECK_THROWS_AS(tok.decode(std::vector<std::int32_t>{-1}), Error);
}

TEST_CASE("training is deterministic and independent of line order") {
    const auto lines = read_lines(source_dir() + "/tests/data/fixtures/bpe_small.txt");
    std::vector<std::string> reversed(lines.rbegin(), lines.rend());
    CHECK(BpeTokenizer::train(lines, 300).to_string() == BpeTokenizer::train(reversed, 300).to_string());
}

TEST_CASE("Multi30k: 8k joint vocabulary trains in seconds and round-trips every validation line") {
    const auto& m = Multi30k::get();
    MESSAGE("trained 8k BPE on ", m.train_lines.size(), " Multi30k lines in ", m.train_seconds, " s");
    CHECK(m.tok.vocab_size() == 8000);
    CHECK(m.train_seconds < 10.0);
    for (const char* f : {"val.en.gz", "val.de.gz"}) {
        const auto val = read_lines(translation(f));
        REQUIRE(val.size() == 1014);
        std::size_t bad = 0, tokens = 0, words = 0;
        for (const auto& s : val) {
            const auto ids = m.tok.encode(s);
            tokens += ids.size();
            words += std::size_t(std::count(s.begin(), s.end(), ' ') + 1);
            if (m.tok.decode(ids) != normalize_whitespace(s)) {
                if (bad++ < 3) MESSAGE("round trip failed: ", s);
            }
        }
        CHECK(bad == 0);
        // Subwords: well under 2 tokens per whitespace word on in-domain text.
        CHECK(double(tokens) / double(words) < 1.6);
    }
    // Encoding reuses training words' segmentation: a frequent word is one token.
    CHECK(m.tok.encode("Ein Mann").size() == 2);
}

TEST_CASE("save/load round trip gives the same ids and fingerprint; the file is written atomically") {
    const auto& m = Multi30k::get();
    BpeTokenizer tok = m.tok;
    tok.add_special("<to_de>");
    TempDir tmp;
    const std::string p = tmp.path("vocab.bpe");
    tok.save(p);
    for (const auto& e : fs::directory_iterator(tmp.dir)) CHECK(e.path().filename() == "vocab.bpe");  // no temp left
    const BpeTokenizer back = BpeTokenizer::load(p);
    CHECK(back.vocab_size() == tok.vocab_size());
    CHECK(back.fingerprint() == tok.fingerprint());
    CHECK(back.special_id("<to_de>") == tok.special_id("<to_de>"));
    const auto val = read_lines(translation("val.de.gz"));
    for (std::size_t i = 0; i < val.size(); i += 7) CHECK(back.encode(val[i]) == tok.encode(val[i]));
    CHECK(back.to_string() == tok.to_string());
    // An unwritable destination is an Error naming it, and the old file survives a failed save.
    CHECK_THROWS_WITH_AS(tok.save(tmp.path("no/such/dir/vocab.bpe")), doctest::Contains("no/such/dir/vocab.bpe"), Error);
    fs::create_directories(tmp.path("blocker"));
    CHECK_THROWS_AS(BpeTokenizer().save(tmp.path("blocker")), Error);  // rename over a directory fails
    CHECK(BpeTokenizer::load(p).fingerprint() == tok.fingerprint());
    // A different vocabulary has a different fingerprint.
    CHECK(BpeTokenizer::train(m.train_lines, 4000).fingerprint() != m.tok.fingerprint());
}

TEST_CASE("load rejects corrupt files with the source and the line") {
    const BpeTokenizer tok = small_tokenizer();
    const std::string good = tok.to_string();
    CHECK(BpeTokenizer::from_string(good).to_string() == good);

    auto expect_error = [](const std::string& text, const std::string& fragment) {
        try {
            BpeTokenizer::from_string(text, "vocab.bpe");
            FAIL("no error for: ", fragment);
        } catch (const Error& e) {
            const std::string what = e.what();
            CHECK_MESSAGE(what.find("'vocab.bpe' line") != std::string::npos, what);
            CHECK_MESSAGE(what.find(fragment) != std::string::npos, what);
        }
    };
    auto replace = [&](const std::string& from, const std::string& to) {
        std::string s = good;
        const auto at = s.find(from);
        REQUIRE(at != std::string::npos);
        s.replace(at, from.size(), to);
        return s;
    };
    expect_error("", "empty file");
    expect_error(replace("polymath-bpe 1", "polymath-bpe 2"), "unsupported format version");
    expect_error(replace("polymath-bpe 1", "hello"), "not a polymath BPE vocabulary");
    expect_error(good.substr(0, good.size() / 2), "line");                       // truncated mid-file
    expect_error(good.substr(0, good.rfind("end ")), "missing 'end");             // end line lost
    expect_error(replace("piece d\n", "piece e\n"), "duplicate piece");
    expect_error(replace("merge 4 10\n", "merge 4 99\n"), "not an earlier piece");
    expect_error(replace("merge 4 10\n", "merge 4 1\n"), "not an earlier piece");  // a special
    expect_error(replace("merge 4 10\n", "merge 4 x\n"), "bad merge id");
    expect_error(replace("special <pad>", "special <pod>"), "must be <pad>");
    expect_error(replace("vocab_size 29", "vocab_size 30"), "vocab_size says 30");
    expect_error(replace("piece w\n", "blob w\n"), "unknown line kind");
    expect_error(replace("piece w\n", "piece wx\n"), "one UTF-8");
    expect_error(good + "extra\n", "data after");
    expect_error(replace("piece r\n", "piece q\n"), "fingerprint mismatch");  // valid syntax, edited content

    TempDir tmp;
    CHECK_THROWS_WITH_AS(BpeTokenizer::load(tmp.path("missing.bpe")),
                         doctest::Contains("missing.bpe"), Error);
    std::ofstream(tmp.path("bad.bpe")) << replace("vocab_size 29", "vocab_size -1");
    CHECK_THROWS_WITH_AS(BpeTokenizer::load(tmp.path("bad.bpe")), doctest::Contains("bad.bpe' line 2"), Error);
}

TEST_CASE("byte-fallback files with every byte token load, and a gap in the byte tokens is rejected") {
    const BpeTokenizer tok = BpeTokenizer::train({"hello world hello"}, 300);
    const std::string good = tok.to_string();
    const BpeTokenizer back = BpeTokenizer::from_string(good);
    CHECK(back.byte_fallback());
    CHECK(back.encode("h\xE2\x82\xAC") == tok.encode("h\xE2\x82\xAC"));  // € via bytes
    std::string gap = good;
    gap.erase(gap.find("byte 10\n"), 8);
    CHECK_THROWS_WITH_AS(BpeTokenizer::from_string(gap), doctest::Contains("byte tokens must be 00..FF"), Error);
}

TEST_CASE("pieces are capped at kMaxPieceBytes by training and by load") {
    const std::string w(600, 'a');
    const BpeTokenizer tok = BpeTokenizer::train({w, w, w}, 2000);
    std::size_t longest = 0;
    for (std::int32_t id = 0; id < tok.vocab_size(); ++id)
        if (tok.kind(id) == BpeTokenizer::Kind::Piece) longest = std::max(longest, tok.token(id).size());
    CHECK(longest <= BpeTokenizer::kMaxPieceBytes);
    CHECK(longest >= 128);  // the cap, not something else, stopped the merging
    CHECK(tok.decode(tok.encode(w)) == w);
    // A corrupt file whose merges double a piece until it passes the cap.
    std::string text = "polymath-bpe 1\nvocab_size 14\nspecial <pad>\nspecial <eos>\nspecial <unk>\npiece a\npiece ▁\n";
    text += "merge 3 3\n";
    for (int id = 5; id <= 12; ++id) text += "merge " + std::to_string(id) + " " + std::to_string(id) + "\n";
    CHECK_THROWS_WITH_AS(BpeTokenizer::from_string(text, "doubling.bpe"),
                         doctest::Contains("'doubling.bpe' line 16: merge 12 12 makes a piece of 512 bytes"), Error);
}

TEST_CASE("a moved-from tokenizer still encodes; copies share the cache safely") {
    BpeTokenizer a = small_tokenizer();
    const BpeTokenizer copy = a;
    BpeTokenizer b = std::move(a);
    CHECK(b.encode("lowest") == copy.encode("lowest"));
    CHECK_NOTHROW(a.encode("lowest"));  // NOLINT(bugprone-use-after-move): valid but unspecified
}
