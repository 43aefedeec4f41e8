// The CUDA backend: cuBLAS sgemm for the matrix products; kernels of our own for bias and
// activation, softmax, the output gradient, activation derivatives and the optimizer steps.
// Same parameter layout, initialisation and arithmetic as the CPU backend (row-major
// matrices: a row-major product C = A B is computed as the column-major C^T = B^T A^T).
#include "actors/neural/cuda_backend.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

namespace hub::neural {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string("cuBLAS ") + what + " failed (status " + std::to_string(int(s)) + ")");
}

constexpr int kThreads = 256;
int blocks(size_t n) { return int((n + kThreads - 1) / kThreads); }

// act: 0 relu, 1 tanh, 2 sigmoid, -1 none (output layer)
__global__ void bias_activate(float* z, const float* b, int rows, int cols, int act) {
  size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(rows) * cols) return;
  float v = z[i] + b[i % cols];
  if (act == 0) v = v > 0.f ? v : 0.f;
  else if (act == 1) v = tanhf(v);
  else if (act == 2) v = 1.f / (1.f + expf(-v));
  z[i] = v;
}

__global__ void softmax_rows(float* z, int rows, int cols) {
  int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  float* row = z + size_t(r) * cols;
  float m = row[0];
  for (int j = 1; j < cols; ++j) m = fmaxf(m, row[j]);
  float sum = 0.f;
  for (int j = 0; j < cols; ++j) sum += row[j] = expf(row[j] - m);
  for (int j = 0; j < cols; ++j) row[j] /= sum;
}

__global__ void output_delta(const float* p, const float* y, float* d, size_t n, float scale) {
  size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) d[i] = (p[i] - y[i]) * scale;
}

__global__ void activation_grad(float* g, const float* a, size_t n, int act) {
  size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float v = a[i];
  if (act == 0) g[i] = v > 0.f ? g[i] : 0.f;
  else if (act == 1) g[i] *= 1.f - v * v;
  else g[i] *= v * (1.f - v);
}

__global__ void sgd_step(float* w, float* m, const float* g, size_t n, float lr, float mu) {
  size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  m[i] = mu * m[i] - lr * g[i];
  w[i] += m[i];
}

