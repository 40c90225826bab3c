// polymath/evo/checkpoint.hpp — what the evolutionary checkpoints are made of:
// an atomic file write and exact JSON encodings of genomes and doubles.
//
// Checkpoints are small JSON documents (nlohmann_json). Doubles are stored as
// their IEEE-754 bit patterns (hex strings), so +inf crowding distances and
// every last bit survive the round trip; a resumed run is then bit-identical
// to an uninterrupted one. BitGenomes are stored as strings of '0'/'1'
// (compact and readable), RealGenomes as bit patterns, IndexGenomes as
// integers; any other genome type goes through nlohmann's to_json/from_json
// (ADL), whose exactness is then the genome's business.
//
// write_file_atomic writes `path.tmp.<pid>`, fsyncs it and renames it over
// `path`: a crash leaves either the old or the new checkpoint, never half of one.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "polymath/core/error.hpp"
#include "polymath/evo/genome.hpp"

namespace polymath::evo {

inline void write_file_atomic(const std::string& path, const std::string& bytes) {
    const std::string tmp = path + ".tmp." + std::to_string(static_cast<long long>(::getpid()));
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    POLYMATH_CHECK(fd >= 0, "evo::save_checkpoint", "cannot create '", tmp, "': ", std::strerror(errno));
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ::ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            const int e = errno;
            ::close(fd);
            std::remove(tmp.c_str());
            POLYMATH_THROW("evo::save_checkpoint", "writing '", tmp, "' failed: ", std::strerror(e));
        }
        done += static_cast<std::size_t>(w);
    }
    const bool synced = ::fsync(fd) == 0;
    const bool closed = ::close(fd) == 0;
    if (!synced || !closed || ::rename(tmp.c_str(), path.c_str()) != 0) {
        const int e = errno;
        std::remove(tmp.c_str());
        POLYMATH_THROW("evo::save_checkpoint", "cannot write '", path, "' (via '", tmp, "'): ", std::strerror(e));
    }
}

inline std::string read_file(const std::string& path, const char* op) {
    std::ifstream in(path, std::ios::binary);
    POLYMATH_CHECK(in.good(), op, "cannot open '", path, "'");
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// ---- exact doubles ------------------------------------------------------------
inline std::string double_bits(double x) {
    std::uint64_t u;
    std::memcpy(&u, &x, sizeof u);
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(u));
    return buf;
}
inline double double_from_bits(const std::string& s, const char* op) {
    POLYMATH_CHECK(s.size() == 16 && s.find_first_not_of("0123456789abcdef") == std::string::npos, op,
                   "expected 16 hex digits of a double, got '", s, "'");
    const std::uint64_t u = std::stoull(s, nullptr, 16);
    double x;
    std::memcpy(&x, &u, sizeof x);
    return x;
}
inline nlohmann::json doubles_to_json(const std::vector<double>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (double x : v) a.push_back(double_bits(x));
    return a;
}
inline std::vector<double> doubles_from_json(const nlohmann::json& j, const char* op) {
    POLYMATH_CHECK(j.is_array(), op, "expected an array of double bit patterns");
    std::vector<double> v;
    for (const auto& e : j) {
        POLYMATH_CHECK(e.is_string(), op, "expected a hex string, got ", e.dump());
        v.push_back(double_from_bits(e.get<std::string>(), op));
    }
    return v;
}

// ---- genomes ------------------------------------------------------------------
inline nlohmann::json genome_to_json(const BitGenome& g) {
    std::string s(g.size(), '0');
    for (std::size_t i = 0; i < g.size(); ++i) s[i] = g[i] ? '1' : '0';
    return s;
}
inline nlohmann::json genome_to_json(const RealGenome& g) { return doubles_to_json(g); }
inline nlohmann::json genome_to_json(const IndexGenome& g) { return nlohmann::json(g); }
template <class G>
nlohmann::json genome_to_json(const G& g) {
    return nlohmann::json(g);
}

template <class G>
struct GenomeCodec {
    static G from_json(const nlohmann::json& j, const char*) { return j.get<G>(); }
};
template <>
struct GenomeCodec<BitGenome> {
    static BitGenome from_json(const nlohmann::json& j, const char* op) {
        POLYMATH_CHECK(j.is_string(), op, "expected a bit string, got ", j.type_name());
        const std::string s = j.get<std::string>();
        BitGenome g(s.size());
        for (std::size_t i = 0; i < s.size(); ++i) {
            POLYMATH_CHECK(s[i] == '0' || s[i] == '1', op, "bit ", i, " is '", s[i], "', expected '0' or '1'");
            g[i] = s[i] == '1' ? 1 : 0;
        }
        return g;
    }
};
template <>
struct GenomeCodec<RealGenome> {
    static RealGenome from_json(const nlohmann::json& j, const char* op) { return doubles_from_json(j, op); }
};

}  // namespace polymath::evo
