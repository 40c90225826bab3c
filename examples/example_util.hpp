// examples/example_util.hpp — the small chores every example repeats: a
// comma-separated option list, writing a result file, and turning a gnuplot
// script into a PNG when gnuplot is installed (examples stay usable without it).
#pragma once
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <polymath/core/error.hpp>

namespace example {

// "a,b,,c" -> {"a", "b", "c"}
inline std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string t; std::getline(ss, t, ',');)
        if (!t.empty()) out.push_back(t);
    return out;
}

// Writes `text` to `path`; an Error names the path when it cannot.
inline void write_file(const std::string& path, const std::string& text) {
    std::ofstream f(path);
    if (!f) throw polymath::Error("cannot write " + path);
    f << text;
    f.close();
    if (!f) throw polymath::Error("cannot write " + path);
}

inline bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

// Saves `script` as `stem`.gp and runs gnuplot on it (its errors go to
// `stem`.log). Returns a one-line note for the user: where the plot is, or why
// there is none (`data_hint` says where the numbers are instead).
inline std::string gnuplot(const std::string& stem, const std::string& script, const std::string& png,
                           const std::string& data_hint) {
    if (!have_gnuplot()) return "gnuplot not found: no PNG (apt-get install gnuplot-nox); " + data_hint;
    write_file(stem + ".gp", script);
    if (std::system(("gnuplot '" + stem + ".gp' 2>'" + stem + ".log'").c_str()) != 0)
        return "gnuplot failed (see " + stem + ".log); " + data_hint;
    return "plot: " + png;
}

}  // namespace example
