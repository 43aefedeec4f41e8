#include "actors/neural/worker.hpp"

#include "actors/neural/mlp.hpp"
#include "actors/supervisor.hpp"
#include "runtime/instrumented.hpp"
#include "runtime/clock.hpp"
#include "runtime/metrics.hpp"
#include "runtime/store/store.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <unordered_map>

namespace hub::actors {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::mutex progress_mutex;
std::unordered_map<std::string, std::string> progress_by_task;

void set_progress(const std::string& task_id, const json& p) {
  std::lock_guard<std::mutex> lock(progress_mutex);
  progress_by_task[task_id] = p.dump();
}
void clear_progress(const std::string& task_id) {
  std::lock_guard<std::mutex> lock(progress_mutex);
  progress_by_task.erase(task_id);
}

// A job's refusal: names the payload field and the rule.
struct JobError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Outcome job_failed(const std::string& message, bool retryable = false) {
  Outcome o;
  o.error_type = "failed";
  o.error_message = message;
  o.retryable = retryable;
  return o;
}

// A table of numbers and (for the target) labels, from inline rows or a CSV file.
struct Table {
  std::vector<std::string> columns;
  std::vector<std::vector<json>> rows;
};

Table table_from_rows(const json& data) {
  Table t;
  if (!data.is_array() || data.empty()) throw JobError("payload.data: expected a non-empty array of rows");
  if (data.size() > 1'000'000) throw JobError("payload.data: at most 1,000,000 rows");
  if (data[0].is_object()) {
    for (auto it = data[0].begin(); it != data[0].end(); ++it) t.columns.push_back(it.key());
    for (size_t r = 0; r < data.size(); ++r) {
      if (!data[r].is_object()) throw JobError("payload.data[" + std::to_string(r) + "]: expected an object like row 0");
      std::vector<json> row;
      for (const auto& c : t.columns) {
        if (!data[r].contains(c)) throw JobError("payload.data[" + std::to_string(r) + "]: missing column \"" + c + "\"");
        row.push_back(data[r][c]);
      }
      t.rows.push_back(std::move(row));
    }
    return t;
  }
  if (!data[0].is_array() || data[0].empty()) throw JobError("payload.data: rows must be arrays or objects");
  for (size_t c = 0; c < data[0].size(); ++c) t.columns.push_back(std::to_string(c));
  for (size_t r = 0; r < data.size(); ++r) {
    if (!data[r].is_array() || data[r].size() != t.columns.size())
      throw JobError("payload.data[" + std::to_string(r) + "]: expected " + std::to_string(t.columns.size()) + " values like row 0");
    t.rows.push_back(data[r].get<std::vector<json>>());
  }
  return t;
}

Table table_from_csv(const std::string& data_dir, const std::string& name) {
  if (name.empty() || name.find("..") != std::string::npos || name.front() == '/')
    throw JobError("payload.csv: a file name under <data_dir>/neural, without '..'");
  auto path = fs::path(data_dir) / "neural" / name;
  std::ifstream in(path);
  if (!in) throw JobError("payload.csv: cannot read " + path.string());
  Table t;
  std::string line;
  auto split = [](const std::string& l) {
    std::vector<std::string> cells;
    std::stringstream ss(l);
    for (std::string cell; std::getline(ss, cell, ',');) {
      auto b = cell.find_first_not_of(" \t\r"), e = cell.find_last_not_of(" \t\r");
      cells.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
    }
    return cells;
  };
  if (!std::getline(in, line)) throw JobError("payload.csv: the file is empty");
  t.columns = split(line);
  for (size_t n = 2; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto cells = split(line);
    if (cells.size() != t.columns.size())
      throw JobError("payload.csv: line " + std::to_string(n) + " has " + std::to_string(cells.size()) + " values, the header " +
                     std::to_string(t.columns.size()));
    std::vector<json> row;
    for (auto& c : cells) {
      char* end = nullptr;
      double v = std::strtod(c.c_str(), &end);
      row.push_back(end && *end == '\0' && !c.empty() ? json(v) : json(c));
    }
    t.rows.push_back(std::move(row));
    if (t.rows.size() > 1'000'000) throw JobError("payload.csv: at most 1,000,000 rows");
  }
  if (t.rows.empty()) throw JobError("payload.csv: no data rows");
  return t;
}

std::string label_of(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

int int_field(const json& p, const char* name, int def, int lo, int hi) {
  if (!p.contains(name)) return def;
  if (!p[name].is_number_integer() || p[name].get<int64_t>() < lo || p[name].get<int64_t>() > hi)
    throw JobError(std::string("payload.") + name + ": expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  return p[name].get<int>();
}

std::string model_name(const json& p) {
  if (!p.contains("model") || !p["model"].is_string()) throw JobError("payload.model: a model name is required");
  auto name = p["model"].get<std::string>();
  if (name.empty() || name.size() > 64 ||
      !std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'; }))
    throw JobError("payload.model: 1-64 letters, digits, '-', '_' or '.'");
  return name;
}

// A model with what it needs around it: features, normalisation, classes.
struct Loaded {
  std::unique_ptr<neural::Mlp> mlp;
  json meta;
  int64_t updated_at = 0;
};

// The routing model: an MLP [features, 32, 2] regressing (success, log1p(duration)/10),
// trained online on a replay buffer of recent attempts.
struct Router {
  int features = 0;
  std::unique_ptr<neural::Mlp> mlp;
  std::vector<float> x, y;  // ring buffer, `rows` rows
  size_t rows = 0, next = 0;
  std::mt19937_64 rng{7};
  static constexpr size_t kCapacity = 20000;
};

// The capability model: hashed word unigrams and bigrams (kBuckets) -> MLP [kBuckets, 32,
// classes], rebuilt when a new capability name appears, trained on a replay buffer.
struct TextModel {
  static constexpr int kBuckets = 1024;
  static constexpr size_t kCapacity = 5000;
  std::vector<std::string> classes;
  std::map<std::string, int> index;
  std::vector<std::vector<float>> x;  // replay buffer
  std::vector<int> y;
  size_t next = 0;
  std::unique_ptr<neural::Mlp> mlp;
  std::mt19937_64 rng{13};
};

std::vector<float> text_features(const std::string& text) {
  std::vector<float> f(TextModel::kBuckets, 0.f);
  std::vector<std::string> words;
  std::string w;
  for (char c : text + " ") {
    if (std::isalnum(static_cast<unsigned char>(c))) w += char(std::tolower(static_cast<unsigned char>(c)));
    else if (!w.empty()) words.push_back(std::move(w)), w.clear();
  }
  auto bucket = [](const std::string& s) {
    uint64_t h = 1469598103934665603ULL;  // FNV-1a
    for (char c : s) h = (h ^ uint8_t(c)) * 1099511628211ULL;
    return size_t(h % TextModel::kBuckets);
  };
  for (size_t i = 0; i < words.size(); ++i) {
    f[bucket(words[i])] += 1.f;
    if (i + 1 < words.size()) f[bucket(words[i] + " " + words[i + 1])] += 1.f;
  }
  double norm = 0;
  for (auto& v : f) v = std::log1p(v), norm += double(v) * v;
  if (norm > 0)
    for (auto& v : f) v = float(v / std::sqrt(norm));
  return f;
}

struct WorkerState {
  NeuralOptions options;
  std::map<std::string, Loaded> models;
  Router router;
  TextModel text;
  static inline const char* name = "neural_worker";
};
using Worker = runtime::Instrumented<WorkerState>;

json train(Worker* self, const std::string& task_id, const json& p) {
  auto& o = self->state.options;
  auto name = model_name(p);
  Table t = p.contains("csv") ? table_from_csv(o.data_dir, p["csv"].is_string() ? p["csv"].get<std::string>() : "")
                              : table_from_rows(p.contains("data") ? p["data"] : json());
  size_t target = t.columns.size() - 1;
  if (p.contains("target")) {
    if (p["target"].is_number_integer()) {
      auto i = p["target"].get<int64_t>();
      if (i < 0 || size_t(i) >= t.columns.size()) throw JobError("payload.target: no column " + std::to_string(i));
      target = size_t(i);
    } else if (p["target"].is_string()) {
      auto it = std::find(t.columns.begin(), t.columns.end(), p["target"].get<std::string>());
      if (it == t.columns.end()) throw JobError("payload.target: no column named \"" + p["target"].get<std::string>() + "\"");
      target = size_t(it - t.columns.begin());
    } else {
      throw JobError("payload.target: a column name or index");
    }
  }
  if (t.columns.size() < 2) throw JobError("payload.data: need at least one feature column besides the target");
  neural::MlpSpec spec;
  // Classification unless the targets are numbers that are not all integers (or loss says so).
  bool all_numbers = true, all_integers = true;
  for (const auto& row : t.rows) {
    all_numbers &= row[target].is_number();
    if (row[target].is_number()) all_integers &= std::floor(row[target].get<double>()) == row[target].get<double>();
  }
  spec.loss = all_numbers && !all_integers ? neural::Loss::mse : neural::Loss::cross_entropy;
  if (p.contains("loss") && !(p["loss"].is_string() && neural::parse(p["loss"].get<std::string>(), spec.loss)))
    throw JobError("payload.loss: \"mse\" (regression) or \"cross_entropy\" (classification)");
  if (spec.loss == neural::Loss::mse && !all_numbers) throw JobError("payload.target: mse needs numeric targets");
  std::vector<std::string> features, classes;
  for (size_t c = 0; c < t.columns.size(); ++c)
    if (c != target) features.push_back(t.columns[c]);
  std::map<std::string, int> class_index;
  if (spec.loss == neural::Loss::cross_entropy) {
    std::set<std::string> labels;
    for (const auto& row : t.rows) labels.insert(label_of(row[target]));
    if (labels.size() < 2) throw JobError("payload.target: classification needs at least 2 distinct labels");
    if (labels.size() > 1000) throw JobError("payload.target: at most 1000 classes");
    classes.assign(labels.begin(), labels.end());
    for (size_t i = 0; i < classes.size(); ++i) class_index[classes[i]] = int(i);
  }
  const size_t nf = features.size(), rows = t.rows.size();
  const int outputs = spec.loss == neural::Loss::cross_entropy ? int(classes.size()) : 1;
  std::vector<float> x(rows * nf), y(rows * size_t(outputs), 0.f);
  for (size_t r = 0; r < rows; ++r) {
    size_t f = 0;
    for (size_t c = 0; c < t.columns.size(); ++c) {
      if (c == target) continue;
      if (!t.rows[r][c].is_number())
        throw JobError("payload.data[" + std::to_string(r) + "]: feature \"" + t.columns[c] + "\" must be a number");
      x[r * nf + f++] = t.rows[r][c].get<float>();
    }
    if (outputs == 1) y[r] = t.rows[r][target].get<float>();
    else y[r * size_t(outputs) + size_t(class_index[label_of(t.rows[r][target])])] = 1.f;
  }
  // Standardise the features (kept with the model for inference).
  std::vector<float> mean(nf, 0.f), stdev(nf, 1.f);
  for (size_t f = 0; f < nf; ++f) {
    double s = 0, s2 = 0;
    for (size_t r = 0; r < rows; ++r) s += x[r * nf + f], s2 += double(x[r * nf + f]) * x[r * nf + f];
    double m = s / double(rows), var = std::max(0.0, s2 / double(rows) - m * m);
    mean[f] = float(m);
    stdev[f] = var > 1e-12 ? float(std::sqrt(var)) : 1.f;
    for (size_t r = 0; r < rows; ++r) x[r * nf + f] = (x[r * nf + f] - mean[f]) / stdev[f];
  }
  // Regression targets are standardised too (and scaled back in the metrics and at inference).
  float y_mean = 0.f, y_std = 1.f;
  if (outputs == 1) {
    double s = 0, s2 = 0;
    for (size_t r = 0; r < rows; ++r) s += y[r], s2 += double(y[r]) * y[r];
    double m = s / double(rows), var = std::max(0.0, s2 / double(rows) - m * m);
    y_mean = float(m);
    y_std = var > 1e-12 ? float(std::sqrt(var)) : 1.f;
    for (size_t r = 0; r < rows; ++r) y[r] = (y[r] - y_mean) / y_std;
  }
  spec.layers = {int(nf)};
  json hidden = p.contains("layers") ? p["layers"] : json::array({32});
  if (!hidden.is_array() || hidden.size() > 14) throw JobError("payload.layers: the hidden layer sizes, e.g. [64, 64] (at most 14)");
  for (const auto& h : hidden) {
    if (!h.is_number_integer() || h.get<int>() < 1 || h.get<int>() > 8192)
      throw JobError("payload.layers: every hidden size must be an integer from 1 to 8192");
    spec.layers.push_back(h.get<int>());
  }
  spec.layers.push_back(outputs);
  if (p.contains("activation") && !(p["activation"].is_string() && neural::parse(p["activation"].get<std::string>(), spec.hidden)))
    throw JobError("payload.activation: relu, tanh or sigmoid");
  if (p.contains("optimizer") && !(p["optimizer"].is_string() && neural::parse(p["optimizer"].get<std::string>(), spec.optimizer)))
    throw JobError("payload.optimizer: adam or sgd");
  spec.learning_rate = o.learning_rate;
  if (p.contains("learning_rate")) {
    if (!p["learning_rate"].is_number() || p["learning_rate"].get<double>() <= 0 || p["learning_rate"].get<double>() > 10)
      throw JobError("payload.learning_rate: a number in (0, 10]");
    spec.learning_rate = p["learning_rate"].get<float>();
  }
  spec.seed = p.contains("seed") && p["seed"].is_number_unsigned() ? p["seed"].get<uint64_t>() : 42;
  int epochs = int_field(p, "epochs", 50, 1, 100000);
  int batch = std::min<int>(int_field(p, "batch_size", 32, 1, 65536), int(rows));
  if (auto why = spec.validate(); !why.empty()) throw JobError("payload.layers: " + why);

  std::string backend_note;
  auto mlp = neural::make_mlp(spec, o.gpu_enabled, &backend_note);
  auto started = std::chrono::steady_clock::now();
  std::mt19937_64 rng(spec.seed);
  std::vector<size_t> order(rows);
  std::iota(order.begin(), order.end(), size_t(0));
  std::vector<float> bx(size_t(batch) * nf), by(size_t(batch) * size_t(outputs));
  json curve = json::array();
  int curve_every = std::max(1, epochs / 1000);
  float epoch_loss = 0;
  for (int e = 1; e <= epochs; ++e) {
    std::shuffle(order.begin(), order.end(), rng);
    double sum = 0;
    int batches = 0;
    for (size_t b = 0; b < rows; b += size_t(batch)) {
      int n = int(std::min(rows - b, size_t(batch)));
      for (int i = 0; i < n; ++i) {
        std::copy_n(&x[order[b + size_t(i)] * nf], nf, &bx[size_t(i) * nf]);
        std::copy_n(&y[order[b + size_t(i)] * size_t(outputs)], outputs, &by[size_t(i) * size_t(outputs)]);
      }
      sum += mlp->train_batch(bx.data(), by.data(), n);
      ++batches;
    }
    epoch_loss = float(sum / batches);
    if (!std::isfinite(epoch_loss))
      throw JobError("training diverged at epoch " + std::to_string(e) + " (loss " + std::to_string(epoch_loss) +
                     "): lower payload.learning_rate");
    if (e % curve_every == 0 || e == epochs) curve.push_back({{"epoch", e}, {"loss", epoch_loss}});
    set_progress(task_id, {{"epoch", e}, {"epochs", epochs}, {"loss", epoch_loss}});
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  // Metrics on the training data.
  std::vector<float> out(rows * size_t(outputs));
  mlp->predict(x.data(), int(rows), out.data());
  json metrics = {{"final_loss", epoch_loss}};
  if (outputs > 1) {
    size_t right = 0;
    for (size_t r = 0; r < rows; ++r) {
      auto* row = &out[r * size_t(outputs)];
      auto* want = &y[r * size_t(outputs)];
      right += std::max_element(row, row + outputs) - row == std::max_element(want, want + outputs) - want;
    }
    metrics["accuracy"] = double(right) / double(rows);
  } else {
    double se = 0;
    for (size_t r = 0; r < rows; ++r) se += double(out[r] - y[r]) * (out[r] - y[r]);
    metrics["rmse"] = std::sqrt(se / double(rows)) * y_std;  // in the target's own units
  }
  json meta = {{"features", features}, {"target", t.columns[target]}, {"classes", classes}, {"mean", mean}, {"std", stdev},
               {"target_mean", y_mean}, {"target_std", y_std}, {"loss", neural::to_string(spec.loss)}};
  json spec_json = {{"layers", spec.layers}, {"activation", neural::to_string(spec.hidden)}, {"loss", neural::to_string(spec.loss)},
                    {"optimizer", neural::to_string(spec.optimizer)}, {"learning_rate", spec.learning_rate}, {"seed", spec.seed}};
  runtime::ModelRecord record;
  record.name = name;
  record.spec_json = spec_json.dump();
  record.metadata_json = meta.dump();
  record.metrics_json = metrics.dump();
  record.data = neural::save_model(*mlp);
  record.created_at = record.updated_at = runtime::now_ms();
  if (o.store) {
    if (auto err = o.store->put_model(record)) throw std::runtime_error("saving model " + name + ": " + err->message);
  }
  auto backend = mlp->backend();
  self->state.models[name] = Loaded{std::move(mlp), meta, record.updated_at};
  clear_progress(task_id);
  return {{"model", name},
          {"backend", backend},
          {"backend_note", backend_note},
          {"samples", rows},
          {"features", features},
          {"classes", classes},
          {"layers", spec.layers},
          {"parameters", spec.parameter_count()},
          {"epochs", epochs},
          {"batch_size", batch},
          {"seconds", seconds},
          {"samples_per_second", seconds > 0 ? double(rows) * epochs / seconds : 0.0},
          {"loss_curve", curve},
          {"metrics", metrics},
          {"saved", o.store != nullptr},
          {"size_bytes", record.data.size()}};
}

Loaded& model_for(Worker* self, const std::string& name) {
  auto& st = self->state;
  auto stored = st.options.store ? st.options.store->model(name) : std::nullopt;
  auto it = st.models.find(name);
  if (it != st.models.end() && (!stored || stored->updated_at <= it->second.updated_at)) return it->second;
  if (!stored) throw JobError("payload.model: no model named \"" + name + "\" (train it with a neural.train task)");
  std::string error;
  auto mlp = neural::load_model(stored->data, st.options.gpu_enabled, &error);
  if (!mlp) throw std::runtime_error("model " + name + " cannot be loaded: " + error);
  auto& slot = st.models[name];
  slot = Loaded{std::move(mlp), json::parse(stored->metadata_json, nullptr, false), stored->updated_at};
  return slot;
}

json infer(Worker* self, const json& p) {
  auto name = model_name(p);
  auto& m = model_for(self, name);
  std::vector<std::string> features = m.meta["features"].get<std::vector<std::string>>();
  auto mean = m.meta["mean"].get<std::vector<float>>(), stdev = m.meta["std"].get<std::vector<float>>();
  auto classes = m.meta["classes"].get<std::vector<std::string>>();
  if (!p.contains("inputs") || !p["inputs"].is_array() || p["inputs"].empty() || p["inputs"].size() > 100000)
    throw JobError("payload.inputs: 1 to 100,000 rows (arrays of " + std::to_string(features.size()) + " numbers, or objects)");
  const size_t nf = features.size(), rows = p["inputs"].size();
  std::vector<float> x(rows * nf);
  for (size_t r = 0; r < rows; ++r) {
    const auto& row = p["inputs"][r];
    for (size_t f = 0; f < nf; ++f) {
      const json* v = nullptr;
      if (row.is_array() && row.size() == nf) v = &row[f];
      else if (row.is_object() && row.contains(features[f])) v = &row[features[f]];
      if (!v || !v->is_number())
        throw JobError("payload.inputs[" + std::to_string(r) + "]: expected " + std::to_string(nf) + " numbers (" +
                       json(features).dump() + ")");
      x[r * nf + f] = (v->get<float>() - mean[f]) / stdev[f];
    }
  }
  int outputs = m.mlp->spec().layers.back();
  std::vector<float> out(rows * size_t(outputs));
  m.mlp->predict(x.data(), int(rows), out.data());
  json predictions = json::array(), probabilities = json::array();
  for (size_t r = 0; r < rows; ++r) {
    auto* row = &out[r * size_t(outputs)];
    if (outputs == 1) {
      predictions.push_back(row[0] * m.meta.value("target_std", 1.f) + m.meta.value("target_mean", 0.f));
      continue;
    }
    predictions.push_back(classes[size_t(std::max_element(row, row + outputs) - row)]);
    probabilities.push_back(std::vector<float>(row, row + outputs));
  }
  json result = {{"model", name}, {"backend", m.mlp->backend()}, {"predictions", predictions}};
  if (outputs > 1) result["probabilities"] = probabilities, result["classes"] = classes;
  return result;
}

std::vector<float> route(Worker* self, int features, const std::vector<float>& x, const std::vector<float>& y,
                         const std::vector<float>& queries) {
  auto& r = self->state.router;
  if (!r.mlp || r.features != features) {
    neural::MlpSpec spec;
    spec.layers = {features, 32, 2};
    spec.hidden = neural::Activation::relu;
    spec.loss = neural::Loss::mse;
    spec.learning_rate = 0.01f;
    spec.seed = 11;
    r = Router{};
    r.features = features;
    r.mlp = neural::make_mlp(spec, self->state.options.gpu_enabled);
    r.x.resize(Router::kCapacity * size_t(features));
    r.y.resize(Router::kCapacity * 2);
  }
  const size_t f = size_t(features), fresh = x.size() / f;
  for (size_t i = 0; i < fresh; ++i) {
    std::copy_n(&x[i * f], f, &r.x[r.next * f]);
    std::copy_n(&y[i * 2], 2, &r.y[r.next * 2]);
    r.next = (r.next + 1) % Router::kCapacity;
    r.rows = std::min(Router::kCapacity, r.rows + 1);
  }
  // A few passes over random recent rows: the new ones weigh in, the old are not forgotten.
  const int batch = 64;
  size_t steps = std::min<size_t>(256, std::max<size_t>(32, (fresh * 8) / batch + 1));
  std::vector<float> bx(size_t(batch) * f), by(size_t(batch) * 2);
  std::uniform_int_distribution<size_t> pick(0, r.rows ? r.rows - 1 : 0);
  for (size_t s = 0; s < steps && r.rows > 0; ++s) {
    for (int i = 0; i < batch; ++i) {
      size_t row = pick(r.rng);
      std::copy_n(&r.x[row * f], f, &bx[size_t(i) * f]);
      std::copy_n(&r.y[row * 2], 2, &by[size_t(i) * 2]);
    }
    r.mlp->train_batch(bx.data(), by.data(), batch);
  }
  std::vector<float> out(queries.size() / f * 2);
  if (!out.empty()) r.mlp->predict(queries.data(), int(queries.size() / f), out.data());
  return out;
}

void train_text(Worker* self, int steps) {
  auto& m = self->state.text;
  if (m.classes.size() < 2 || m.x.empty()) return;
  const int batch = 32, k = int(m.classes.size());
  std::vector<float> bx(size_t(batch) * TextModel::kBuckets), by(size_t(batch) * size_t(k));
  std::uniform_int_distribution<size_t> pick(0, m.x.size() - 1);
  for (int s = 0; s < steps; ++s) {
    std::fill(by.begin(), by.end(), 0.f);
    for (int i = 0; i < batch; ++i) {
      size_t row = pick(m.rng);
      std::copy(m.x[row].begin(), m.x[row].end(), bx.begin() + ptrdiff_t(i) * TextModel::kBuckets);
      by[size_t(i) * size_t(k) + size_t(m.y[row])] = 1.f;
    }
    m.mlp->train_batch(bx.data(), by.data(), batch);
  }
}

void learn_text(Worker* self, const std::vector<std::string>& texts, const std::vector<std::string>& labels) {
  auto& m = self->state.text;
  bool grew = false;
  for (size_t i = 0; i < texts.size() && i < labels.size(); ++i) {
    if (!m.index.count(labels[i])) {
      m.index[labels[i]] = int(m.classes.size());
      m.classes.push_back(labels[i]);
      grew = true;
    }
    auto f = text_features(texts[i]);
    if (m.x.size() < TextModel::kCapacity) {
      m.x.push_back(std::move(f));
      m.y.push_back(m.index[labels[i]]);
    } else {
      m.x[m.next] = std::move(f);
      m.y[m.next] = m.index[labels[i]];
      m.next = (m.next + 1) % TextModel::kCapacity;
    }
  }
  if (m.classes.size() < 2) return;
  if (grew || !m.mlp) {
    neural::MlpSpec spec;
    spec.layers = {TextModel::kBuckets, 32, int(m.classes.size())};
    spec.loss = neural::Loss::cross_entropy;
    spec.learning_rate = 0.01f;
    spec.seed = 17;
    m.mlp = neural::make_mlp(spec, self->state.options.gpu_enabled);
    train_text(self, 300);  // a new class: start again from the whole buffer
  } else {
    train_text(self, std::max(8, int(texts.size())));
  }
}

std::vector<std::string> infer_text(Worker* self, const std::vector<std::string>& texts) {
  auto& m = self->state.text;
  std::vector<std::string> out(texts.size());
  if (!m.mlp || m.x.size() < 20) return out;
  const int k = int(m.classes.size());
  std::vector<float> x(texts.size() * TextModel::kBuckets), p(texts.size() * size_t(k));
  for (size_t i = 0; i < texts.size(); ++i) {
    auto f = text_features(texts[i]);
    std::copy(f.begin(), f.end(), x.begin() + ptrdiff_t(i) * TextModel::kBuckets);
  }
  m.mlp->predict(x.data(), int(texts.size()), p.data());
  for (size_t i = 0; i < texts.size(); ++i) {
    auto* row = &p[i * size_t(k)];
    auto best = size_t(std::max_element(row, row + k) - row);
    out[i] = json{{"capability", m.classes[best]}, {"confidence", row[best]}, {"samples", m.x.size()}}.dump();
  }
  return out;
}

caf::behavior neural_worker(Worker* self, NeuralOptions options) {
  self->state.options = std::move(options);
  self->describe("neural_worker", "");
  self->set_state("idle");
  return {
      [=](caps_learn_atom, const std::vector<std::string>& texts, const std::vector<std::string>& labels) {
        learn_text(self, texts, labels);
      },
      [=](caps_infer_atom, const std::vector<std::string>& texts) { return infer_text(self, texts); },
      [=](routing_atom, int32_t features, const std::vector<float>& x, const std::vector<float>& y,
          const std::vector<float>& queries) -> caf::result<std::vector<float>> {
        if (features <= 0 || x.size() % size_t(features) || queries.size() % size_t(features) || y.size() != x.size() / size_t(features) * 2)
          return caf::make_error(caf::sec::invalid_argument, "routing: rows do not match the feature count");
        return route(self, features, x, y, queries);
      },
      [=](neural_job_atom, const std::string& task_id, const std::string& type, const std::string& payload_json) -> Outcome {
        auto payload = json::parse(payload_json, nullptr, false);
        if (!payload.is_object()) return job_failed("payload: expected a JSON object");
        self->set_state(type + " " + task_id);
        struct Idle {
          Worker* self;
          ~Idle() { self->set_state("idle"); }
        } idle{self};
        try {
          Outcome o;
          o.ok = true;
          o.result_json = (type == "neural.train" ? train(self, task_id, payload) : infer(self, payload)).dump();
          return o;
        } catch (const JobError& e) {
          clear_progress(task_id);
          self->note_error();
          return job_failed(e.what());
        } catch (const std::exception& e) {
          clear_progress(task_id);
          self->note_error();
          return job_failed(std::string("neural job failed: ") + e.what(), true);
        }
      },
  };
}

struct PoolState {
  NeuralOptions options;
  std::vector<caf::actor> workers;
  std::vector<int> busy;
  int64_t restarts = 0;
  std::string backend;
  static inline const char* name = "neural_pool";
};
using Pool = runtime::Instrumented<PoolState>;

caf::actor start_worker(Pool* self) {
  auto w = self->system().spawn<caf::detached>(neural_worker, self->state.options);
  self->monitor(w);
  if (auto probe = runtime::introspection::Registry::of(self->system()).find(w.id())) probe->set_parent(self->id());
  return w;
}

caf::behavior neural_pool(Pool* self, NeuralOptions options) {
  auto& st = self->state;
  st.options = std::move(options);
  self->describe("neural_pool", "neural");
  std::string why;
  neural::GpuInfo gpu;
  if (st.options.gpu_enabled && neural::gpu_available(&gpu, &why)) {
    st.backend = "cuda: " + gpu.name;
  } else {
    st.backend = "cpu";
    if (st.options.gpu_enabled) spdlog::info("neural: [neural] gpu_enabled, but using the CPU backend: {}", why);
  }
  for (int i = 0; i < st.options.workers; ++i) {
    st.workers.push_back(start_worker(self));
    st.busy.push_back(0);
  }
  spdlog::info("neural: {} workers on the {} backend", st.options.workers, st.backend);
  self->set_state(std::to_string(st.options.workers) + " workers on " + st.backend);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    for (size_t i = 0; i < st.workers.size(); ++i) {
      if (st.workers[i].address() != dm.source) continue;
      if (dm.reason == caf::exit_reason::user_shutdown) return;
      spdlog::warn("neural: worker {} stopped ({}); starting it again", i, self->system().render(dm.reason));
      st.workers[i] = start_worker(self);
      st.busy[i] = 0;
      ++st.restarts;
      self->note_error();
      runtime::metrics::Registry::global()
          .counter(runtime::metrics::names::supervisor_restarts, "Children restarted by a supervisor, by supervisor and kind",
                   {{"supervisor", "neural"}, {"kind", "neural_worker"}})
          .inc();
    }
  });
  self->set_exit_handler([=](caf::exit_msg& msg) {
    for (auto& w : self->state.workers) self->send_exit(w, caf::exit_reason::user_shutdown);
    self->quit(msg.reason);
  });
  return {
      [=](neural_job_atom, const std::string& task_id, const std::string& type, const std::string& payload) -> caf::result<Outcome> {
        auto& st = self->state;
        if (st.workers.empty()) return job_failed("neural workers are off ([neural] workers = 0)");
        size_t pick = size_t(std::min_element(st.busy.begin(), st.busy.end()) - st.busy.begin());
        st.busy[pick] += 1;
        auto rp = self->make_response_promise<Outcome>();
        auto worker = st.workers[pick];
        self->request(worker, caf::infinite, neural_job_atom::value, task_id, type, payload)
            .then(
                [=](Outcome& o) mutable {
                  if (pick < self->state.busy.size() && self->state.workers[pick] == worker) self->state.busy[pick] -= 1;
                  rp.deliver(std::move(o));
                },
                [=](caf::error& err) mutable {
                  if (pick < self->state.busy.size() && self->state.workers[pick] == worker) self->state.busy[pick] -= 1;
                  rp.deliver(job_failed("the neural worker stopped during the job: " + self->system().render(err), true));
                });
        return rp;
      },
      [=](caps_learn_atom, std::vector<std::string>& texts, std::vector<std::string>& labels) {
        if (!self->state.workers.empty()) self->send(self->state.workers[0], caps_learn_atom::value, std::move(texts), std::move(labels));
      },
      [=](caps_infer_atom, std::vector<std::string>& texts) -> caf::result<std::vector<std::string>> {
        if (self->state.workers.empty()) return std::vector<std::string>(texts.size());
        self->delegate(self->state.workers[0], caps_infer_atom::value, std::move(texts));
        return caf::delegated<std::vector<std::string>>{};
      },
      [=](routing_atom, int32_t features, std::vector<float>& x, std::vector<float>& y, std::vector<float>& queries)
          -> caf::result<std::vector<float>> {
        // Always the first worker: the routing model is its state.
        auto& st = self->state;
        if (st.workers.empty()) return caf::make_error(caf::sec::runtime_error, "neural workers are off");
        self->delegate(st.workers[0], routing_atom::value, features, std::move(x), std::move(y), std::move(queries));
        return caf::delegated<std::vector<float>>{};
      },
      [=](tree_atom) {
        auto& st = self->state;
        json children = json::array();
        for (size_t i = 0; i < st.workers.size(); ++i)
          children.push_back({{"id", "neural-worker-" + std::to_string(i)},
                              {"kind", "neural_worker"},
                              {"alive", true},
                              {"restarts", nullptr},
                              {"last_reason", nullptr},
                              {"running_jobs", st.busy[i]}});
        return json{{"name", "neural"},
                    {"strategy", "one_for_one"},
                    {"restarts", st.restarts},
                    {"backend", st.backend},
                    {"children", children}}
            .dump();
      },
  };
}

}  // namespace

std::optional<std::string> job_progress(const std::string& task_id) {
  std::lock_guard<std::mutex> lock(progress_mutex);
  auto it = progress_by_task.find(task_id);
  if (it == progress_by_task.end()) return std::nullopt;
  return it->second;
}

bool is_neural_task_type(const std::string& type) { return type == "neural.train" || type == "neural.infer"; }

caf::actor spawn_neural_pool(caf::actor_system& system, NeuralOptions options) {
  return system.spawn(neural_pool, std::move(options));
}

}  // namespace hub::actors
