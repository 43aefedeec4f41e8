// The numeric benchmark (issue #8, `mlp_train`): training samples/s of a [256, 1024, 1024, 10]
// MLP at batch 1024 next to the sgemm GFLOP/s of the same BLAS in the same run.
//   neural_bench mlp_train cpu|cuda [SECONDS]
// Prints one JSON line. Training FLOPs per sample: 6 x the weights (2 forward, 4 backward).
#include "actors/neural/mlp.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>
#include <random>

using namespace hub::neural;

int main(int argc, char** argv) {
  if (argc < 3 || std::string(argv[1]) != "mlp_train") {
    std::cerr << "usage: neural_bench mlp_train cpu|cuda [SECONDS]\n";
    return 2;
  }
  bool gpu = std::string(argv[2]) == "cuda";
  double seconds = argc > 3 ? std::atof(argv[3]) : 10.0;
  std::string why;
  if (gpu && !gpu_available(nullptr, &why)) {
    std::cout << nlohmann::json{{"figure", "mlp_train"}, {"backend", "cuda"}, {"skipped", why}}.dump() << std::endl;
    return 0;
  }
  MlpSpec spec;
  spec.layers = {256, 1024, 1024, 10};
  spec.loss = Loss::cross_entropy;
  spec.optimizer = Optimizer::adam;
  auto model = make_mlp(spec, gpu, &why);
  const int batch = 1024;
  std::mt19937 rng{1};
  std::normal_distribution<float> n(0, 1);
  std::vector<float> x(size_t(batch) * 256), y(size_t(batch) * 10, 0.f);
  for (auto& v : x) v = n(rng);
  for (int r = 0; r < batch; ++r) y[size_t(r) * 10 + size_t(r % 10)] = 1.f;
  double weights = 0;
  for (size_t l = 0; l + 1 < spec.layers.size(); ++l) weights += double(spec.layers[l]) * spec.layers[l + 1];
  double ceiling = sgemm_gflops(gpu, 1024, gpu ? 200 : 20);
  for (int i = 0; i < 3; ++i) model->train_batch(x.data(), y.data(), batch);  // warm-up
  synchronize(gpu);
  int steps = 0;
  auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    model->train_batch(x.data(), y.data(), batch);
    ++steps;
    synchronize(gpu);
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  double samples = double(steps) * batch / elapsed;
  double gflops = samples * 6.0 * weights / 1e9;
  std::cout << nlohmann::json{{"figure", "mlp_train"},
                              {"backend", model->backend()},
                              {"layers", spec.layers},
                              {"batch", batch},
                              {"steps", steps},
                              {"samples_per_second", samples},
                              {"training_gflops", gflops},
                              {"sgemm_gflops", ceiling},
                              {"ratio_to_sgemm", gflops / ceiling}}
                   .dump()
            << std::endl;
  return 0;
}
