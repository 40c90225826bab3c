// polymath/core/error.hpp — the one exception type of the library.
//
// Every check at an op's entry throws polymath::Error with a message that names
// the op and the shapes / dtypes / devices / file involved, so that a user can
// find the faulty call without a debugger. Checks are never assert-only: they
// stay in release builds.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace polymath {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <class... Args>
std::string str_cat(Args&&... args) {
    std::ostringstream os;
    (os << ... << std::forward<Args>(args));
    return os.str();
}
}  // namespace detail

// Throws polymath::Error("<op>: <message pieces...>") when `cond` is false.
// The pieces are streamed (Shapes, dtypes and numbers print themselves).
#define POLYMATH_CHECK(cond, op, ...)                                                    \
    do {                                                                                 \
        if (!(cond)) [[unlikely]]                                                        \
            throw ::polymath::Error(::polymath::detail::str_cat(op, ": ", __VA_ARGS__)); \
    } while (0)

// Unconditional throw with the same message convention.
#define POLYMATH_THROW(op, ...) \
    throw ::polymath::Error(::polymath::detail::str_cat(op, ": ", __VA_ARGS__))

}  // namespace polymath
