// The MLP engine: gradients against finite differences for every activation and loss, a
// real learning problem (two interleaved spirals), bit-exact save/load, and CPU/CUDA
// agreement (skipped, saying why, when no GPU is present).
#define BOOST_TEST_MODULE mlp
#include <boost/test/unit_test.hpp>

#include "actors/neural/mlp.hpp"

#include <cmath>
#include <cstring>
#include <random>

using namespace hub::neural;

namespace {

struct Data {
  std::vector<float> x, y;
  int rows = 0;
};

Data random_batch(int rows, int in, int out, bool one_hot, uint64_t seed) {
  std::mt19937 rng{static_cast<uint32_t>(seed)};
  std::normal_distribution<float> n(0, 1);
  Data d;
  d.rows = rows;
  for (int i = 0; i < rows * in; ++i) d.x.push_back(n(rng));
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < out; ++j) d.y.push_back(one_hot ? (j == r % out ? 1.f : 0.f) : n(rng));
  return d;
}

// Two interleaved spirals, `per_class` points each, with a little noise.
Data spirals(int per_class, uint64_t seed) {
  std::mt19937 rng{static_cast<uint32_t>(seed)};
  std::normal_distribution<float> noise(0, 0.02f);
  Data d;
  for (int c = 0; c < 2; ++c)
    for (int i = 0; i < per_class; ++i) {
      float t = 0.25f + 3.0f * float(M_PI) * float(i) / float(per_class);
      float r = t / (3.0f * float(M_PI) + 0.25f);
      float angle = t + float(c) * float(M_PI);
      d.x.push_back(r * std::cos(angle) + noise(rng));
      d.x.push_back(r * std::sin(angle) + noise(rng));
      d.y.push_back(c == 0 ? 1.f : 0.f);
      d.y.push_back(c == 1 ? 1.f : 0.f);
      ++d.rows;
    }
  return d;
}

void gradient_check(Activation act, Loss loss) {
  MlpSpec spec;
  spec.layers = {3, 6, 5, loss == Loss::cross_entropy ? 4 : 2};
  spec.hidden = act;
  spec.loss = loss;
  spec.seed = 7;
  auto model = make_cpu_mlp(spec);
  auto d = random_batch(5, 3, spec.layers.back(), loss == Loss::cross_entropy, 11);
  std::vector<float> grad;
  model->gradients(d.x.data(), d.y.data(), d.rows, grad);
  auto params = model->parameters();
  BOOST_REQUIRE_EQUAL(grad.size(), params.size());
  const float eps = 1e-2f;
  int bad = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    auto p = params;
    p[i] = params[i] + eps;
    model->set_parameters(p);
    double up = model->loss(d.x.data(), d.y.data(), d.rows);
    p[i] = params[i] - eps;
    model->set_parameters(p);
    double down = model->loss(d.x.data(), d.y.data(), d.rows);
    double numeric = (up - down) / (2.0 * eps);
    double diff = std::abs(numeric - grad[i]);
    // ReLU kinks make a few central differences meaningless; everything else must agree.
    if (diff > 2e-3 + 2e-2 * std::abs(numeric)) ++bad;
  }
  model->set_parameters(params);
  BOOST_TEST_MESSAGE(to_string(act) << "/" << to_string(loss) << ": " << bad << " of " << params.size() << " gradients off");
  BOOST_TEST(bad <= (act == Activation::relu ? 2 : 0));
}

}  // namespace

BOOST_AUTO_TEST_CASE(gradients_match_finite_differences_for_every_activation_and_loss) {
  for (auto act : {Activation::relu, Activation::tanh, Activation::sigmoid})
    for (auto loss : {Loss::mse, Loss::cross_entropy}) gradient_check(act, loss);
}

