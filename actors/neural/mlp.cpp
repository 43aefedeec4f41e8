#include "actors/neural/mlp.hpp"

#include <nlohmann/json.hpp>

#include <cstring>
#include <random>

namespace hub::neural {

using json = nlohmann::json;

std::string to_string(Activation a) { return a == Activation::relu ? "relu" : a == Activation::tanh ? "tanh" : "sigmoid"; }
std::string to_string(Loss l) { return l == Loss::mse ? "mse" : "cross_entropy"; }
std::string to_string(Optimizer o) { return o == Optimizer::sgd ? "sgd" : "adam"; }
bool parse(const std::string& s, Activation& out) {
  if (s == "relu") out = Activation::relu;
  else if (s == "tanh") out = Activation::tanh;
  else if (s == "sigmoid") out = Activation::sigmoid;
  else return false;
  return true;
}
bool parse(const std::string& s, Loss& out) {
  if (s == "mse") out = Loss::mse;
  else if (s == "cross_entropy") out = Loss::cross_entropy;
  else return false;
  return true;
}
bool parse(const std::string& s, Optimizer& out) {
  if (s == "sgd") out = Optimizer::sgd;
  else if (s == "adam") out = Optimizer::adam;
  else return false;
  return true;
}

namespace {
constexpr char kMagic[8] = {'H', 'U', 'B', 'M', 'L', 'P', '0', '1'};

json spec_json(const MlpSpec& s) {
  return json{{"layers", s.layers},       {"activation", to_string(s.hidden)}, {"loss", to_string(s.loss)},
              {"optimizer", to_string(s.optimizer)}, {"learning_rate", s.learning_rate}, {"momentum", s.momentum},
              {"beta1", s.beta1},         {"beta2", s.beta2},                  {"epsilon", s.epsilon},
              {"seed", s.seed}};
}
}  // namespace

std::string save_model(const Mlp& model) {
  auto header = spec_json(model.spec()).dump();
  auto params = model.parameters();
  std::string out(kMagic, sizeof kMagic);
  uint32_t hlen = uint32_t(header.size());
  uint64_t count = params.size();
  out.append(reinterpret_cast<const char*>(&hlen), sizeof hlen);
  out += header;
  out.append(reinterpret_cast<const char*>(&count), sizeof count);
  out.append(reinterpret_cast<const char*>(params.data()), params.size() * sizeof(float));
  return out;
}

std::unique_ptr<Mlp> load_model(const std::string& bytes, bool want_gpu, std::string* error) {
  auto fail = [&](const std::string& why) -> std::unique_ptr<Mlp> {
    if (error) *error = why;
    return nullptr;
  };
  if (bytes.size() < sizeof kMagic + 4 || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    return fail("not a saved model (bad header)");
  uint32_t hlen = 0;
  std::memcpy(&hlen, bytes.data() + sizeof kMagic, sizeof hlen);
  size_t at = sizeof kMagic + sizeof hlen;
  if (bytes.size() < at + hlen + 8) return fail("truncated model");
  auto header = json::parse(bytes.substr(at, hlen), nullptr, false);
  at += hlen;
  if (header.is_discarded() || !header.contains("layers")) return fail("unreadable model header");
  MlpSpec spec;
  try {
    spec.layers = header["layers"].get<std::vector<int>>();
    if (!parse(header["activation"].get<std::string>(), spec.hidden) || !parse(header["loss"].get<std::string>(), spec.loss) ||
        !parse(header["optimizer"].get<std::string>(), spec.optimizer))
      return fail("unknown activation, loss or optimizer in the model header");
    spec.learning_rate = header["learning_rate"].get<float>();
    spec.momentum = header["momentum"].get<float>();
    spec.beta1 = header["beta1"].get<float>();
    spec.beta2 = header["beta2"].get<float>();
    spec.epsilon = header["epsilon"].get<float>();
    spec.seed = header["seed"].get<uint64_t>();
  } catch (const std::exception& e) {
    return fail(std::string("model header: ") + e.what());
  }
  if (auto why = spec.validate(); !why.empty()) return fail(why);
  uint64_t count = 0;
  std::memcpy(&count, bytes.data() + at, sizeof count);
  at += sizeof count;
  if (count != spec.parameter_count() || bytes.size() != at + count * sizeof(float))
    return fail("the parameters do not match the layers");
  std::vector<float> params(count);
  std::memcpy(params.data(), bytes.data() + at, count * sizeof(float));
  auto model = make_mlp(spec, want_gpu);
  model->set_parameters(params);
  return model;
}

}  // namespace hub::neural
