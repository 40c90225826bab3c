// Tests of polymath/data/bleu.hpp against an independent Python reference.
//
// Every expected value below is the output of
//     python3 tests/data/fixtures/bleu_reference.py
// (stdlib only: sacreBLEU 2.x's 13a tokenizer and BLEU written out with Python's
// re and str.split, sharing no code with the C++), pasted verbatim.
#include <doctest/doctest.h>
#include <zlib.h>

#include <array>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <polymath/data/bleu.hpp>

using polymath::Error;
using polymath::data::BleuScore;
using polymath::data::corpus_bleu;
using polymath::data::corpus_bleu_multi;
using polymath::data::tokenize_13a;

namespace {

std::string source_dir() {
    if (const char* e = std::getenv("POLYMATH_SOURCE_DIR")) return e;
#ifdef POLYMATH_SOURCE_DIR
    return POLYMATH_SOURCE_DIR;
#else
    return ".";
#endif
}

// Lines of a Multi30k file (gzip), as Python's f.read().split('\n')[:-1].
std::vector<std::string> read_gz(const std::string& name) {
    const std::string path = source_dir() + "/data/translation/" + name;
    gzFile f = gzopen(path.c_str(), "rb");
    REQUIRE_MESSAGE(f != nullptr, "cannot open ", path);
    std::string all;
    char buf[1 << 16];
    int n;
    while ((n = gzread(f, buf, sizeof buf)) > 0) all.append(buf, std::size_t(n));
    gzclose(f);
    std::vector<std::string> lines;
    std::istringstream is(all);
    for (std::string l; std::getline(is, l);) lines.push_back(l);
    return lines;
}

std::string joined(const std::string& s) {
    std::string out;
    for (const auto& t : tokenize_13a(s)) out += (out.empty() ? "" : " ") + t;
    return out;
}

struct Expected {
    double score;
    // std::array, not std::vector: this GCC miscompiled a braced std::vector<double>
    // member here (it read the previous call's {100, 100, 100, 100}).
    std::array<std::int64_t, 4> counts, totals;
    std::array<double, 4> precisions;
    double bp;
    std::int64_t sys_len, ref_len;
};

void check(const BleuScore& got, const Expected& e) {
    CHECK(got.score == doctest::Approx(e.score).epsilon(1e-12));
    for (int n = 0; n < 4; ++n) {
        INFO("n-gram order ", n + 1);
        CHECK(got.counts[std::size_t(n)] == e.counts[std::size_t(n)]);
        CHECK(got.totals[std::size_t(n)] == e.totals[std::size_t(n)]);
        CHECK(got.precisions[std::size_t(n)] == doctest::Approx(e.precisions[std::size_t(n)]).epsilon(1e-12));
    }
    CHECK(got.bp == doctest::Approx(e.bp).epsilon(1e-12));
    CHECK(got.sys_len == e.sys_len);
    CHECK(got.ref_len == e.ref_len);
}

}  // namespace

TEST_CASE("tokenize_13a matches the reference tokenization") {
    CHECK(joined("Hello, world!") == "Hello , world !");
    CHECK(joined("It costs $3.50, or 4,000 yen.") == "It costs $ 3.50 , or 4,000 yen .");
    CHECK(joined("1990-2000 well-known (approx.) \"quoted\" <tag>") ==
          "1990 - 2000 well-known ( approx . ) \" quoted \" < tag >");
    CHECK(joined("a&amp;b &lt;x&gt; &quot;q&quot; &amp;lt;") == "a & b < x > \" q \" <");
    CHECK(joined("end.. x.,y 3.5.6 a.b") == "end . . x . , y 3.5.6 a . b");
    CHECK(joined("don't stop-\nhere<skipped>now\nthen") == "don't stopherenow then");
    CHECK(joined("tail-\n") == "tail-");  // rstrip runs before "-\n" is removed
    CHECK(joined("caf\u00e9. \u00fcber,\u00e9 a\u00a0b\u2003c   ") == "café . über , é a b c");  // NBSP, EM SPACE split
    CHECK(tokenize_13a("").empty());
}

TEST_CASE("corpus BLEU: perfect match is 100") {
    // perfect score=100.00000000000004 counts=[14, 12, 10, 8] totals=[14, 12, 10, 8]
    //   precisions=[100.0, 100.0, 100.0, 100.0] bp=1.0 sys_len=14 ref_len=14
    const std::vector<std::string> s = {"The cat sat on the mat.", "A dog runs in the park!"};
    const auto r = corpus_bleu(s, s);
    check(r, {100.00000000000004, {14, 12, 10, 8}, {14, 12, 10, 8}, {100, 100, 100, 100}, 1.0, 14, 14});
    CHECK(r.ratio == 1.0);
    CHECK(r.str() == "BLEU = 100.00 100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.000 hyp_len = 14 ref_len = 14)");
}