BOOST_AUTO_TEST_CASE(two_interleaved_spirals_are_learned_to_95_percent) {
  auto d = spirals(500, 3);
  MlpSpec spec;
  spec.layers = {2, 64, 64, 2};
  spec.hidden = Activation::relu;
  spec.loss = Loss::cross_entropy;
  spec.optimizer = Optimizer::adam;
  spec.learning_rate = 0.01f;
  spec.seed = 1;
  auto model = make_cpu_mlp(spec);
  std::mt19937 rng(5);
  std::vector<int> order(size_t(d.rows));
  for (int i = 0; i < d.rows; ++i) order[size_t(i)] = i;
  const int batch = 50;
  std::vector<float> bx(batch * 2), by(batch * 2);
  float first = 0, last = 0;
  for (int epoch = 0; epoch < 400; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    float sum = 0;
    for (int b = 0; b + batch <= d.rows; b += batch) {
      for (int i = 0; i < batch; ++i) {
        int r = order[size_t(b + i)];
        std::copy_n(&d.x[size_t(r) * 2], 2, &bx[size_t(i) * 2]);
        std::copy_n(&d.y[size_t(r) * 2], 2, &by[size_t(i) * 2]);
      }
      sum += model->train_batch(bx.data(), by.data(), batch);
    }
    (epoch == 0 ? first : last) = sum;
  }
  std::vector<float> out(size_t(d.rows) * 2);
  model->predict(d.x.data(), d.rows, out.data());
  int right = 0;
  for (int r = 0; r < d.rows; ++r) right += (out[size_t(r) * 2 + 1] > out[size_t(r) * 2]) == (d.y[size_t(r) * 2 + 1] > 0.5f);
  double accuracy = double(right) / d.rows;
  BOOST_TEST_MESSAGE("spirals: accuracy " << accuracy << ", epoch loss " << first << " -> " << last);
  BOOST_TEST(accuracy >= 0.95);
  BOOST_TEST(last < first);
}

BOOST_AUTO_TEST_CASE(sgd_with_momentum_fits_a_linear_function) {
  MlpSpec spec;
  spec.layers = {3, 16, 1};
  spec.optimizer = Optimizer::sgd;
  spec.learning_rate = 0.05f;
  auto model = make_cpu_mlp(spec);
  auto d = random_batch(256, 3, 1, false, 2);
  for (int r = 0; r < d.rows; ++r) d.y[size_t(r)] = 0.5f * d.x[size_t(r) * 3] - d.x[size_t(r) * 3 + 1] + 0.25f;
  float start = model->loss(d.x.data(), d.y.data(), d.rows);
  for (int i = 0; i < 500; ++i) model->train_batch(d.x.data(), d.y.data(), d.rows);
  float end = model->loss(d.x.data(), d.y.data(), d.rows);
  BOOST_TEST_MESSAGE("linear fit: mse " << start << " -> " << end);
  BOOST_TEST(end < 0.01f * start);
}

BOOST_AUTO_TEST_CASE(save_and_load_round_trip_bit_exactly) {
  MlpSpec spec;
  spec.layers = {4, 8, 3};
  spec.loss = Loss::cross_entropy;
  auto model = make_cpu_mlp(spec);
  auto d = random_batch(16, 4, 3, true, 9);
  for (int i = 0; i < 20; ++i) model->train_batch(d.x.data(), d.y.data(), d.rows);
  auto bytes = save_model(*model);
  std::string error;
  auto again = load_model(bytes, false, &error);
  BOOST_REQUIRE_MESSAGE(again, error);
  auto a = model->parameters(), b = again->parameters();
  BOOST_REQUIRE_EQUAL(a.size(), b.size());
  BOOST_TEST(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  BOOST_TEST(save_model(*again) == bytes);
  std::vector<float> pa(16 * 3), pb(16 * 3);
  model->predict(d.x.data(), d.rows, pa.data());
  again->predict(d.x.data(), d.rows, pb.data());
  BOOST_TEST(std::memcmp(pa.data(), pb.data(), pa.size() * sizeof(float)) == 0);
  BOOST_TEST(!load_model(bytes.substr(0, bytes.size() - 3), false, &error));
  BOOST_TEST(error.find("parameters") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(cpu_and_cuda_agree_within_1e_4) {
  std::string why;
  GpuInfo gpu;
  if (!gpu_available(&gpu, &why)) {
    BOOST_TEST_MESSAGE("SKIPPED: CPU/CUDA agreement needs a GPU: " << why);
    return;
  }
  MlpSpec spec;
  spec.layers = {32, 64, 64, 10};
  spec.loss = Loss::cross_entropy;
  auto cpu = make_cpu_mlp(spec);
  auto gpu_model = make_mlp(spec, true, &why);
  BOOST_REQUIRE_MESSAGE(gpu_model->backend().rfind("cuda", 0) == 0, why);
  auto d = random_batch(128, 32, 10, true, 4);
  for (int i = 0; i < 10; ++i) {
    cpu->train_batch(d.x.data(), d.y.data(), d.rows);
    gpu_model->train_batch(d.x.data(), d.y.data(), d.rows);
  }
  std::vector<float> a(128 * 10), b(128 * 10);
  cpu->predict(d.x.data(), d.rows, a.data());
  gpu_model->predict(d.x.data(), d.rows, b.data());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(double(a[i]) - b[i]) / std::max(1e-3, std::abs(double(a[i]))));
  BOOST_TEST_MESSAGE("CPU vs " << gpu_model->backend() << ": worst relative difference " << worst);
  BOOST_TEST(worst <= 1e-4);
}
