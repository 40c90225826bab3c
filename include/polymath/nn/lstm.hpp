// polymath/nn/lstm.hpp — multi-layer (bidirectional) LSTM, batch-first
// (torch.nn.LSTM(batch_first=True) semantics and parameter names).
//
//   nn::LSTM<float> lstm(8, 32, {.num_layers = 2, .bidirectional = true});
//   auto r = lstm(x);            // x [B, L, 8] -> r.output [B, L, 64], r.h_n / r.c_n [4, B, 32]
//
// Per layer and direction, with gates in PyTorch's order (i, f, g, o):
//   [i f g o] = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh
//   i, f, o = σ(·),  g = tanh(·),  c_t = f ⊙ c_{t-1} + i ⊙ g,  h_t = o ⊙ tanh(c_t)
// The reverse direction runs t = L-1 .. 0; a bidirectional layer's output is
// [forward h_t, reverse h_t] on the last axis. The input projection of all
// steps is one GEMM per layer and direction; the recurrence is one [B, H] x
// [H, 4H] GEMM per step. h_0 = c_0 = 0 unless given. Init as torch:
// U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias. Dropout (training only)
// applies to the outputs of every layer but the last.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "polymath/autograd/arith.hpp"
#include "polymath/autograd/dropout.hpp"
#include "polymath/autograd/join.hpp"
#include "polymath/autograd/matmul.hpp"
#include "polymath/autograd/unary.hpp"
#include "polymath/autograd/view_ops.hpp"
#include "polymath/nn/init.hpp"
#include "polymath/nn/module.hpp"

namespace polymath::nn {

struct LSTMOptions {
    std::int64_t num_layers = 1;
    bool bidirectional = false;
    bool bias = true;
    double dropout = 0;
};

template <class T>
struct LSTMOutput {
    Var<T> output;  // [B, L, D*H]
    Var<T> h_n;     // [num_layers*D, B, H]
    Var<T> c_n;     // [num_layers*D, B, H]
};

// One direction of one layer: the four parameters torch names
// weight_ih_l{k}{_reverse}, weight_hh_..., bias_ih_..., bias_hh_....
template <class T>
struct LSTMCellParams {
    Var<T> w_ih, w_hh, b_ih, b_hh;
};

template <class T>
class LSTM : public Module<LSTM<T>, T> {
public:
    LSTM() = default;
    LSTM(std::int64_t input_size, std::int64_t hidden_size, LSTMOptions opt = {}, Generator& gen = default_generator())
        : in_(input_size), hidden_(hidden_size), opt_(opt) {
        POLYMATH_CHECK(input_size > 0 && hidden_size > 0 && opt.num_layers >= 1, "nn::LSTM", "bad sizes: input=",
                       input_size, " hidden=", hidden_size, " layers=", opt.num_layers);
        const double k = 1.0 / std::sqrt(double(hidden_size));
        const std::int64_t D = opt.bidirectional ? 2 : 1;
        for (std::int64_t l = 0; l < opt.num_layers; ++l)
            for (std::int64_t d = 0; d < D; ++d) {
                const std::int64_t in = l == 0 ? input_size : D * hidden_size;
                LSTMCellParams<T> p;
                p.w_ih = Var<T>(init::uniform<T>({4 * hidden_size, in}, -k, k, gen), true);
                p.w_hh = Var<T>(init::uniform<T>({4 * hidden_size, hidden_size}, -k, k, gen), true);
                if (opt.bias) {
                    p.b_ih = Var<T>(init::uniform<T>({4 * hidden_size}, -k, k, gen), true);
                    p.b_hh = Var<T>(init::uniform<T>({4 * hidden_size}, -k, k, gen), true);
                }
                cells_.push_back(p);
            }
    }

