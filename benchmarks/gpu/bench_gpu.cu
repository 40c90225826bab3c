// bench_gpu — polymath's CUDA kernels, timed with CUDA events on the current
// stream; prints CSV on stdout:
//
//   case,shape,dtype,ms_median,ms_min,gbps,tflops,pct_copy_bw
//
// gbps counts bytes read + written once (the minimum traffic of the op);
// pct_copy_bw is gbps over the device-to-device copy bandwidth measured first
// in the same run (the ceiling for memory-bound ops; issue #5 asks >= 80 %).
// The same cases and shapes run in PyTorch via benchmarks/peers/torch_gpu.py;
// benchmarks/peers/gpu_ratios.py joins the two. scripts/gpu-check runs all.
//
//   bench_gpu [--reps N] [--only <case substring>]
#include <polymath/cuda.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using namespace polymath;

namespace {

struct Options {
    int reps = 10;
    std::string only;
};

double g_copy_gbps = 0;

// Times fn() `reps` times after 3 warm-ups; prints one CSV row.
void bench(const Options& opt, const std::string& name, const std::string& shape, const char* dtype, double bytes,
           double flops, const std::function<void()>& fn) {
    if (!opt.only.empty() && name.find(opt.only) == std::string::npos) return;
    for (int i = 0; i < 3; ++i) fn();
    cuda::synchronize();
    std::vector<double> ms;
    cuda::EventTimer timer;
    for (int i = 0; i < opt.reps; ++i) {
        timer.start();
        fn();
        ms.push_back(timer.stop_ms());
    }
    std::sort(ms.begin(), ms.end());
    const double med = ms[ms.size() / 2], mn = ms.front();
    const double gbps = bytes > 0 ? bytes / (med * 1e-3) / 1e9 : 0;
    const double tflops = flops > 0 ? flops / (med * 1e-3) / 1e12 : 0;
    if (name == "copy_d2d") g_copy_gbps = gbps;
    std::printf("%s,%s,%s,%.4f,%.4f,%.1f,%.2f,%s\n", name.c_str(), shape.c_str(), dtype, med, mn, gbps, tflops,
                bytes > 0 && g_copy_gbps > 0 ? std::to_string(int(100 * gbps / g_copy_gbps + 0.5)).c_str() : "");
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--reps" && i + 1 < argc) opt.reps = std::max(1, std::atoi(argv[++i]));
        else if (a == "--only" && i + 1 < argc) opt.only = argv[++i];
        else {
            std::fprintf(stderr, "bench_gpu: unknown option '%s' (use --reps N, --only CASE)\n", a.c_str());
            return 2;
        }
    }
    if (!cuda::is_available()) {
        std::fprintf(stderr, "SKIPPED: no CUDA device (%s)\n", cuda::unavailable_reason().c_str());
        return 0;
    }
    try {
        std::fprintf(stderr, "bench_gpu on %s\n", cuda::device_description().c_str());
        std::printf("case,shape,dtype,ms_median,ms_min,gbps,tflops,pct_copy_bw\n");
        Generator gen(1);

        // ---- the bandwidth ceiling: device-to-device copy ---------------------------
        {
            const std::int64_t n = std::int64_t(64) << 20;
            const auto x = Tensor<float, Cuda>::randn({n}, gen);
            auto y = Tensor<float, Cuda>::empty({n});
            bench(opt, "copy_d2d", std::to_string(n), "f32", 2.0 * 4 * double(n), 0, [&] { y.copy_(x); });
            bench(opt, "fill", std::to_string(n), "f32", 4.0 * double(n), 0, [&] { y.fill_(1.0f); });
            bench(opt, "cast_f32_bf16", std::to_string(n), "f32", 6.0 * double(n), 0,
                  [&] { (void)x.to<bfloat16>(); });
        }
        // ---- host <-> device through the pinned staging buffers --------------------
        {
            const std::int64_t n = std::int64_t(16) << 20;
            const auto h = Tensor<float, Cpu>::randn({n}, gen);
            bench(opt, "upload_h2d", std::to_string(n), "f32", 4.0 * double(n), 0, [&] { (void)h.to<Cuda>(); });
            const auto d = h.to<Cuda>();
            bench(opt, "download_d2h", std::to_string(n), "f32", 4.0 * double(n), 0, [&] { (void)d.to<Cpu>(); });
        }
    } catch (const Error& e) {
        std::fprintf(stderr, "bench_gpu: %s\n", e.what());
        return 1;
    }
    return 0;
}
