// Neural workers: detached actors (the numeric work never runs on the actor scheduler's
// threads) that own models and run neural jobs, behind one pool actor that spreads the
// jobs over them and starts a crashed worker again (the "neural" supervisor of the tree).
//
//   agent -> pool   (neural_job_atom, task_id, type, payload_json) -> Outcome
//                   type "neural.train": {model, layers (hidden sizes), activation, loss,
//                     data (rows: arrays or objects) | csv (a file under <data_dir>/neural),
//                     target (column name or index; default the last), epochs, batch_size,
//                     learning_rate, optimizer, seed} -> {loss_curve, metrics, ...}; the model
//                     is saved in the store's models table
//                   type "neural.infer": {model, inputs (rows)} -> {predictions, probabilities?}
//   any -> pool     (tree_atom) -> string (JSON: workers, restarts, backend)
// While a job trains, job_progress(task_id) has {epoch, epochs, loss}.
#pragma once

#include "actors/task_protocol.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <optional>
#include <string>

namespace hub::runtime {
class Store;
}

namespace hub::actors {

using neural_job_atom = caf::atom_constant<caf::atom("nrl_job")>;
// Learned routing (scheduler -> pool): (routing_atom, features, samples x, targets y, queries x)
// -> vector<float> (2 per query: chance of success, log1p(duration ms) / 10). One model per
// node, trained online from a replay buffer of recent attempts.
using routing_atom = caf::atom_constant<caf::atom("routing")>;
// Capability inference (scheduler -> pool): a text model (hashed word uni- and bigrams -> MLP)
// learns from submitted tasks that name their capabilities:
//   (caps_learn_atom, texts, capability names)            one-way
//   (caps_infer_atom, texts) -> vector<string>            per text "" (not ready) or JSON
//                                                          {"capability", "confidence", "samples"}
using caps_learn_atom = caf::atom_constant<caf::atom("caps_learn")>;
using caps_infer_atom = caf::atom_constant<caf::atom("caps_infer")>;

struct NeuralOptions {
  int workers = 1;
  bool gpu_enabled = false;
  float learning_rate = 0.01f;    // when a job gives none
  std::string data_dir;           // CSV files are read from <data_dir>/neural only
  runtime::Store* store = nullptr;
};

caf::actor spawn_neural_pool(caf::actor_system& system, NeuralOptions options);

// The progress of a training job running on this node, as JSON text ({epoch, epochs, loss}).
std::optional<std::string> job_progress(const std::string& task_id);

bool is_neural_task_type(const std::string& type);

}  // namespace hub::actors