__global__ void adam_step(float* w, float* m, float* v, const float* g, size_t n, float lr, float b1, float b2, float eps,
                          float c1, float c2) {
  size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float gi = g[i];
  m[i] = b1 * m[i] + (1.f - b1) * gi;
  v[i] = b2 * v[i] + (1.f - b2) * gi * gi;
  w[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
}

// Device memory owned by one object: moves, never copies (a copy would free twice).
struct Buffer {
  float* p = nullptr;
  size_t n = 0;
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : p(std::exchange(o.p, nullptr)), n(std::exchange(o.n, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    std::swap(p, o.p), std::swap(n, o.n);
    return *this;
  }
  void resize(size_t count) {
    if (count <= n) return;
    if (p) cudaFree(p);
    check(cudaMalloc(&p, count * sizeof(float)), "cudaMalloc");
    n = count;
  }
  void zero(size_t count) {
    resize(count);
    check(cudaMemset(p, 0, count * sizeof(float)), "cudaMemset");
  }
  ~Buffer() {
    if (p) cudaFree(p);
  }
};

struct Layer {
  int in = 0, out = 0;
  Buffer w, b, gw, gb, mw, mb, vw, vb;
};

class CudaMlp final : public Mlp {
 public:
  CudaMlp(const MlpSpec& spec, std::string device) : Mlp(spec), device_(std::move(device)) {
    check(cublasCreate(&blas_), "cublasCreate");
    for (size_t l = 0; l + 1 < spec.layers.size(); ++l) {
      auto L = std::make_unique<Layer>();
      L->in = spec.layers[l];
      L->out = spec.layers[l + 1];
      size_t nw = size_t(L->in) * size_t(L->out), nb = size_t(L->out);
      L->w.resize(nw), L->b.resize(nb), L->gw.resize(nw), L->gb.resize(nb);
      L->mw.zero(nw), L->mb.zero(nb), L->vw.zero(nw), L->vb.zero(nb);
      layers_.push_back(std::move(L));
    }
    set_parameters(initial_parameters(spec));
  }
  ~CudaMlp() override {
    if (blas_) cublasDestroy(blas_);
  }

  std::string backend() const override { return "cuda: " + device_; }

  void predict(const float* x, int rows, float* out) override {
    upload(x, nullptr, rows);
    forward(rows);
    download_output(out, rows);
  }

  float loss(const float* x, const float* y, int rows) override {
    upload(x, y, rows);
    forward(rows);
    return host_loss(y, rows);
  }

  float gradients(const float* x, const float* y, int rows, std::vector<float>& grad) override {
    upload(x, y, rows);
    forward(rows);
    float l = host_loss(y, rows);
    backward(rows);
    grad.clear();
    for (const auto& L : layers_) {
      size_t nw = size_t(L->in) * size_t(L->out);
      size_t at = grad.size();
      grad.resize(at + nw + size_t(L->out));
      check(cudaMemcpy(grad.data() + at, L->gw.p, nw * sizeof(float), cudaMemcpyDeviceToHost), "copy gradients");
      check(cudaMemcpy(grad.data() + at + nw, L->gb.p, size_t(L->out) * sizeof(float), cudaMemcpyDeviceToHost), "copy gradients");
    }
    return l;
  }

  float train_batch(const float* x, const float* y, int rows) override {
    upload(x, y, rows);
    forward(rows);
    float l = host_loss(y, rows);
    backward(rows);
    step();
    return l;
  }

  std::vector<float> parameters() const override {
    std::vector<float> p(spec_.parameter_count());
    size_t at = 0;
    for (const auto& L : layers_) {
      size_t nw = size_t(L->in) * size_t(L->out);
      check(cudaMemcpy(p.data() + at, L->w.p, nw * sizeof(float), cudaMemcpyDeviceToHost), "copy parameters");
      at += nw;
      check(cudaMemcpy(p.data() + at, L->b.p, size_t(L->out) * sizeof(float), cudaMemcpyDeviceToHost), "copy parameters");
      at += size_t(L->out);
    }
    return p;
  }

  void set_parameters(const std::vector<float>& values) override {
    if (values.size() != spec_.parameter_count()) throw std::invalid_argument("set_parameters: wrong number of values");
    size_t at = 0;
    for (auto& L : layers_) {
      size_t nw = size_t(L->in) * size_t(L->out);
      check(cudaMemcpy(L->w.p, values.data() + at, nw * sizeof(float), cudaMemcpyHostToDevice), "copy parameters");
      at += nw;
      check(cudaMemcpy(L->b.p, values.data() + at, size_t(L->out) * sizeof(float), cudaMemcpyHostToDevice), "copy parameters");
      at += size_t(L->out);
    }
  }

 private:
  int act_code() const { return spec_.hidden == Activation::relu ? 0 : spec_.hidden == Activation::tanh ? 1 : 2; }

  // Row-major C (m x n) = op(A) op(B), with op(A) m x k: the column-major C^T = op(B)^T op(A)^T.
  void gemm(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc) {
    const float one = 1.f, zero = 0.f;
    check(cublasSgemm(blas_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &one, b, ldb, a, lda,
                      &zero, c, ldc),
          "sgemm");
  }

  void upload(const float* x, const float* y, int rows) {
    int in = spec_.layers.front(), out = spec_.layers.back();
    x_.resize(size_t(rows) * size_t(in));
    check(cudaMemcpy(x_.p, x, size_t(rows) * size_t(in) * sizeof(float), cudaMemcpyHostToDevice), "copy inputs");
    if (y) {
      y_.resize(size_t(rows) * size_t(out));
      check(cudaMemcpy(y_.p, y, size_t(rows) * size_t(out) * sizeof(float), cudaMemcpyHostToDevice), "copy targets");
    }
    if (ones_.n < size_t(rows)) {
      std::vector<float> host(size_t(rows), 1.f);
      ones_.resize(size_t(rows));
      check(cudaMemcpy(ones_.p, host.data(), size_t(rows) * sizeof(float), cudaMemcpyHostToDevice), "copy ones");
    }
    acts_.resize(layers_.size());
  }

  void forward(int rows) {
    const float* in = x_.p;
    for (size_t l = 0; l < layers_.size(); ++l) {
      auto& L = *layers_[l];
      auto& a = acts_[l];
      size_t n = size_t(rows) * size_t(L.out);
      a.resize(n);
      gemm(false, false, rows, L.out, L.in, in, L.in, L.w.p, L.out, a.p, L.out);
      bool last = l + 1 == layers_.size();
      bias_activate<<<blocks(n), kThreads>>>(a.p, L.b.p, rows, L.out, last ? -1 : act_code());
      if (last && spec_.loss == Loss::cross_entropy) softmax_rows<<<blocks(size_t(rows)), kThreads>>>(a.p, rows, L.out);
      in = a.p;
    }
    check(cudaGetLastError(), "forward kernels");
  }

  void download_output(float* out, int rows) {
    size_t n = size_t(rows) * size_t(spec_.layers.back());
    check(cudaMemcpy(out, acts_.back().p, n * sizeof(float), cudaMemcpyDeviceToHost), "copy outputs");
  }

  float host_loss(const float* y, int rows) {
    size_t n = size_t(rows) * size_t(spec_.layers.back());
    host_out_.resize(n);
    download_output(host_out_.data(), rows);
    double sum = 0;
    if (spec_.loss == Loss::cross_entropy) {
      for (size_t i = 0; i < n; ++i)
        if (y[i] != 0) sum -= double(y[i]) * std::log(std::max(host_out_[i], 1e-12f));
    } else {
      for (size_t i = 0; i < n; ++i) sum += 0.5 * double(host_out_[i] - y[i]) * double(host_out_[i] - y[i]);
    }
    return float(sum / rows);
  }

  void backward(int rows) {
    size_t last = layers_.size() - 1;
    size_t n = size_t(rows) * size_t(layers_[last]->out);
    delta_.resize(n);
    output_delta<<<blocks(n), kThreads>>>(acts_[last].p, y_.p, delta_.p, n, 1.f / float(rows));
    const float one = 1.f, zero = 0.f;
    for (size_t l = last + 1; l-- > 0;) {
      auto& L = *layers_[l];
      const float* in = l == 0 ? x_.p : acts_[l - 1].p;
      gemm(true, false, L.in, L.out, rows, in, L.in, delta_.p, L.out, L.gw.p, L.out);
      // gb = column sums of delta: delta is column-major out x rows (ld out) times a ones vector.
      check(cublasSgemv(blas_, CUBLAS_OP_N, L.out, rows, &one, delta_.p, L.out, ones_.p, 1, &zero, L.gb.p, 1), "sgemv");
      if (l == 0) break;
      size_t np = size_t(rows) * size_t(L.in);
      prev_.resize(np);
      gemm(false, true, rows, L.in, L.out, delta_.p, L.out, L.w.p, L.out, prev_.p, L.in);
      activation_grad<<<blocks(np), kThreads>>>(prev_.p, acts_[l - 1].p, np, act_code());
      std::swap(delta_.p, prev_.p);
      std::swap(delta_.n, prev_.n);
    }
    check(cudaGetLastError(), "backward kernels");
  }

  void step() {
    ++t_;
    const float lr = spec_.learning_rate;
    for (auto& L : layers_) {
      size_t nw = size_t(L->in) * size_t(L->out), nb = size_t(L->out);
      if (spec_.optimizer == Optimizer::sgd) {
        sgd_step<<<blocks(nw), kThreads>>>(L->w.p, L->mw.p, L->gw.p, nw, lr, spec_.momentum);
        sgd_step<<<blocks(nb), kThreads>>>(L->b.p, L->mb.p, L->gb.p, nb, lr, spec_.momentum);
      } else {
        float c1 = 1.f - std::pow(spec_.beta1, float(t_)), c2 = 1.f - std::pow(spec_.beta2, float(t_));
        adam_step<<<blocks(nw), kThreads>>>(L->w.p, L->mw.p, L->vw.p, L->gw.p, nw, lr, spec_.beta1, spec_.beta2,
                                            spec_.epsilon, c1, c2);
        adam_step<<<blocks(nb), kThreads>>>(L->b.p, L->mb.p, L->vb.p, L->gb.p, nb, lr, spec_.beta1, spec_.beta2,
                                            spec_.epsilon, c1, c2);
      }
    }
    check(cudaGetLastError(), "optimizer kernels");
  }

  std::string device_;
  cublasHandle_t blas_ = nullptr;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Buffer> acts_;
  Buffer x_, y_, delta_, prev_, ones_;
  std::vector<float> host_out_;
  int64_t t_ = 0;
};

}  // namespace

namespace {

bool cuda_device(GpuInfo* info, std::string* why) {
  int count = 0;
  auto e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    if (why) *why = e != cudaSuccess ? std::string("no usable CUDA device: ") + cudaGetErrorString(e) : "no CUDA device";
    return false;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    if (why) *why = "cannot read the CUDA device's properties";
    return false;
  }
  if (info) {
    info->name = prop.name;
    info->memory_bytes = int64_t(prop.totalGlobalMem);
    info->compute_major = prop.major;
    info->compute_minor = prop.minor;
  }
  return true;
}

std::unique_ptr<Mlp> make_cuda_mlp(const MlpSpec& spec) {
  GpuInfo info;
  std::string why;
  if (!cuda_device(&info, &why)) throw std::runtime_error(why);
  return std::make_unique<CudaMlp>(spec, info.name);
}

// The cuBLAS sgemm ceiling for the numeric benchmark: GFLOP/s of an n x n x n product.
double cuda_sgemm_gflops(int n, int repeats) {
  Buffer a, b, c;
  a.zero(size_t(n) * n), b.zero(size_t(n) * n), c.zero(size_t(n) * n);
  cublasHandle_t h;
  check(cublasCreate(&h), "cublasCreate");
  const float one = 1.f, zero = 0.f;
  check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a.p, n, b.p, n, &zero, c.p, n), "warm-up sgemm");
  check(cudaDeviceSynchronize(), "warm-up");
  cudaEvent_t start, stop;
  cudaEventCreate(&start), cudaEventCreate(&stop);
  cudaEventRecord(start);
  for (int i = 0; i < repeats; ++i)
    check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a.p, n, b.p, n, &zero, c.p, n), "sgemm");
  cudaEventRecord(stop);
  check(cudaEventSynchronize(stop), "sgemm timing");
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start), cudaEventDestroy(stop);
  cublasDestroy(h);
  return 2.0 * double(n) * n * n * repeats / (double(ms) / 1000.0) / 1e9;
}

void cuda_synchronize() { check(cudaDeviceSynchronize(), "synchronize"); }

const CudaBackend kBackend{kCudaBackendVersion, cuda_device, make_cuda_mlp, cuda_sgemm_gflops, cuda_synchronize};

}  // namespace

}  // namespace hub::neural

// The one symbol libhub_neural_cuda.so exports (everything else is hidden).
extern "C" __attribute__((visibility("default"))) const hub::neural::CudaBackend* hub_neural_cuda_backend() {
  return &hub::neural::kBackend;
}
