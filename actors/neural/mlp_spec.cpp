// What both backends share of a model: its size, the rules of a valid spec, and the initial
// parameters (so CPU and CUDA start from the same point). Compiled into the node and into the
// CUDA backend's library (actors/neural/cuda_backend.hpp).
#include "actors/neural/mlp.hpp"

#include <cmath>
#include <random>

namespace hub::neural {

size_t MlpSpec::parameter_count() const {
  size_t n = 0;
  for (size_t l = 0; l + 1 < layers.size(); ++l) n += size_t(layers[l]) * size_t(layers[l + 1]) + size_t(layers[l + 1]);
  return n;
}

std::string MlpSpec::validate() const {
  if (layers.size() < 2) return "layers: give at least an input and an output size, e.g. [2, 16, 1]";
  if (layers.size() > 16) return "layers: at most 16 layers";
  for (int n : layers)
    if (n < 1 || n > 65536) return "layers: every size must be from 1 to 65536";
  if (loss == Loss::cross_entropy && layers.back() < 2) return "cross_entropy needs at least 2 outputs (one per class)";
  if (!(learning_rate > 0 && learning_rate <= 10)) return "learning_rate: expected a number in (0, 10]";
  if (!(momentum >= 0 && momentum < 1)) return "momentum: expected a number in [0, 1)";
  if (parameter_count() > size_t(256) << 20) return "layers: more than 256 M parameters";
  return {};
}

std::vector<float> initial_parameters(const MlpSpec& spec) {
  std::vector<float> p;
  p.reserve(spec.parameter_count());
  std::mt19937_64 rng(spec.seed);
  for (size_t l = 0; l + 1 < spec.layers.size(); ++l) {
    int in = spec.layers[l], out = spec.layers[l + 1];
    float limit = std::sqrt(6.0f / float(in + out));
    std::uniform_real_distribution<float> dist(-limit, limit);
    for (int i = 0; i < in * out; ++i) p.push_back(dist(rng));
    p.insert(p.end(), size_t(out), 0.0f);
  }
  return p;
}

}  // namespace hub::neural
