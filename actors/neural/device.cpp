// Which backend a model runs on (actors/neural/mlp.hpp: make_mlp, gpu_available).
#include "actors/neural/mlp.hpp"

#include <stdexcept>

namespace hub::neural {

#ifdef HUB_HAVE_CUDA
bool cuda_device(GpuInfo* info, std::string* why);      // neural/cuda/mlp_cuda.cu
std::unique_ptr<Mlp> make_cuda_mlp(const MlpSpec& spec);  // idem
#endif

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
