// polymath/data/csv.hpp — CSV reader with a header row and missing values.
//
// Syntax (RFC 4180): fields separated by ',', records by "\n" or "\r\n"; a
// field that starts with '"' is quoted: it may hold ',', line breaks and '""'
// (one '"'), and must be followed by ',' or the end of the record. A '"' in
// the middle of an unquoted field is kept as a character. Blank lines are
// skipped. The first record is the header (column names, unique); every
// other record must have as many fields as the header.
//
// Cells are kept as strings; numeric(name) converts a column to doubles, with
// the missing-value tokens "", "NA", "N/A", "NaN", "nan" (after trimming
// spaces) -> NaN. A value that is neither a number nor missing throws, naming
// the column, line and byte offset. strings(name) gives the raw cells (quotes
// removed).
//
//   auto t = polymath::data::read_csv("data/air-quality/PRSA_Data_Dongsi_20130301-20170228.csv.gz");
//   std::vector<double> pm25 = t.numeric("PM2.5");        // NaN where "NA"
//   polymath::data::forward_fill(pm25);                   // or mean_impute(pm25)
//   const std::vector<std::string>& wd = t.strings("wd"); // "NNW", ...
//
// Every error is a polymath::Error naming the file, the line (1-based) and the
// byte offset (of the decompressed text for .gz input).
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"
#include "gzip.hpp"

namespace polymath::data {

class CsvTable {
public:
    std::string source;                          // file name (for messages)
    std::vector<std::string> names;              // column names, header order
    std::vector<std::vector<std::string>> cols;  // cols[c][r]: cell of row r
    std::vector<std::int64_t> row_line;          // line (1-based) where row r starts
    std::vector<std::int64_t> row_offset;        // byte offset where row r starts

    std::size_t rows() const { return row_line.size(); }
    std::size_t columns() const { return names.size(); }

    bool has(std::string_view name) const {
        for (const auto& n : names)
            if (n == name) return true;
        return false;
    }
    std::size_t index(std::string_view name) const {
        for (std::size_t i = 0; i < names.size(); ++i)
            if (names[i] == name) return i;
        std::string list;
        for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
        POLYMATH_THROW("CsvTable", "'", source, "' has no column '", name, "' (columns: ", list, ")");
    }

    const std::vector<std::string>& strings(std::string_view name) const { return cols[index(name)]; }

    static bool is_missing(std::string_view s) {
        s = trim(s);
        return s.empty() || s == "NA" || s == "N/A" || s == "NaN" || s == "nan";
    }
    // Parses one number (spaces around it allowed); false when it is not one.
    static bool parse_number(std::string_view s, double& out) {
        s = trim(s);
        if (!s.empty() && s.front() == '+') s.remove_prefix(1);  // from_chars rejects a leading '+'
        if (s.empty()) return false;
        const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
        return r.ec == std::errc() && r.ptr == s.data() + s.size();
    }

    // The column as doubles, NaN for missing cells.
    std::vector<double> numeric(std::string_view name) const {
        const std::size_t c = index(name);
        std::vector<double> out(rows());
        for (std::size_t r = 0; r < rows(); ++r) {
            const std::string& s = cols[c][r];
            if (is_missing(s)) {
                out[r] = std::numeric_limits<double>::quiet_NaN();
            } else if (!parse_number(s, out[r])) {
                POLYMATH_THROW("CsvTable::numeric", "'", source, "' line ", row_line[r], " (row at offset ",
                               row_offset[r], "): column '", name, "' holds '", s.substr(0, 40),
                               "', which is neither a number nor a missing value (NA or empty)");
            }
        }
        return out;
    }

