// libFuzzer harness for polymath/data/bpe.hpp (scripts/fuzz builds every
// tests/fuzz/fuzz_<name>.cpp; seeds in tests/fuzz/seeds/bpe/).
//
// The first input byte picks what the rest is:
//   0  a vocabulary file for BpeTokenizer::from_string, as is;
//   1  a vocabulary body: the harness appends the correct "end <fingerprint>"
//      line, so the fuzzer gets past the checksum into the per-line checks;
//   2  text, encoded with a fixed tokenizer trained on a built-in corpus;
//   3  training lines ('\n'-separated) for BpeTokenizer::train.
// Properties (a violation traps, which the fuzzer reports as a crash):
//   - parsing either succeeds or throws polymath::Error — nothing else;
//   - a parsed vocabulary re-serializes to text that parses back to the same
//     text and the same fingerprint, and encodes/decodes without error;
//   - with byte fallback, decode(encode(s)) == normalize_whitespace(s) for any
//     bytes s, and every id is in range;
//   - a trained tokenizer respects vocab_size and round-trips its own lines
//     and its file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "polymath/data/bpe.hpp"

namespace {

using polymath::data::BpeTokenizer;
using polymath::data::normalize_whitespace;

void require(bool ok) {
    if (!ok) __builtin_trap();
}

void check_round_trip(const BpeTokenizer& tok, std::string_view text) {
    const auto ids = tok.encode(text);
    for (auto id : ids) require(id >= 0 && id < tok.vocab_size());
    const std::string back = tok.decode(ids);
    if (tok.byte_fallback()) require(back == normalize_whitespace(text));
}

const BpeTokenizer& fixed_tokenizer() {
    static const BpeTokenizer tok = BpeTokenizer::train(
        {"Two young, White males are outside near many bushes.",
         "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.",
         "A man in a blue shirt is standing on a ladder cleaning windows.",
         "Ein Mann in einem blauen Hemd steht auf einer Leiter und putzt Fenster."},
        400);
    return tok;
}

void parse_vocabulary(std::string_view text) {
    BpeTokenizer tok;
    try {
        tok = BpeTokenizer::from_string(text, "fuzz-input");
    } catch (const polymath::Error&) {
        return;  // rejected: the expected outcome for most inputs
    }
    const std::string again = tok.to_string();
    const BpeTokenizer back = BpeTokenizer::from_string(again, "re-serialized");
    require(back.to_string() == again);
    require(back.fingerprint() == tok.fingerprint());
    require(back.vocab_size() == tok.vocab_size());
    for (std::string_view s : {"Two dogs play in the snow.", "  Ein   Hund\trennt ", "\xFF\xC3 \xE2\x82\xAC x"}) {
        check_round_trip(tok, s);
        require(back.encode(s) == tok.encode(s));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] & 3) {
        case 0: parse_vocabulary(rest); break;
        case 1: {
            std::string text(rest);
            if (!text.empty() && text.back() != '\n') text += '\n';
            text += "end " + polymath::data::detail::hex16(polymath::data::detail::fnv1a64(text)) + "\n";
            parse_vocabulary(text);
            break;
        }
        case 2: check_round_trip(fixed_tokenizer(), rest); break;
        case 3: {
            std::vector<std::string> lines;
            for (std::size_t b = 0; b <= rest.size();) {
                std::size_t e = rest.find('\n', b);
                if (e == std::string_view::npos) e = rest.size();
                lines.emplace_back(rest.substr(b, e - b));
                b = e + 1;
            }
            // Vocabulary size from the line count: small sizes hit the
            // "smaller than the base tokens" error, larger ones the merge loop.
            const int vocab = 259 + int(lines.size() % 7) * 40;
            BpeTokenizer tok;
            try {
                tok = BpeTokenizer::train(lines, vocab);
            } catch (const polymath::Error&) {
                return 0;  // alphabet larger than the vocabulary
            }
            require(tok.vocab_size() <= vocab);
            for (const auto& l : lines) check_round_trip(tok, l);
            const BpeTokenizer back = BpeTokenizer::from_string(tok.to_string());
            require(back.to_string() == tok.to_string());
            break;
        }
    }
    return 0;
}
