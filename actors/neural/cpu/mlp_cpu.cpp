// The CPU backend: OpenBLAS sgemm for every matrix product, plain loops for the rest.
#include "actors/neural/mlp.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace hub::neural {

namespace {

struct Layer {
  int in = 0, out = 0;
  std::vector<float> w, b;    // in x out, out
  std::vector<float> gw, gb;  // gradients
  std::vector<float> mw, mb;  // momentum / Adam first moment
  std::vector<float> vw, vb;  // Adam second moment
};

class CpuMlp final : public Mlp {
 public:
  explicit CpuMlp(const MlpSpec& spec) : Mlp(spec) {
    for (size_t l = 0; l + 1 < spec.layers.size(); ++l) {
      Layer L;
      L.in = spec.layers[l];
      L.out = spec.layers[l + 1];
      size_t nw = size_t(L.in) * size_t(L.out);
      L.w.resize(nw);
      L.b.resize(size_t(L.out));
      L.gw.assign(nw, 0);
      L.gb.assign(size_t(L.out), 0);
      L.mw.assign(nw, 0);
      L.mb.assign(size_t(L.out), 0);
      if (spec.optimizer == Optimizer::adam) {
        L.vw.assign(nw, 0);
        L.vb.assign(size_t(L.out), 0);
      }
      layers_.push_back(std::move(L));
    }
    set_parameters(initial_parameters(spec));
  }

  std::string backend() const override { return "cpu"; }

  void predict(const float* x, int rows, float* out) override {
    forward(x, rows);
    const auto& last = acts_.back();
    std::copy(last.begin(), last.begin() + ptrdiff_t(rows) * layers_.back().out, out);
  }

  float loss(const float* x, const float* y, int rows) override {
    forward(x, rows);
    return batch_loss(y, rows);
  }

  float gradients(const float* x, const float* y, int rows, std::vector<float>& grad) override {
    forward(x, rows);
    float l = batch_loss(y, rows);
    backward(x, y, rows);
    grad.clear();
    for (const auto& L : layers_) {
      grad.insert(grad.end(), L.gw.begin(), L.gw.end());
      grad.insert(grad.end(), L.gb.begin(), L.gb.end());
    }
    return l;
  }

  float train_batch(const float* x, const float* y, int rows) override {
    forward(x, rows);
    float l = batch_loss(y, rows);
    backward(x, y, rows);
    step();
    return l;
  }

  std::vector<float> parameters() const override {
    std::vector<float> p;
    p.reserve(spec_.parameter_count());
    for (const auto& L : layers_) {
      p.insert(p.end(), L.w.begin(), L.w.end());
      p.insert(p.end(), L.b.begin(), L.b.end());
    }
    return p;
  }

  void set_parameters(const std::vector<float>& values) override {
    if (values.size() != spec_.parameter_count()) throw std::invalid_argument("set_parameters: wrong number of values");
    size_t at = 0;
    for (auto& L : layers_) {
      std::copy(values.begin() + ptrdiff_t(at), values.begin() + ptrdiff_t(at + L.w.size()), L.w.begin());
      at += L.w.size();
      std::copy(values.begin() + ptrdiff_t(at), values.begin() + ptrdiff_t(at + L.b.size()), L.b.begin());
      at += L.b.size();
    }
  }

 private:
  // acts_[l]: the output of layer l (rows x out), after its activation (softmax for the
  // last layer with cross-entropy, identity for the last layer with mse).
  void forward(const float* x, int rows) {
    acts_.resize(layers_.size());
    const float* in = x;
    for (size_t l = 0; l < layers_.size(); ++l) {
      auto& L = layers_[l];
      auto& a = acts_[l];
      a.resize(size_t(rows) * size_t(L.out));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, L.out, L.in, 1.0f, in, L.in, L.w.data(), L.out, 0.0f,
                  a.data(), L.out);
      bool last = l + 1 == layers_.size();
      for (int r = 0; r < rows; ++r) {
        float* row = a.data() + size_t(r) * size_t(L.out);
        for (int j = 0; j < L.out; ++j) row[j] += L.b[size_t(j)];
        if (!last) {
          activate(row, L.out);
        } else if (spec_.loss == Loss::cross_entropy) {
          float m = *std::max_element(row, row + L.out), sum = 0;
          for (int j = 0; j < L.out; ++j) sum += row[j] = std::exp(row[j] - m);
          for (int j = 0; j < L.out; ++j) row[j] /= sum;
        }
      }
      in = a.data();
    }
  }

