// polymath/data/bleu.hpp — corpus BLEU, identical to sacreBLEU's default
// (sacrebleu.corpus_bleu(hyps, [refs]) in sacreBLEU 2.x): tokenizer "13a",
// n-grams up to 4, smooth_method "exp", case-sensitive, brevity penalty,
// score in 0..100.
//
//   auto s = polymath::data::corpus_bleu(hyps, refs);   // refs: one per hypothesis
//   s.score;  s.str();  // "BLEU = 61.11 78.8/66.0/59.5/56.8 (BP = 0.944 ratio = 0.945 hyp_len = 52 ref_len = 55)"
//
// tokenize_13a(line) (mteval-v13a as sacreBLEU implements it), on UTF-8:
//   0. line.rstrip() (Python: trailing Unicode whitespace, see below);
//   1. replace, in this order and each over the whole line: "<skipped>" -> "",
//      "-\n" -> "", "\n" -> " ", "&quot;" -> '"', "&amp;" -> "&", "&lt;" -> "<",
//      "&gt;" -> ">"; then pad the line with one space on each side;
//   2. re.sub(r'([\{-\~\[-\` -\&\(-\+\:-\@\/])', r' \1 ')  every ASCII
//      punctuation character except ' , - . (and the space) gets spaces around it;
//   3. re.sub(r'([^0-9])([\.,])', r'\1 \2 ')   '.' / ',' not after a digit;
//   4. re.sub(r'([\.,])([^0-9])', r' \1 \2')   '.' / ',' not before a digit;
//   5. re.sub(r'([0-9])(-)', r'\1 \2 ')         '-' after a digit;
//   6. split on Python's str.split() whitespace: U+0009..000D, U+001C..001F,
//      U+0020, U+0085, U+00A0, U+1680, U+2000..200A, U+2028, U+2029, U+202F,
//      U+205F, U+3000.
// Rules 3-5 are two-character patterns; Python's re.sub scans left to right
// and resumes after each match (matches never overlap), which is what
// detail::sub_pairs does. Working on bytes instead of code points gives the
// same result: '.', ',', '-' and digits are ASCII, [^0-9] matches any other
// byte, and a UTF-8 continuation byte is never one of them.
//
// Statistics (sacreBLEU's BLEU._compute_segment_statistics and compute_bleu):
// per sentence, the hypothesis n-gram counts are clipped by the maximum count
// over the references; the reference length is the one closest to the
// hypothesis length (the shorter on a tie); corpus totals are summed. BP =
// exp(1 - ref_len / sys_len) when sys_len < ref_len (0 when sys_len = 0).
// If no n-gram matches at all, the score is 0. Otherwise precision n is
// 100 * correct / total; a zero count gets the "exp" smoothing 100 / (2^k *
// total) for the k-th such order; an order with total 0 stops the loop and it
// and the higher orders count as log(0) = -9999999999 (sacreBLEU's my_log), so
// the score underflows to 0. score = BP * exp(mean of the 4 log precisions).
// An empty reference is dropped when a sentence has other references; a
// sentence with none throws, as sacreBLEU does.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../core/error.hpp"

namespace polymath::data {

struct BleuScore {
    double score = 0;                          // 0..100
    std::array<std::int64_t, 4> counts{};      // matching (clipped) n-grams, n = 1..4
    std::array<std::int64_t, 4> totals{};      // hypothesis n-grams
    std::array<double, 4> precisions{};        // percent
    double bp = 0;                             // brevity penalty
    std::int64_t sys_len = 0, ref_len = 0;     // tokens
    double ratio = 0;                          // sys_len / ref_len (0 when ref_len = 0)