    // x [B, L, input_size]; optional h0, c0 [num_layers*D, B, H].
    LSTMOutput<T> forward(const Var<T>& x, const Var<T>& h0 = Var<T>(), const Var<T>& c0 = Var<T>()) const {
        POLYMATH_CHECK(!cells_.empty(), "nn::LSTM", "used before construction");
        POLYMATH_CHECK(x.dim() == 3 && x.size(2) == in_, "nn::LSTM", "input of shape ", x.shape(),
                       " must be [B, L, input_size=", in_, "]");
        const std::int64_t B = x.size(0), L = x.size(1), H = hidden_, D = opt_.bidirectional ? 2 : 1;
        const Shape state{opt_.num_layers * D, B, H};
        if (h0.defined()) POLYMATH_CHECK(h0.shape() == state, "nn::LSTM", "h0 of shape ", h0.shape(), " must be ", state);
        if (c0.defined()) POLYMATH_CHECK(c0.shape() == state, "nn::LSTM", "c0 of shape ", c0.shape(), " must be ", state);
        Var<T> layer_in = x;
        std::vector<Var<T>> hn, cn;
        for (std::int64_t l = 0; l < opt_.num_layers; ++l) {
            std::vector<Var<T>> dir_out;
            for (std::int64_t d = 0; d < D; ++d) {
                const auto& p = cells_[std::size_t(l * D + d)];
                // All steps' input projections in one GEMM: [B, L, 4H].
                Var<T> xp = matmul(layer_in, transpose(p.w_ih, 0, 1));
                if (p.b_ih.defined()) xp = add(xp, p.b_ih);
                if (p.b_hh.defined()) xp = add(xp, p.b_hh);
                const Var<T> w_hh_t = transpose(p.w_hh, 0, 1);
                Var<T> h = h0.defined() ? select(h0, 0, l * D + d) : Var<T>(Tensor<T>::zeros({B, H}));
                Var<T> c = c0.defined() ? select(c0, 0, l * D + d) : Var<T>(Tensor<T>::zeros({B, H}));
                std::vector<Var<T>> steps(static_cast<std::size_t>(L));
                for (std::int64_t s = 0; s < L; ++s) {
                    const std::int64_t t = d == 0 ? s : L - 1 - s;
                    Var<T> z = add(select(xp, 1, t), matmul(h, w_hh_t));  // [B, 4H]
                    Var<T> i = sigmoid(narrow(z, 1, 0, H));
                    Var<T> f = sigmoid(narrow(z, 1, H, H));
                    Var<T> g = tanh(narrow(z, 1, 2 * H, H));
                    Var<T> o = sigmoid(narrow(z, 1, 3 * H, H));
                    c = add(mul(f, c), mul(i, g));
                    h = mul(o, tanh(c));
                    steps[std::size_t(t)] = h;
                }
                dir_out.push_back(stack(steps, 1));  // [B, L, H]
                hn.push_back(h);
                cn.push_back(c);
            }
            layer_in = D == 1 ? dir_out[0] : concat(dir_out, 2);
            if (l + 1 < opt_.num_layers) layer_in = dropout(layer_in, opt_.dropout, this->is_training());
        }
        return {layer_in, stack(hn, 0), stack(cn, 0)};
    }
    LSTMOutput<T> operator()(const Var<T>& x, const Var<T>& h0 = Var<T>(), const Var<T>& c0 = Var<T>()) const {
        return forward(x, h0, c0);
    }

    std::int64_t hidden_size() const noexcept { return hidden_; }
    std::int64_t input_size() const noexcept { return in_; }
    const LSTMOptions& options() const noexcept { return opt_; }
    // Parameters of layer l, direction d (0 forward, 1 reverse).
    LSTMCellParams<T>& cell(std::int64_t l, std::int64_t d = 0) {
        return cells_.at(std::size_t(l * (opt_.bidirectional ? 2 : 1) + d));
    }

    template <class V>
    void visit(V& v) {
        const std::int64_t D = opt_.bidirectional ? 2 : 1;
        for (std::size_t idx = 0; idx < cells_.size(); ++idx) {
            const std::string suffix =
                "_l" + std::to_string(std::int64_t(idx) / D) + (std::int64_t(idx) % D == 1 ? "_reverse" : "");
            v.parameter("weight_ih" + suffix, cells_[idx].w_ih);
            v.parameter("weight_hh" + suffix, cells_[idx].w_hh);
            v.parameter("bias_ih" + suffix, cells_[idx].b_ih);
            v.parameter("bias_hh" + suffix, cells_[idx].b_hh);
        }
    }

private:
    std::int64_t in_ = 0, hidden_ = 0;
    LSTMOptions opt_;
    std::vector<LSTMCellParams<T>> cells_;
};

}  // namespace polymath::nn
