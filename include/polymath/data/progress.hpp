// polymath/data/progress.hpp — a progress bar with rate and ETA for long loops.
//
//   polymath::data::ProgressBar bar(steps, "train");
//   for (...) { ...; bar.update(1, "loss 0.31"); }
//   bar.finish();
//
// One line (render_progress), e.g. with a known total:
//   train [#########---------------------]   300/1000   30.0%  12.5 it/s  elapsed 00:24  eta 00:56  loss 0.31
// and with an unknown total (0):
//   encode  5301 it  1325 it/s  elapsed 00:04  loss 0.31
// Output goes to stderr (or a given stream). On a terminal the line is
// redrawn in place ("\r" + line + ESC[K "erase to end of line"), at most every
// 0.1 s; otherwise (CI logs, pipes) a full line is printed at most every 5 s,
// plus one at finish(), so logs stay short. finish() is idempotent and the
// destructor calls it. Not thread-safe: call update() from one thread.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <string>
#include <string_view>

namespace polymath::data {

namespace detail {
// "mm:ss", or "h:mm:ss" from one hour on; "--:--" when unknown.
inline std::string format_duration(double seconds) {
    if (!(seconds >= 0) || !std::isfinite(seconds) || seconds > 1e8) return "--:--";
    const auto s = static_cast<std::int64_t>(seconds);
    char buf[32];
    if (s >= 3600)
        std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                      static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
    else
        std::snprintf(buf, sizeof buf, "%02lld:%02lld", static_cast<long long>(s / 60),
                      static_cast<long long>(s % 60));
    return buf;
}
// Rate with 3 significant digits below 100 ("2.35", "12.5"), integral above.
inline std::string format_rate(double r) {
    if (!(r >= 0) || !std::isfinite(r)) return "--";
    char buf[32];
    if (r >= 100)
        std::snprintf(buf, sizeof buf, "%.0f", r);
    else if (r >= 10)
        std::snprintf(buf, sizeof buf, "%.1f", r);
    else
        std::snprintf(buf, sizeof buf, "%.2f", r);
    return buf;
}
}  // namespace detail

// The progress line for `count` of `total` items (total 0 = unknown) after
// `elapsed_s` seconds; `status` is appended when not empty. The rate is
// count / elapsed_s ("--" before any time has passed), the ETA
// (total - count) / rate.
inline std::string render_progress(std::string_view label, std::int64_t count, std::int64_t total,
                                   double elapsed_s, std::string_view status = {}, int bar_width = 30) {
    std::string out(label);
    const double rate = elapsed_s > 0 ? double(count) / elapsed_s : -1.0;
    char buf[64];
    if (total > 0) {
        const double frac = std::clamp(double(count) / double(total), 0.0, 1.0);
        if (bar_width > 0) {
            const int filled = static_cast<int>(frac * bar_width);
            out += out.empty() ? "[" : " [";
            out.append(std::size_t(filled), '#');
            out.append(std::size_t(bar_width - filled), '-');
            out += "]";
        }
        const std::string tot = std::to_string(total);
        std::snprintf(buf, sizeof buf, "  %*lld/%s  %5.1f%%", int(tot.size()), static_cast<long long>(count),
                      tot.c_str(), 100.0 * frac);
        out += buf;
        out += "  " + detail::format_rate(rate) + " it/s";
        out += "  elapsed " + detail::format_duration(elapsed_s);
        const double eta = rate > 0 ? double(total - std::min(count, total)) / rate : -1.0;
        out += "  eta " + detail::format_duration(eta);
    } else {
        out += "  " + std::to_string(count) + " it";
        out += "  " + detail::format_rate(rate) + " it/s";
        out += "  elapsed " + detail::format_duration(elapsed_s);
    }
    if (!status.empty()) {
        out += "  ";
        out += status;
    }
    return out;
}

struct ProgressOptions {
    std::ostream* out = nullptr;       // nullptr: std::cerr
    int terminal = -1;                 // -1: isatty(stderr) when out is std::cerr, else no; 0/1: forced
    double line_interval_s = 5.0;      // not a terminal: at most one line per interval
    double redraw_interval_s = 0.1;    // terminal: at most one redraw per interval
    std::function<double()> clock;     // seconds; empty: steady_clock (tests inject their own)
};

class ProgressBar {
public:
    explicit ProgressBar(std::int64_t total, std::string label = {}, ProgressOptions options = {})
        : total_(total < 0 ? 0 : total), label_(std::move(label)), opt_(std::move(options)) {
        if (!opt_.out) opt_.out = &std::cerr;
        if (opt_.terminal < 0) opt_.terminal = (opt_.out == &std::cerr && ::isatty(STDERR_FILENO)) ? 1 : 0;
        if (!opt_.clock) {
            opt_.clock = [] {
                return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
            };
        }
        start_ = last_draw_ = opt_.clock();
    }
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;
    ~ProgressBar() {
        try {
            finish();
        } catch (...) {  // a destructor must not throw (stream errors)
        }
    }

    // Adds n items; `status` (e.g. "loss 0.31") replaces the previous one when not empty.
    void update(std::int64_t n = 1, std::string_view status = {}) {
        if (finished_) return;
        count_ += n;
        if (!status.empty()) status_.assign(status);
        const double now = opt_.clock();
        const double interval = opt_.terminal ? opt_.redraw_interval_s : opt_.line_interval_s;
        if (now - last_draw_ >= interval) draw(now, false);
    }
    void set_status(std::string_view status) { status_.assign(status); }

    // Draws the final state and ends the line (once).
    void finish(std::string_view status = {}) {
        if (finished_) return;
        if (!status.empty()) status_.assign(status);
        finished_ = true;
        draw(opt_.clock(), true);
    }

    std::int64_t count() const { return count_; }
    std::int64_t total() const { return total_; }
    double elapsed() const { return opt_.clock() - start_; }
    // The line as it would be drawn now.
    std::string line() const { return render_progress(label_, count_, total_, elapsed(), status_); }

private:
    void draw(double now, bool final) {
        last_draw_ = now;
        const std::string text = render_progress(label_, count_, total_, now - start_, status_);
        std::ostream& os = *opt_.out;
        if (opt_.terminal) {
            os << '\r' << text << "\x1b[K";
            if (final) os << '\n';
        } else {
            os << text << '\n';
        }
        os.flush();
    }

    std::int64_t total_;
    std::int64_t count_ = 0;
    std::string label_;
    std::string status_;
    ProgressOptions opt_;
    double start_ = 0, last_draw_ = 0;
    bool finished_ = false;
};

}  // namespace polymath::data
