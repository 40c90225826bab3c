// polymath/autograd/grad_mode.hpp — whether ops record the graph (per thread).
#pragma once

namespace polymath {

class GradMode {
public:
    static bool is_enabled() noexcept { return enabled_ref(); }
    static void set_enabled(bool e) noexcept { enabled_ref() = e; }

private:
    static bool& enabled_ref() noexcept {
        static thread_local bool enabled = true;
        return enabled;
    }
};

// Disables graph recording in a scope (inference, optimizer updates):
//   { polymath::NoGradGuard g; auto y = model(x); }
class NoGradGuard {
public:
    NoGradGuard() noexcept : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
    ~NoGradGuard() { GradMode::set_enabled(prev_); }
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;

private:
    bool prev_;
};

}  // namespace polymath