    // sacreBLEU's format: "BLEU = 61.11 78.8/66.0/59.5/56.8 (BP = 0.944 ratio = 0.945 hyp_len = 52 ref_len = 55)".
    std::string str() const {
        char buf[256];
        std::snprintf(buf, sizeof buf, "BLEU = %.2f %.1f/%.1f/%.1f/%.1f (BP = %.3f ratio = %.3f hyp_len = %lld ref_len = %lld)",
                      score, precisions[0], precisions[1], precisions[2], precisions[3], bp, ratio,
                      static_cast<long long>(sys_len), static_cast<long long>(ref_len));
        return buf;
    }
};

namespace detail {

// Length of the Python-whitespace character at s[i] (0 when it is none).
inline std::size_t py_space_len(std::string_view s, std::size_t i) {
    const auto b = [&](std::size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
    const unsigned c = b(i);
    if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20)) return 1;
    if (c == 0xC2 && (b(i + 1) == 0x85 || b(i + 1) == 0xA0)) return 2;                  // U+0085, U+00A0
    if (c == 0xE1 && b(i + 1) == 0x9A && b(i + 2) == 0x80) return 3;                     // U+1680
    if (c == 0xE2 && b(i + 1) == 0x80) {
        const unsigned d = b(i + 2);
        if ((d >= 0x80 && d <= 0x8A) || d == 0xA8 || d == 0xA9 || d == 0xAF) return 3;  // U+2000..200A, 2028, 2029, 202F
    }
    if (c == 0xE2 && b(i + 1) == 0x81 && b(i + 2) == 0x9F) return 3;                     // U+205F
    if (c == 0xE3 && b(i + 1) == 0x80 && b(i + 2) == 0x80) return 3;                     // U+3000
    return 0;
}

inline void replace_all(std::string& s, std::string_view from, std::string_view to) {
    std::string out;
    std::size_t pos = 0;
    for (std::size_t at; (at = s.find(from, pos)) != std::string::npos; pos = at + from.size()) {
        out.append(s, pos, at - pos);
        out.append(to);
    }
    if (pos == 0) return;
    out.append(s, pos, std::string::npos);
    s.swap(out);
}

// re.sub for a pattern of two one-character classes: at each position, if
// (a, b) matches, emit repl(a, b) and skip both; otherwise copy a.
template <class Match, class Repl>
std::string sub_pairs(const std::string& s, Match match, Repl repl) {
    std::string out;
    out.reserve(s.size() + s.size() / 4);
    std::size_t i = 0;
    while (i < s.size()) {
        if (i + 1 < s.size() && match(s[i], s[i + 1])) {
            repl(out, s[i], s[i + 1]);
            i += 2;
        } else {
            out += s[i++];
        }
    }
    return out;
}

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace detail

// The 13a tokens of one segment (see the header comment).
inline std::vector<std::string> tokenize_13a(std::string_view segment) {
    // 0. rstrip
    std::size_t end = segment.size();
    for (bool again = true; again && end > 0;) {
        again = false;
        for (std::size_t len = 1; len <= 3 && len <= end; ++len) {
            if (detail::py_space_len(segment.substr(0, end), end - len) == len) {
                end -= len;
                again = true;
                break;
            }
        }
    }
    std::string line(segment.substr(0, end));
    // 1. language-independent replacements
    detail::replace_all(line, "<skipped>", "");
    detail::replace_all(line, "-\n", "");
    detail::replace_all(line, "\n", " ");
    detail::replace_all(line, "&quot;", "\"");
    detail::replace_all(line, "&amp;", "&");
    detail::replace_all(line, "&lt;", "<");
    detail::replace_all(line, "&gt;", ">");
    // 2. punctuation other than ' , - . gets spaces (the leading/trailing pad is
    //    irrelevant once we split)
    std::string s;
    s.reserve(line.size() * 2);
    for (char ch : line) {
        const auto c = static_cast<unsigned char>(ch);
        const bool p = (c >= 0x7B && c <= 0x7E) || (c >= 0x5B && c <= 0x60) || (c >= 0x20 && c <= 0x26) ||
                       (c >= 0x28 && c <= 0x2B) || (c >= 0x3A && c <= 0x40) || c == 0x2F;
        if (p) {
            s += ' ';
            s += ch;
            s += ' ';
        } else {
            s += ch;
        }
    }
    s = " " + s + " ";
    const auto dot = [](char c) { return c == '.' || c == ','; };
    // 3. ([^0-9])([.,]) -> "\1 \2 "
    s = detail::sub_pairs(s, [&](char a, char b) { return !detail::is_digit(a) && dot(b); },
                          [](std::string& o, char a, char b) { o += a; o += ' '; o += b; o += ' '; });
    // 4. ([.,])([^0-9]) -> " \1 \2"
    s = detail::sub_pairs(s, [&](char a, char b) { return dot(a) && !detail::is_digit(b); },
                          [](std::string& o, char a, char b) { o += ' '; o += a; o += ' '; o += b; });
    // 5. ([0-9])(-) -> "\1 \2 "
    s = detail::sub_pairs(s, [](char a, char b) { return detail::is_digit(a) && b == '-'; },
                          [](std::string& o, char a, char b) { o += a; o += ' '; o += b; o += ' '; });
    // 6. split on Python whitespace
    std::vector<std::string> tokens;
    std::size_t i = 0, start = std::string::npos;
    while (i < s.size()) {
        const std::size_t w = detail::py_space_len(s, i);
        if (w > 0) {
            if (start != std::string::npos) tokens.push_back(s.substr(start, i - start));
            start = std::string::npos;
            i += w;
        } else {
            if (start == std::string::npos) start = i;
            ++i;
        }
    }
    if (start != std::string::npos) tokens.push_back(s.substr(start));
    return tokens;
}

namespace detail {
// n-gram (n = 1..4) counts keyed by the tokens joined with '\n' (never inside
// a token), and the token count.
inline std::unordered_map<std::string, std::int64_t> bleu_ngrams(const std::vector<std::string>& toks) {
    std::unordered_map<std::string, std::int64_t> c;
    std::string key;
    for (std::size_t i = 0; i < toks.size(); ++i) {
        key.clear();
        for (std::size_t n = 0; n < 4 && i + n < toks.size(); ++n) {
            if (n) key += '\n';
            key += toks[i + n];
            ++c[std::to_string(n) + key];
        }
    }
    return c;
}
}  // namespace detail

// Corpus BLEU of `hyps` against several reference streams: refs[k][i] is the
// k-th reference of hypothesis i (every stream as long as hyps); sacreBLEU's
// corpus_bleu(hyps, refs). (A separate name: with braced lists an overload
// would be ambiguous, {"a", "b"} also converting to a vector of vectors.)
inline BleuScore corpus_bleu_multi(const std::vector<std::string>& hyps,
                                   const std::vector<std::vector<std::string>>& refs) {
    const char* op = "corpus_bleu";  // the name users see in both entry points
    POLYMATH_CHECK(!hyps.empty(), op, "no hypotheses");
    POLYMATH_CHECK(!refs.empty(), op, "no reference streams");
    for (std::size_t k = 0; k < refs.size(); ++k)
        POLYMATH_CHECK(refs[k].size() == hyps.size(), op, "reference stream ", k, " has ", refs[k].size(),
                       " segments, but there are ", hyps.size(), " hypotheses");
    BleuScore r;
    std::array<std::int64_t, 4> correct{}, total{};
    for (std::size_t i = 0; i < hyps.size(); ++i) {
        std::unordered_map<std::string, std::int64_t> ref_max;
        std::vector<std::int64_t> ref_lens;
        for (const auto& stream : refs) {
            if (stream[i].empty()) continue;
            const auto toks = tokenize_13a(stream[i]);
            ref_lens.push_back(std::int64_t(toks.size()));
            for (const auto& [g, c] : detail::bleu_ngrams(toks)) {
                auto& m = ref_max[g];
                m = std::max(m, c);
            }
        }
        POLYMATH_CHECK(!ref_lens.empty(), op, "segment ", i, " has only empty references");
        const auto htoks = tokenize_13a(hyps[i]);
        const auto hl = std::int64_t(htoks.size());
        std::int64_t best_diff = -1, best_len = -1;
        for (const auto l : ref_lens) {
            const std::int64_t d = std::abs(hl - l);
            if (best_diff == -1 || d < best_diff) {
                best_diff = d;
                best_len = l;
            } else if (d == best_diff && l < best_len) {
                best_len = l;
            }
        }
        r.sys_len += hl;
        r.ref_len += best_len;
        for (const auto& [g, c] : detail::bleu_ngrams(htoks)) {
            const int n = g[0] - '0';
            total[std::size_t(n)] += c;
            if (auto it = ref_max.find(g); it != ref_max.end()) correct[std::size_t(n)] += std::min(c, it->second);
        }
    }
    r.counts = correct;
    r.totals = total;
    r.ratio = r.ref_len ? double(r.sys_len) / double(r.ref_len) : 0.0;
    if (r.sys_len < r.ref_len)
        r.bp = r.sys_len > 0 ? std::exp(1.0 - double(r.ref_len) / double(r.sys_len)) : 0.0;
    else
        r.bp = 1.0;
    bool any = false;
    for (auto c : correct) any = any || c != 0;
    if (!any) return r;  // score 0, precisions 0
    double smooth = 1.0;
    for (std::size_t n = 0; n < 4; ++n) {
        if (total[n] == 0) break;
        if (correct[n] == 0) {
            smooth *= 2;
            r.precisions[n] = 100.0 / (smooth * double(total[n]));
        } else {
            r.precisions[n] = 100.0 * double(correct[n]) / double(total[n]);
        }
    }
    double sum = 0;
    for (double p : r.precisions) sum += p == 0.0 ? -9999999999.0 : std::log(p);
    r.score = r.bp * std::exp(sum / 4.0);
    return r;
}

// One reference per hypothesis: sacreBLEU's corpus_bleu(hyps, [refs]).
inline BleuScore corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::string>& refs) {
    return corpus_bleu_multi(hyps, std::vector<std::vector<std::string>>{refs});
}

}  // namespace polymath::data
