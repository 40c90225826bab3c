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
    polymath::cuda::synchronize();
    std::vector<double> ms;
    polymath::cuda::EventTimer timer;
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
    if (!polymath::cuda::is_available()) {
        std::fprintf(stderr, "SKIPPED: no CUDA device (%s)\n", polymath::cuda::unavailable_reason().c_str());
        return 0;
    }
    try {
        std::fprintf(stderr, "bench_gpu on %s\n", polymath::cuda::device_description().c_str());
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
        // ---- GEMM through cuBLAS (issue #5: bf16 8192^3 >= 0.9x torch.matmul) -------
        {
            const std::int64_t m = 8192;
            const auto a = Tensor<float, Cuda>::randn({m, m}, gen).to<bfloat16>();
            const auto b = Tensor<float, Cuda>::randn({m, m}, gen).to<bfloat16>();
            bench(opt, "gemm", "8192x8192x8192", "bf16", 0, 2.0 * double(m) * m * m, [&] { (void)ops::matmul(a, b); });
        }
        {
            const std::int64_t m = 4096;
            const auto a = Tensor<float, Cuda>::randn({m, m}, gen);
            const auto b = Tensor<float, Cuda>::randn({m, m}, gen);
            bench(opt, "gemm", "4096x4096x4096", "f32", 0, 2.0 * double(m) * m * m, [&] { (void)ops::matmul(a, b); });
        }
        // ---- memory-bound ops (>= 80 % of the copy bandwidth) ------------------------
        {
            const std::int64_t r = 16384, c = 1024;
            const auto x = Tensor<float, Cuda>::randn({r, c}, gen);
            const auto w = Tensor<float, Cuda>::randn({c}, gen);
            const auto bias = Tensor<float, Cuda>::randn({c}, gen);
            const double io = 2.0 * 4 * double(r * c);
            bench(opt, "layer_norm_fwd", "16384x1024", "f32", io, 0,
                  [&] { (void)ops::layer_norm(x, Shape{c}, w, bias, 1e-6); });
            bench(opt, "softmax_fwd", "16384x1024", "f32", io, 0, [&] { (void)ops::softmax(x, -1); });
        }
        {
            const std::int64_t n = std::int64_t(64) << 20;
            const auto a = Tensor<float, Cuda>::randn({n}, gen);
            const auto b = Tensor<float, Cuda>::randn({n}, gen);
            bench(opt, "add", std::to_string(n), "f32", 3.0 * 4 * double(n), 0, [&] { (void)ops::add(a, b); });
            bench(opt, "gelu", std::to_string(n), "f32", 2.0 * 4 * double(n), 0, [&] { (void)ops::gelu(a); });
        }
        {
            const std::int64_t n = 32, l = 1024, c = 512, k = 15;
            const auto x = Tensor<float, Cuda>::randn({n, l, c}, gen);
            const auto w = Tensor<float, Cuda>::randn({k, c}, gen);
            bench(opt, "depthwise_conv1d_fwd", "32x1024x512_k15_d1", "f32", 2.0 * 4 * double(n * l * c), 0,
                  [&] { (void)ops::depthwise_conv1d(x, w, Tensor<float, Cuda>{}, 1, PaddingMode::Same); });
        }
        // ---- attention fwd + bwd (>= 0.8x torch's scaled_dot_product_attention) -------
        for (const bool causal : {false, true}) {
            const std::int64_t bsz = 8, h = 16, l = 1024, dk = 64;
            const auto q = Tensor<float, Cuda>::randn({bsz, l, h * dk}, gen).to<bfloat16>();
            const auto k = Tensor<float, Cuda>::randn({bsz, l, h * dk}, gen).to<bfloat16>();
            const auto v = Tensor<float, Cuda>::randn({bsz, l, h * dk}, gen).to<bfloat16>();
            const auto g = Tensor<float, Cuda>::randn({bsz, l, h * dk}, gen).to<bfloat16>();
            const ops::AttentionOptionsCuda ao{.num_heads = h, .causal = causal};
            // fwd 2 GEMMs + bwd 5 GEMMs of 2*L*L*dk each; causal does about half.
            const double flops = 7.0 * 2 * double(bsz * h) * double(l) * double(l) * double(dk) * (causal ? 0.5 : 1.0);
            bench(opt, "attention_fwd_bwd", std::string("8x16x1024x64") + (causal ? "_causal" : ""), "bf16", 0, flops, [&] {
                const auto f = ops::attention_forward(q, k, v, Tensor<std::uint8_t, Cuda>{}, ao);
                (void)ops::attention_backward(g, q, k, v, f, ao);
            });
        }
        // ---- MoE layer fwd + bwd (>= 1.3x torch eager, >= 1.0x torch.compile) -------
        // 16,384 tokens, d 1024, 64 experts of FFN 4096 (ReLU), top-2, bf16, dropless.
        // Forward: gate GEMM, top-2, softmax over the kept logits, plan (sort by
        // expert), dispatch, two grouped GEMMs, combine. Backward: combine, the four
        // grouped GEMMs of the experts (dX and dW for both layers), ReLU, dispatch,
        // softmax, and the two gate GEMMs. One stand-in: there is no CUDA scatter op
        // yet, so the gate-logit gradient ([T, 2] -> [T, E]) is a zero [T, E] tensor
        // of the right shape; its two GEMMs run (< 1 % of the FLOPs either way).
        {
            const std::int64_t t = 16384, d = 1024, e = 64, f = 4096, k = 2;
            const auto x = Tensor<float, Cuda>::randn({t, d}, gen).to<bfloat16>();
            const auto wg = Tensor<float, Cuda>::randn({d, e}, gen).to<bfloat16>();
            const auto w1 = ops::mul_scalar(Tensor<float, Cuda>::randn({e, d, f}, gen), 1.0 / 32).to<bfloat16>();
            const auto w2 = ops::mul_scalar(Tensor<float, Cuda>::randn({e, f, d}, gen), 1.0 / 64).to<bfloat16>();
            const auto g = Tensor<float, Cuda>::randn({t, d}, gen).to<bfloat16>();
            const auto zero_dlogits = Tensor<bfloat16, Cuda>::zeros({t, e});
            const double flops = 3.0 * 2 * 2 * double(t * k) * double(d) * double(f) + 3.0 * 2 * double(t) * d * e;
            bench(opt, "moe_fwd_bwd", "16384x1024_e64_f4096_k2", "bf16", 0, flops, [&] {
                const auto logits = ops::matmul(x, wg).to<float>();  // the router in fp32
                const auto top = ops::topk(logits, k);
                const auto gates32 = ops::softmax(top.values, -1);
                const auto gates = gates32.to<bfloat16>();
                const auto plan = ops::moe_plan(top.indices, e, -1);
                const Tensor<std::int64_t> off = plan.expert_offsets.to<Cpu>();
                const auto xs = ops::moe_dispatch(x, plan);
                const auto h = ops::relu(ops::grouped_gemm(xs, w1, off));
                const auto ys = ops::grouped_gemm(h, w2, off);
                (void)ops::moe_combine(ys, gates, plan);
                // backward
                const auto cg = ops::moe_combine_backward(g, ys, gates, plan);
                const auto dw2 = ops::grouped_gemm_tn(h, cg.dys, off);
                const auto dh = ops::relu_backward(ops::grouped_gemm(cg.dys, w2, off, true), h);
                const auto dw1 = ops::grouped_gemm_tn(xs, dh, off);
                const auto dx = ops::moe_dispatch_backward(ops::grouped_gemm(dh, w1, off, true), plan);
                (void)ops::softmax_backward(cg.dgates.to<float>(), gates32, -1);
                (void)ops::matmul_tn(x, zero_dlogits);  // d wg
                (void)ops::add(dx, ops::matmul_nt(zero_dlogits, wg));  // d x through the gate
                (void)dw1;
                (void)dw2;
            });
        }
    } catch (const Error& e) {
        std::fprintf(stderr, "bench_gpu: %s\n", e.what());
        return 1;
    }
    return 0;
}
