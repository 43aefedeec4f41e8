// Which backend a model runs on (actors/neural/mlp.hpp: make_mlp, gpu_available).
#include "actors/neural/mlp.hpp"

#include <cblas.h>

#include <chrono>
#include <stdexcept>
#include <vector>

namespace hub::neural {

#ifdef HUB_HAVE_CUDA
bool cuda_device(GpuInfo* info, std::string* why);      // neural/cuda/mlp_cuda.cu
std::unique_ptr<Mlp> make_cuda_mlp(const MlpSpec& spec);  // idem
double cuda_sgemm_gflops(int n, int repeats);            // idem
void cuda_synchronize();                                 // idem
#endif

double sgemm_gflops(bool gpu, int n, int repeats) {
  if (gpu) {
#ifdef HUB_HAVE_CUDA
    return cuda_sgemm_gflops(n, repeats);
#else
    throw std::runtime_error("this build has no CUDA backend");
#endif
  }
  std::vector<float> a(size_t(n) * size_t(n), 0.5f), b(a), c(a.size());
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < repeats; ++i)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return 2.0 * double(n) * n * n * repeats / seconds / 1e9;
}

void synchronize(bool gpu) {
#ifdef HUB_HAVE_CUDA
  if (gpu) cuda_synchronize();
#else
  (void)gpu;
#endif
}

bool gpu_available(GpuInfo* info, std::string* why) {
#ifdef HUB_HAVE_CUDA
  return cuda_device(info, why);
#else
  (void)info;
  if (why) *why = "this build has no CUDA backend (built without nvcc, or with -DHUB_CUDA=OFF)";
  return false;
#endif
}

std::unique_ptr<Mlp> make_mlp(const MlpSpec& spec, bool want_gpu, std::string* why) {
  if (auto bad = spec.validate(); !bad.empty()) throw std::invalid_argument(bad);
  if (!want_gpu) {
    if (why) *why = "[neural] gpu_enabled = false";
    return make_cpu_mlp(spec);
  }
  std::string reason;
  if (gpu_available(nullptr, &reason)) {
#ifdef HUB_HAVE_CUDA
    try {
      return make_cuda_mlp(spec);
    } catch (const std::exception& e) {
      reason = e.what();
    }
#endif
  }
  if (why) *why = reason;
  return make_cpu_mlp(spec);
}

}  // namespace hub::neural