TEST_CASE("corpus BLEU: no 4-gram match uses exp smoothing") {
    // no_4gram_match score=37.99178428257963 counts=[5, 3, 1, 0] totals=[6, 5, 4, 3]
    //   precisions=[83.33333333333333, 60.0, 25.0, 16.666666666666668] bp=1.0 sys_len=6 ref_len=6
    check(corpus_bleu({"the cat sat on the mat"}, {"the cat is on the mat"}),
          {37.99178428257963, {5, 3, 1, 0}, {6, 5, 4, 3}, {83.33333333333333, 60.0, 25.0, 16.666666666666668},
           1.0, 6, 6});
}

TEST_CASE("corpus BLEU: brevity penalty") {
    // brevity_nonzero score=67.03200460356396 counts=[5, 4, 3, 2] totals=[5, 4, 3, 2]
    //   precisions=[100.0, 100.0, 100.0, 100.0] bp=0.6703200460356393 sys_len=5 ref_len=7
    check(corpus_bleu({"the cat sat on the"}, {"the cat sat on the mat today"}),
          {67.03200460356396, {5, 4, 3, 2}, {5, 4, 3, 2}, {100, 100, 100, 100}, 0.6703200460356393, 5, 7});
    // brevity score=0.0 counts=[2, 1, 0, 0] totals=[2, 1, 0, 0] precisions=[100.0, 100.0, 0.0, 0.0]
    //   bp=0.1353352832366127 sys_len=2 ref_len=6   (no 3-grams at all: the score is 0)
    check(corpus_bleu({"the cat"}, {"the cat sat on the mat"}),
          {0.0, {2, 1, 0, 0}, {2, 1, 0, 0}, {100, 100, 0, 0}, 0.1353352832366127, 2, 6});
}

TEST_CASE("corpus BLEU: punctuation and entities go through the 13a tokenizer") {
    // punctuation score=53.73169519197062 counts=[15, 10, 7, 5] totals=[19, 17, 15, 13]
    //   precisions=[78.94736842105263, 58.8235294117647, 46.666666666666664, 38.46153846153846]
    //   bp=1.0 sys_len=19 ref_len=18
    check(corpus_bleu({"Hello, world! It costs $3.50 (approx.).", "well-known \"facts\" &amp; figures"},
                      {"Hello world! It costs $3.50, approx.", "well - known \"facts\" & figures"}),
          {53.73169519197062, {15, 10, 7, 5}, {19, 17, 15, 13},
           {78.94736842105263, 58.8235294117647, 46.666666666666664, 38.46153846153846}, 1.0, 19, 18});
}

TEST_CASE("corpus BLEU: several Multi30k-like sentences") {
    // corpus score=61.112874072683596 counts=[41, 31, 25, 21] totals=[52, 47, 42, 37]
    //   precisions=[78.84615384615384, 65.95744680851064, 59.523809523809526, 56.75675675675676]
    //   bp=0.9439403459411809 sys_len=52 ref_len=55
    const std::vector<std::string> hyps = {
        "Two young guys with shaggy hair look at their hands.",
        "Several men in hard hats are operating a giant pulley system.",
        "A little girl climbing into a wooden playhouse.",
        "A man in a blue shirt stands on a ladder cleaning windows.",
        "Two men cooking at a stove."};
    const std::vector<std::string> refs = {
        "Two young, White males are outside near many bushes.",
        "Several men in hard hats are operating a giant pulley system.",
        "A little girl climbing into a wooden playhouse.",
        "A man in a blue shirt is standing on a ladder cleaning windows.",
        "Two men are at the stove preparing food."};
    const auto r = corpus_bleu(hyps, refs);
    check(r, {61.112874072683596, {41, 31, 25, 21}, {52, 47, 42, 37},
              {78.84615384615384, 65.95744680851064, 59.523809523809526, 56.75675675675676}, 0.9439403459411809,
              52, 55});
    CHECK(r.str() == "BLEU = 61.11 78.8/66.0/59.5/56.8 (BP = 0.944 ratio = 0.945 hyp_len = 52 ref_len = 55)");
}

