// libFuzzer harness for the CSV reader (polymath/data/csv.hpp), fed raw or
// gzip bytes from memory (scripts/fuzz builds and runs it).
//
// Any input must either parse or throw polymath::Error. A parsed table must be
// rectangular; numeric(c) must succeed exactly when is_numeric(c) says so
// (and otherwise throw polymath::Error); forward_fill must leave no NaN in a
// column with any value.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "polymath/data/csv.hpp"

namespace {
void require(bool ok) {
    if (!ok) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    polymath::data::CsvTable t;
    try {
        t = polymath::data::read_csv(std::span<const std::uint8_t>(data, size), "fuzz-input");
    } catch (const polymath::Error&) {
        return 0;
    }
    require(t.cols.size() == t.names.size() && t.row_line.size() == t.row_offset.size());
    for (const auto& c : t.cols) require(c.size() == t.rows());
    for (const auto& name : t.names) {
        const bool numeric = t.is_numeric(name);
        std::vector<double> v;
        bool threw = false;
        try {
            v = t.numeric(name);
        } catch (const polymath::Error&) {
            threw = true;
        }
        require(threw != numeric);
        if (threw) continue;
        bool any = false;
        for (double x : v) any = any || !std::isnan(x);
        polymath::data::forward_fill(v);
        for (double x : v) require(!any || !std::isnan(x));
    }
    return 0;
}
