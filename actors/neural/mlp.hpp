// A small multi-layer perceptron: dense layers, ReLU/tanh/sigmoid hidden activations, a
// linear output trained with mean squared error or a softmax output trained with
// cross-entropy, SGD with momentum or Adam, mini-batches, float32, seeded initialisation.
// Two backends behind this one interface: the CPU (OpenBLAS sgemm) and CUDA (cuBLAS sgemm
// and kernels of our own, actors/neural/cuda/), chosen by make_mlp().
// Matrices are row-major: a batch is `rows x features`. Calls block: run them off the actor
// scheduler (the neural workers are detached actors).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hub::neural {

enum class Activation { relu, tanh, sigmoid };
enum class Loss { mse, cross_entropy };
enum class Optimizer { sgd, adam };

struct MlpSpec {
  std::vector<int> layers;  // sizes, input first, output last (at least 2)
  Activation hidden = Activation::relu;
  Loss loss = Loss::mse;
  Optimizer optimizer = Optimizer::adam;
  float learning_rate = 1e-3f;
  float momentum = 0.9f;  // SGD
  float beta1 = 0.9f, beta2 = 0.999f, epsilon = 1e-8f;  // Adam
  uint64_t seed = 42;

  size_t parameter_count() const;  // weights and biases of every layer
  std::string validate() const;     // "" or what is wrong
};

std::string to_string(Activation a);
std::string to_string(Loss l);
std::string to_string(Optimizer o);
bool parse(const std::string& s, Activation& out);
bool parse(const std::string& s, Loss& out);
bool parse(const std::string& s, Optimizer& out);

class Mlp {
 public:
  virtual ~Mlp() = default;
  virtual std::string backend() const = 0;  // "cpu" or "cuda: <device>"
  const MlpSpec& spec() const { return spec_; }

  // out: rows x outputs (softmax probabilities with cross-entropy, else the linear output).
  virtual void predict(const float* x, int rows, float* out) = 0;
  // One optimizer step on a mini-batch; returns the batch's mean loss before the step.
  virtual float train_batch(const float* x, const float* y, int rows) = 0;
  // The gradient of the mean loss over the batch, no step taken (for gradient checks).
  virtual float gradients(const float* x, const float* y, int rows, std::vector<float>& grad) = 0;
  // The mean loss over the batch.
  virtual float loss(const float* x, const float* y, int rows) = 0;

  // All parameters, layer by layer: W (in x out, row-major) then b (out).
  virtual std::vector<float> parameters() const = 0;
  virtual void set_parameters(const std::vector<float>& values) = 0;

 protected:
  explicit Mlp(MlpSpec spec) : spec_(std::move(spec)) {}
  MlpSpec spec_;
};

// The CPU backend; the spec must validate.
std::unique_ptr<Mlp> make_cpu_mlp(const MlpSpec& spec);

// Which device a model should use. When `want_gpu` and a CUDA device exists (and this build
// has the CUDA backend): the CUDA backend; else the CPU one, and `why` says why not CUDA.
std::unique_ptr<Mlp> make_mlp(const MlpSpec& spec, bool want_gpu, std::string* why = nullptr);

// The GPU this process can use, if any ("" when none): name and memory.
struct GpuInfo {
  std::string name;
  int64_t memory_bytes = 0;
  int compute_major = 0, compute_minor = 0;
};
bool gpu_available(GpuInfo* info = nullptr, std::string* why = nullptr);

// A model as bytes (spec and parameters; float32 little-endian), and back. Round trips are
// bit-exact.
std::string save_model(const Mlp& model);
std::unique_ptr<Mlp> load_model(const std::string& bytes, bool want_gpu, std::string* error);

// The matrix-product ceiling of a backend: GFLOP/s of an n x n x n sgemm (OpenBLAS on the
// CPU, cuBLAS on the GPU), averaged over `repeats` products after a warm-up.
double sgemm_gflops(bool gpu, int n, int repeats);
// Waits for queued GPU work (no-op on the CPU), for timing.
void synchronize(bool gpu);

// Parameter initialisation shared by the backends (so CPU and CUDA start from the same point):
// Glorot-uniform weights from the spec's seed, zero biases.
std::vector<float> initial_parameters(const MlpSpec& spec);

}  // namespace hub::neural