TEST_CASE("corpus BLEU: empty hypotheses, no matches, case sensitivity, short sentences") {
    // empty_hypothesis score=60.653065971263366 counts=[6, 5, 4, 3] totals=[6, 5, 4, 3]
    //   precisions=[100.0, 100.0, 100.0, 100.0] bp=0.6065306597126334 sys_len=6 ref_len=9
    check(corpus_bleu({"", "the cat sat on the mat"}, {"a b c", "the cat sat on the mat"}),
          {60.653065971263366, {6, 5, 4, 3}, {6, 5, 4, 3}, {100, 100, 100, 100}, 0.6065306597126334, 6, 9});
    // all_empty score=0.0 counts=[0, 0, 0, 0] totals=[0, 0, 0, 0] ... bp=0.0 sys_len=0 ref_len=3
    check(corpus_bleu({"", ""}, {"a b", "c"}), {0.0, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}, 0.0, 0, 3});
    // no_match score=0.0 counts=[0, 0, 0, 0] totals=[3, 2, 1, 0] ... bp=1.0 sys_len=3 ref_len=3
    check(corpus_bleu({"x y z"}, {"a b c"}), {0.0, {0, 0, 0, 0}, {3, 2, 1, 0}, {0, 0, 0, 0}, 1.0, 3, 3});
    // case_sensitive score=0.0 counts=[0, 0, 0, 0] totals=[6, 5, 4, 3] ... bp=1.0 sys_len=6 ref_len=6
    check(corpus_bleu({"The Cat Sat On The Mat"}, {"the cat sat on the mat"}),
          {0.0, {0, 0, 0, 0}, {6, 5, 4, 3}, {0, 0, 0, 0}, 1.0, 6, 6});
    // short_sentences score=0.0 counts=[3, 1, 0, 0] totals=[3, 1, 0, 0] precisions=[100.0, 100.0, 0.0, 0.0]
    //   bp=1.0 sys_len=3 ref_len=3
    check(corpus_bleu({"a b", "c"}, {"a b", "c"}), {0.0, {3, 1, 0, 0}, {3, 1, 0, 0}, {100, 100, 0, 0}, 1.0, 3, 3});
}

TEST_CASE("corpus BLEU: multiple references clip by the max count and pick the closest length") {
    // multi_ref score=50.000000000000014 counts=[10, 8, 3, 0] totals=[10, 8, 6, 4]
    //   precisions=[100.0, 100.0, 50.0, 12.5] bp=1.0 sys_len=10 ref_len=10
    const std::vector<std::vector<std::string>> refs = {{"the cat sat on the mat", "a dog is there"},
                                                        {"a cat is on a mat", "there is a big dog here"}};
    check(corpus_bleu_multi({"the cat is on the mat", "there is a dog"}, refs),
          {50.000000000000014, {10, 8, 3, 0}, {10, 8, 6, 4}, {100, 100, 50, 12.5}, 1.0, 10, 10});
}

TEST_CASE("corpus BLEU rejects mismatched or empty inputs") {
    CHECK_THROWS_WITH_AS(corpus_bleu({"a", "b"}, {"a"}), doctest::Contains("has 1 segments, but there are 2"), Error);
    CHECK_THROWS_AS(corpus_bleu({}, {}), Error);
    CHECK_THROWS_WITH_AS(corpus_bleu({"a"}, {""}), doctest::Contains("segment 0 has only empty references"), Error);
    // An empty reference next to a non-empty one is dropped, as in sacreBLEU.
    CHECK(corpus_bleu_multi({"a b c d"}, {{""}, {"a b c d"}}).score ==
          doctest::Approx(100.0));
}

TEST_CASE("corpus BLEU on Multi30k text matches the reference") {
    // multi30k_de score=0.26813180156950056 counts=[1769, 86, 8, 0] totals=[10755, 9755, 8755, 7755]
    //   precisions=[16.448163644816365, 0.8815991799077396, 0.09137635636778983, 0.006447453255963894]
    //   bp=0.8819534584529244 sys_len=10755 ref_len=12106
    check(corpus_bleu(read_gz("test_2017_flickr.de.gz"), read_gz("test_2016_flickr.de.gz")),
          {0.26813180156950056, {1769, 86, 8, 0}, {10755, 9755, 8755, 7755},
           {16.448163644816365, 0.8815991799077396, 0.09137635636778983, 0.006447453255963894}, 0.8819534584529244,
           10755, 12106});
    // multi30k_en score=0.7401750850242446 counts=[2281, 132, 23, 7] totals=[11374, 10374, 9374, 8374]
    //   precisions=[20.054510286618605, 1.2724117987275883, 0.24535950501386813, 0.08359207069500836]
    //   bp=0.8702269573148631 sys_len=11374 ref_len=12955
    check(corpus_bleu(read_gz("test_2017_flickr.en.gz"), read_gz("test_2016_flickr.en.gz")),
          {0.7401750850242446, {2281, 132, 23, 7}, {11374, 10374, 9374, 8374},
           {20.054510286618605, 1.2724117987275883, 0.24535950501386813, 0.08359207069500836}, 0.8702269573148631,
           11374, 12955});
    // multi30k_val_de_cut score=91.95002626530984 counts=[11832, 10818, 9804, 8790]
    //   totals=[11832, 10818, 9804, 8790] precisions=[100.0, 100.0, 100.0, 100.0]
    //   bp=0.919500262653098 sys_len=11832 ref_len=12825
    const auto refs = read_gz("val.de.gz");
    std::vector<std::string> hyps = refs;
    for (std::size_t i = 1; i < hyps.size(); i += 2)
        if (const auto sp = hyps[i].rfind(' '); sp != std::string::npos) hyps[i].resize(sp);
    check(corpus_bleu(hyps, refs), {91.95002626530984, {11832, 10818, 9804, 8790}, {11832, 10818, 9804, 8790},
                                    {100, 100, 100, 100}, 0.919500262653098, 11832, 12825});
}
