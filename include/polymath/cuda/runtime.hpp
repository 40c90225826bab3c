// polymath/cuda/runtime.hpp — devices and streams.
//
// Every polymath CUDA op enqueues its work on the calling thread's *current
// stream* (current_stream()); by default that is the legacy default stream, so
// ops from all threads are ordered with each other and with plain CUDA code.
// StreamGuard switches the current stream for a scope (e.g. one stream per
// evolutionary individual). Ops never synchronise the host except where their
// result must reach it (item(), to<Cpu>(), to_vector()).
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "polymath/cuda/check.hpp"

namespace polymath::cuda {

// Number of visible devices; 0 (never an exception) when there is no driver,
// no device, or CUDA_VISIBLE_DEVICES hides them all.
inline int device_count() noexcept {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}
inline bool is_available() noexcept { return device_count() > 0; }

// Why no device is usable, in words ("" when one is): the message tests and
// examples print next to "SKIPPED: no CUDA device".
inline std::string unavailable_reason() {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return std::string(cudaGetErrorString(e)) + " (" + cudaGetErrorName(e) + ")";
    }
    return n == 0 ? "0 devices" : "";
}

inline int current_device() {
    int d = 0;
    POLYMATH_CUDA_CHECK(cudaGetDevice(&d));
    return d;
}

// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)".
inline std::string device_description(int device = -1) {
    if (device < 0) device = current_device();
    cudaDeviceProp p{};
    POLYMATH_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
    return polymath::detail::str_cat(p.name, " (sm_", p.major, p.minor, ", ", p.multiProcessorCount, " SMs, ",
                                     double(p.totalGlobalMem) / double(1 << 30), " GiB)");
}

// Multiprocessor count of the current device (cached per thread: grid sizes use it).
inline int multiprocessor_count() {
    thread_local int cached = -1;
    if (cached < 0) {
        int d = current_device();
        POLYMATH_CUDA_CHECK(cudaDeviceGetAttribute(&cached, cudaDevAttrMultiProcessorCount, d));
    }
    return cached;
}

namespace detail {
inline cudaStream_t& current_stream_slot() {
    thread_local cudaStream_t s = nullptr;  // nullptr = the legacy default stream
    return s;
}
}  // namespace detail

inline cudaStream_t current_stream() noexcept { return detail::current_stream_slot(); }

// Sets the calling thread's current stream for a scope.
class StreamGuard {
public:
    explicit StreamGuard(cudaStream_t s) : prev_(detail::current_stream_slot()) { detail::current_stream_slot() = s; }
    ~StreamGuard() { detail::current_stream_slot() = prev_; }
    StreamGuard(const StreamGuard&) = delete;
    StreamGuard& operator=(const StreamGuard&) = delete;

private:
    cudaStream_t prev_;
};

// An owned non-blocking stream.
class Stream {
public:
    Stream() { POLYMATH_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
    ~Stream() {
        if (s_) (void)cudaStreamDestroy(s_);
    }
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    cudaStream_t get() const noexcept { return s_; }
    void synchronize() const { POLYMATH_CUDA_CHECK(cudaStreamSynchronize(s_)); }

private:
    cudaStream_t s_ = nullptr;
};

// Waits for all work on the current stream.
inline void synchronize() { POLYMATH_CUDA_CHECK(cudaStreamSynchronize(current_stream())); }

// Elapsed device time between two points on the current stream (benchmarks).
class EventTimer {
public:
    EventTimer() {
        POLYMATH_CUDA_CHECK(cudaEventCreate(&a_));
        POLYMATH_CUDA_CHECK(cudaEventCreate(&b_));
    }
    ~EventTimer() {
        (void)cudaEventDestroy(a_);
        (void)cudaEventDestroy(b_);
    }
    EventTimer(const EventTimer&) = delete;
    EventTimer& operator=(const EventTimer&) = delete;
    void start() { POLYMATH_CUDA_CHECK(cudaEventRecord(a_, current_stream())); }
    // Milliseconds since start(); waits for the stream.
    double stop_ms() {
        POLYMATH_CUDA_CHECK(cudaEventRecord(b_, current_stream()));
        POLYMATH_CUDA_CHECK(cudaEventSynchronize(b_));
        float ms = 0;
        POLYMATH_CUDA_CHECK(cudaEventElapsedTime(&ms, a_, b_));
        return double(ms);
    }

private:
    cudaEvent_t a_{}, b_{};
};

}  // namespace polymath::cuda