    // True when every non-missing cell of the column is a number.
    bool is_numeric(std::string_view name) const {
        const std::size_t c = index(name);
        double v;
        for (const auto& s : cols[c])
            if (!is_missing(s) && !parse_number(s, v)) return false;
        return true;
    }

private:
    static std::string_view trim(std::string_view s) {
        while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
        while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
        return s;
    }
};

// Parses CSV text that is already decompressed; `name` names it in messages,
// `gz` marks offsets as decompressed.
inline CsvTable parse_csv(std::string_view text, const std::string& name, bool gz = false) {
    const char* op = "read_csv";
    const char* note = gz ? " (decompressed)" : "";
    CsvTable t;
    t.source = name;
    std::size_t pos = 0;
    std::int64_t line = 1;
    const std::size_t n = text.size();
    std::vector<std::string> fields;
    bool have_header = false;

    while (pos < n) {
        // One record starting at pos.
        const std::size_t rec_offset = pos;
        const std::int64_t rec_line = line;
        fields.clear();
        bool end_of_record = false;
        bool blank = true;
        while (!end_of_record) {
            std::string field;
            if (pos < n && text[pos] == '"') {
                blank = false;
                const std::size_t open = pos;
                const std::int64_t open_line = line;
                ++pos;
                for (;;) {
                    if (pos >= n)
                        POLYMATH_THROW(op, "'", name, "' line ", open_line, ": quoted field opened at offset ", open,
                                       note, " is not closed before the end of the file (offset ", n, ")");
                    const char ch = text[pos];
                    if (ch == '"') {
                        if (pos + 1 < n && text[pos + 1] == '"') {
                            field += '"';
                            pos += 2;
                            continue;
                        }
                        ++pos;
                        break;
                    }
                    if (ch == '\n') ++line;
                    field += ch;
                    ++pos;
                }
                // After the closing quote: ',', end of record or end of file.
                if (pos < n && text[pos] != ',' && text[pos] != '\n' &&
                    !(text[pos] == '\r' && pos + 1 < n && text[pos + 1] == '\n') && !(text[pos] == '\r' && pos + 1 == n))
                    POLYMATH_THROW(op, "'", name, "' line ", line, ": unexpected character '", text[pos],
                                   "' after the closing quote at offset ", pos, note,
                                   " (expected ',' or the end of the line)");
            } else {
                const std::size_t start = pos;
                while (pos < n && text[pos] != ',' && text[pos] != '\n') ++pos;
                std::size_t end = pos;
                if (end > start && text[end - 1] == '\r' && (pos == n || text[pos] == '\n')) --end;
                field.assign(text.substr(start, end - start));
                if (!field.empty() || (pos < n && text[pos] == ',')) blank = false;
            }
            fields.push_back(std::move(field));
            if (pos < n && text[pos] == ',') {
                ++pos;
            } else {
                if (pos < n && text[pos] == '\r') ++pos;  // \r\n after a quoted field
                if (pos < n && text[pos] == '\n') {
                    ++pos;
                    ++line;
                }
                end_of_record = true;
            }
        }
        if (blank) continue;  // an empty line
        if (!have_header) {
            for (std::size_t i = 0; i < fields.size(); ++i)
                for (std::size_t j = 0; j < i; ++j)
                    if (fields[i] == fields[j])
                        POLYMATH_THROW(op, "'", name, "' line ", rec_line, " (header at offset ", rec_offset, note,
                                       "): column name '", fields[i], "' appears twice (columns ", j + 1, " and ",
                                       i + 1, ")");
            t.names = fields;
            t.cols.resize(fields.size());
            have_header = true;
            continue;
        }
        if (fields.size() != t.names.size())
            POLYMATH_THROW(op, "'", name, "' line ", rec_line, " (offset ", rec_offset, note, "): ", fields.size(),
                           " fields, but the header has ", t.names.size(), " columns");
        for (std::size_t c = 0; c < fields.size(); ++c) t.cols[c].push_back(std::move(fields[c]));
        t.row_line.push_back(rec_line);
        t.row_offset.push_back(std::int64_t(rec_offset));
    }
    if (!have_header) POLYMATH_THROW(op, "'", name, "' has no header row (offset 0, ", n, " bytes", note, ")");
    return t;
}

// From bytes in memory that may be gzip (the fuzz target's entry point).
inline CsvTable read_csv(std::span<const std::uint8_t> bytes, const std::string& name) {
    const std::vector<std::uint8_t> raw = read_bytes(bytes, name, "read_csv");
    return parse_csv(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()), name, is_gzip(bytes));
}

// A CSV file (raw or gzip).
inline CsvTable read_csv(const std::string& path) {
    ByteSource src(path, "read_csv");
    const std::vector<std::uint8_t> raw = src.read_all();
    return parse_csv(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()), path, src.gzip());
}

// Replaces each NaN by the last value before it; NaNs before the first value
// take the first value (back-fill), so a series with any value has no NaN
// left. All-NaN input stays NaN. Returns how many values were filled.
inline std::size_t forward_fill(std::vector<double>& v) {
    std::size_t filled = 0;
    std::size_t first = 0;
    while (first < v.size() && std::isnan(v[first])) ++first;
    if (first == v.size()) return 0;
    for (std::size_t i = 0; i < first; ++i, ++filled) v[i] = v[first];
    for (std::size_t i = first + 1; i < v.size(); ++i)
        if (std::isnan(v[i])) {
            v[i] = v[i - 1];
            ++filled;
        }
    return filled;
}

// Replaces each NaN by the mean of the non-NaN values. All-NaN input stays
// NaN. Returns how many values were filled.
inline std::size_t mean_impute(std::vector<double>& v) {
    double sum = 0;
    std::size_t count = 0;
    for (double x : v)
        if (!std::isnan(x)) {
            sum += x;
            ++count;
        }
    if (count == 0) return 0;
    const double mean = sum / double(count);
    std::size_t filled = 0;
    for (double& x : v)
        if (std::isnan(x)) {
            x = mean;
            ++filled;
        }
    return filled;
}

}  // namespace polymath::data
