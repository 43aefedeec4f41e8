// Which backend a model runs on (actors/neural/mlp.hpp: make_mlp, gpu_available), and the
// loading of the CUDA backend at run time (actors/neural/cuda_backend.hpp).
#include "actors/neural/cuda_backend.hpp"

#include <cblas.h>
#include <dlfcn.h>

#include <chrono>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace hub::neural {

namespace {

// Where the backend library is looked for: beside the program (build/, the package's
// directory), one folder up (build/tests/ runs the test suites), then the loader's own path.
std::vector<std::string> backend_candidates() {
  std::vector<std::string> out;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (auto dir = exe.parent_path(); !dir.empty() && out.size() < 2; dir = dir.parent_path())
      out.push_back((dir / kCudaBackendLibrary).string());
  out.push_back(kCudaBackendLibrary);
  return out;
}

}  // namespace

const CudaBackend* cuda_backend(std::string* why) {
  static std::once_flag once;
  static const CudaBackend* backend = nullptr;
  static std::string failure;
  std::call_once(once, [] {
#ifdef HUB_HAVE_CUDA
    std::string errors;
    for (const auto& path : backend_candidates()) {
      std::error_code ec;
      if (path.find('/') != std::string::npos && !std::filesystem::exists(path, ec)) continue;
      void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!handle) {
        // The first library found says best why it cannot be used (a CUDA library missing).
        const char* e = dlerror();
        if (errors.empty()) errors = e ? e : "dlopen failed";
        continue;
      }
      auto entry = reinterpret_cast<const CudaBackend* (*)()>(dlsym(handle, "hub_neural_cuda_backend"));
      const CudaBackend* table = entry ? entry() : nullptr;
      if (!table || table->version != kCudaBackendVersion) {
        errors = path + " is not this build's CUDA backend";
        dlclose(handle);
        continue;
      }
      backend = table;  // kept loaded for the life of the process
      return;
    }
    failure = "the CUDA backend could not be loaded (" + (errors.empty() ? std::string(kCudaBackendLibrary) + " not found" : errors) +
              "); running on the CPU";
#else
    failure = "this build has no CUDA backend (built without nvcc, or with -DHUB_CUDA=OFF)";
#endif
  });
  if (!backend && why) *why = failure;
  return backend;
}

double sgemm_gflops(bool gpu, int n, int repeats) {
  if (gpu) {
    std::string why;
    auto* cuda = cuda_backend(&why);
    if (!cuda) throw std::runtime_error(why);
    return cuda->sgemm_gflops(n, repeats);
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
  if (!gpu) return;
  if (auto* cuda = cuda_backend(nullptr)) cuda->synchronize();
}

bool gpu_available(GpuInfo* info, std::string* why) {
  auto* cuda = cuda_backend(why);
  return cuda && cuda->device(info, why);
}

std::unique_ptr<Mlp> make_mlp(const MlpSpec& spec, bool want_gpu, std::string* why) {
  if (auto bad = spec.validate(); !bad.empty()) throw std::invalid_argument(bad);
  if (!want_gpu) {
    if (why) *why = "[neural] gpu_enabled = false";
    return make_cpu_mlp(spec);
  }
  std::string reason;
  if (gpu_available(nullptr, &reason)) {
    try {
      return cuda_backend(nullptr)->make(spec);
    } catch (const std::exception& e) {
      reason = e.what();
    }
  }
  if (why) *why = reason;
  return make_cpu_mlp(spec);
}

}  // namespace hub::neural