  void activate(float* v, int n) const {
    switch (spec_.hidden) {
      case Activation::relu:
        for (int i = 0; i < n; ++i) v[i] = v[i] > 0 ? v[i] : 0;
        break;
      case Activation::tanh:
        for (int i = 0; i < n; ++i) v[i] = std::tanh(v[i]);
        break;
      case Activation::sigmoid:
        for (int i = 0; i < n; ++i) v[i] = 1.0f / (1.0f + std::exp(-v[i]));
        break;
    }
  }

  // Multiplies the gradient by the activation's derivative, from the activation's output.
  void activation_grad(float* g, const float* a, size_t n) const {
    switch (spec_.hidden) {
      case Activation::relu:
        for (size_t i = 0; i < n; ++i) g[i] = a[i] > 0 ? g[i] : 0;
        break;
      case Activation::tanh:
        for (size_t i = 0; i < n; ++i) g[i] *= 1.0f - a[i] * a[i];
        break;
      case Activation::sigmoid:
        for (size_t i = 0; i < n; ++i) g[i] *= a[i] * (1.0f - a[i]);
        break;
    }
  }

  float batch_loss(const float* y, int rows) const {
    const auto& p = acts_.back();
    size_t n = size_t(rows) * size_t(layers_.back().out);
    double sum = 0;
    if (spec_.loss == Loss::cross_entropy) {
      for (size_t i = 0; i < n; ++i)
        if (y[i] != 0) sum -= double(y[i]) * std::log(std::max(p[i], 1e-12f));
    } else {
      for (size_t i = 0; i < n; ++i) sum += 0.5 * double(p[i] - y[i]) * double(p[i] - y[i]);
    }
    return float(sum / rows);
  }

  void backward(const float* x, const float* y, int rows) {
    size_t last = layers_.size() - 1;
    // dL/dz of the output: (p - y) / rows for softmax + cross-entropy and for identity + mse.
    delta_.resize(acts_[last].size());
    float scale = 1.0f / float(rows);
    for (size_t i = 0; i < delta_.size(); ++i) delta_[i] = (acts_[last][i] - y[i]) * scale;
    for (size_t l = last + 1; l-- > 0;) {
      auto& L = layers_[l];
      const float* in = l == 0 ? x : acts_[l - 1].data();
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L.in, L.out, rows, 1.0f, in, L.in, delta_.data(), L.out, 0.0f,
                  L.gw.data(), L.out);
      std::fill(L.gb.begin(), L.gb.end(), 0.0f);
      for (int r = 0; r < rows; ++r) {
        const float* d = delta_.data() + size_t(r) * size_t(L.out);
        for (int j = 0; j < L.out; ++j) L.gb[size_t(j)] += d[j];
      }
      if (l == 0) break;
      prev_.resize(size_t(rows) * size_t(L.in));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, L.in, L.out, 1.0f, delta_.data(), L.out, L.w.data(), L.out,
                  0.0f, prev_.data(), L.in);
      activation_grad(prev_.data(), acts_[l - 1].data(), prev_.size());
      delta_.swap(prev_);
    }
  }

  void step() {
    ++t_;
    const float lr = spec_.learning_rate;
    if (spec_.optimizer == Optimizer::sgd) {
      const float mu = spec_.momentum;
      auto update = [&](std::vector<float>& w, std::vector<float>& m, const std::vector<float>& g) {
        for (size_t i = 0; i < w.size(); ++i) {
          m[i] = mu * m[i] - lr * g[i];
          w[i] += m[i];
        }
      };
      for (auto& L : layers_) update(L.w, L.mw, L.gw), update(L.b, L.mb, L.gb);
      return;
    }
    const float b1 = spec_.beta1, b2 = spec_.beta2, eps = spec_.epsilon;
    const float c1 = 1.0f - std::pow(b1, float(t_)), c2 = 1.0f - std::pow(b2, float(t_));
    auto update = [&](std::vector<float>& w, std::vector<float>& m, std::vector<float>& v, const std::vector<float>& g) {
      for (size_t i = 0; i < w.size(); ++i) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        w[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps);
      }
    };
    for (auto& L : layers_) update(L.w, L.mw, L.vw, L.gw), update(L.b, L.mb, L.vb, L.gb);
  }

  std::vector<Layer> layers_;
  std::vector<std::vector<float>> acts_;
  std::vector<float> delta_, prev_;
  int64_t t_ = 0;
};

}  // namespace

std::unique_ptr<Mlp> make_cpu_mlp(const MlpSpec& spec) {
  if (auto why = spec.validate(); !why.empty()) throw std::invalid_argument(why);
  return std::make_unique<CpuMlp>(spec);
}

}  // namespace hub::neural
