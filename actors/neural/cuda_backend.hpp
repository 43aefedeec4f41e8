// The seam between the node and its CUDA backend. The backend (actors/neural/cuda/) is a
// shared library of its own, libhub_neural_cuda.so, linked against CUDA's runtime and cuBLAS,
// and opened with dlopen() the first time a model asks for a GPU: the node binary itself never
// depends on CUDA's libraries, so one build runs on hosts with and without them.
#pragma once

#include "actors/neural/mlp.hpp"

#include <memory>
#include <string>

namespace hub::neural {

// What the library exports, as one table (extern "C" hub_neural_cuda_backend()).
struct CudaBackend {
  int version;  // kCudaBackendVersion: the table's layout
  bool (*device)(GpuInfo* info, std::string* why);
  std::unique_ptr<Mlp> (*make)(const MlpSpec& spec);
  double (*sgemm_gflops)(int n, int repeats);
  void (*synchronize)();
};

inline constexpr int kCudaBackendVersion = 1;
inline constexpr const char* kCudaBackendLibrary = "libhub_neural_cuda.so";

// The backend, loaded once (thread-safe); null when it cannot be, with the reason in *why
// (not built, or CUDA's libraries missing on this host: dlopen's message names the file).
const CudaBackend* cuda_backend(std::string* why);

}  // namespace hub::neural
