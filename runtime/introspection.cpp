#include "runtime/introspection.hpp"

#include "runtime/clock.hpp"

#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <caf/atom.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/type_nr.hpp>
#include <caf/uniform_type_info_map.hpp>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>

namespace hub::runtime::introspection {

namespace {

constexpr size_t kTraceRing = 2048;

std::string message_type(const caf::type_erased_tuple& content, caf::actor_system* system) {
  if (content.size() == 0) return "(empty)";
  auto rtti = content.type(0);
  if (rtti.first == caf::type_nr<caf::atom_value>::value) return caf::to_string(content.get_as<caf::atom_value>(0));
  if (rtti.first != 0) return caf::numbered_type_names[rtti.first - 1];
  if (system) return system->types().portable_name(rtti);
  return rtti.second ? rtti.second->name() : "?";
}

}  // namespace

Probe::Probe(uint64_t id, caf::actor_addr address, int64_t started_ms)
    : id_(id), address_(std::move(address)), started_ms_(started_ms) {}

void Probe::describe(std::string kind, std::string name, uint64_t parent, bool inspectable) {
  std::lock_guard<std::mutex> lock(mutex_);
  kind_ = std::move(kind);
  name_ = std::move(name);
  inspectable_ = inspectable;
  if (parent != 0) parent_ = parent;
}

void Probe::set_state(const std::string& state) {
  std::lock_guard<std::mutex> lock(mutex_);
  state_ = state;
}

bool Probe::admit_trace() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (++sample_counter_ % uint64_t(std::max(1, sample_.load())) != 0) return false;
  int64_t now = now_ms();
  if (now - window_start_ms_ >= 1000) {
    window_start_ms_ = now;
    window_count_ = 0;
  }
  if (window_count_ >= max_per_second_.load()) {
    ++over_rate_;
    return false;
  }
  ++window_count_;
  return true;
}

TraceEvent Probe::describe_message(const caf::mailbox_element& message) const {
  TraceEvent e;
  auto* system = registry ? registry->system() : nullptr;
  e.type = message_type(message.content(), system);
  if (message.sender) {
    bool local = system && message.sender->node() == system->node();
    e.sender = local && registry ? registry->label_of(message.sender->id())
                                 : "#" + std::to_string(message.sender->id()) + "@" + to_string(message.sender->node());
  }
  e.size = message.content().stringify().size();
  return e;
}

void Probe::handled(int64_t handling_ns, size_t mailbox, bool dropped, TraceEvent* traced) {
  // One writer (the owning actor): plain loads and stores, no locked read-modify-write.
  messages_.store(messages_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (dropped) note_error();
  mailbox_.store(mailbox, std::memory_order_relaxed);
  busy_ns_.store(busy_ns_.load(std::memory_order_relaxed) + handling_ns, std::memory_order_relaxed);
  // The coarse clock (a few ms of resolution) costs a fraction of a precise read, per message.
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  int64_t now = int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
  last_message_ms_.store(now, std::memory_order_relaxed);
  if (!traced) return;

  std::lock_guard<std::mutex> lock(mutex_);
  TraceEvent e = std::move(*traced);
  e.seq = next_seq_++;
  e.at_ms = now;
  e.handling_us = handling_ns / 1000;
  if (ring_.size() < kTraceRing) ring_.push_back(std::move(e));
  else ring_[(e.seq - 1) % kTraceRing] = std::move(e);
}

void Probe::start_trace(int sample, int max_per_second) {
  sample_ = std::max(1, sample);
  max_per_second_ = std::clamp(max_per_second, 1, 5000);
  tracers_.fetch_add(1);
}

void Probe::stop_trace() { tracers_.fetch_sub(1); }

std::vector<TraceEvent> Probe::trace_after(uint64_t after, size_t max, uint64_t* lost) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<TraceEvent> out;
  uint64_t oldest = next_seq_ > ring_.size() ? next_seq_ - ring_.size() : 1;
  if (lost) *lost = (after + 1 < oldest ? oldest - after - 1 : 0) + over_rate_;
  for (uint64_t seq = std::max(after + 1, oldest); seq < next_seq_ && out.size() < max; ++seq)
    out.push_back(ring_[(seq - 1) % kTraceRing]);
  return out;
}

ActorInfo Probe::info() const {
  ActorInfo i;
  i.id = id_;
  i.started_ms = started_ms_;
  i.parent = parent_.load(std::memory_order_relaxed);
  i.messages = messages_.load(std::memory_order_relaxed);
  i.errors = errors_.load(std::memory_order_relaxed);
  i.mailbox = mailbox_.load(std::memory_order_relaxed);
  i.last_message_ms = last_message_ms_.load(std::memory_order_relaxed);
  i.busy_ms = double(busy_ns_.load(std::memory_order_relaxed)) / 1e6;
  i.tracers = tracers_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mutex_);
  i.kind = kind_;
  i.name = name_;
  i.state = state_;
  i.inspectable = inspectable_;
  return i;
}

std::string Probe::label() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return kind_ + (name_.empty() ? "" : " " + name_) + " (#" + std::to_string(id_) + ")";
}

Registry& Registry::of(caf::actor_system& system) {
  static std::mutex mutex;
  static std::map<caf::actor_system*, std::unique_ptr<Registry>> registries;
  std::lock_guard<std::mutex> lock(mutex);
  auto& r = registries[&system];
  if (!r) {
    r = std::make_unique<Registry>();
    r->system_ = &system;
  }
  return *r;
}

void Registry::set_node(std::string node) {
  std::lock_guard<std::mutex> lock(node_mutex_);
  node_ = std::move(node);
}

std::string Registry::node() const {
  std::lock_guard<std::mutex> lock(node_mutex_);
  return node_;
}

std::shared_ptr<Probe> Registry::add(uint64_t id, caf::actor_addr address) {
  auto probe = std::make_shared<Probe>(id, std::move(address), now_ms());
  probe->registry = this;
  auto& shard = shards_[id % kShards];
  std::lock_guard<std::mutex> lock(shard.mutex);
  shard.probes[id] = probe;
  return probe;
}

void Registry::remove(uint64_t id) {
  auto& shard = shards_[id % kShards];
  std::lock_guard<std::mutex> lock(shard.mutex);
  shard.probes.erase(id);
}

std::shared_ptr<Probe> Registry::find(uint64_t id) const {
  auto& shard = shards_[id % kShards];
  std::lock_guard<std::mutex> lock(shard.mutex);
  auto i = shard.probes.find(id);
  return i == shard.probes.end() ? nullptr : i->second;
}

std::vector<ActorInfo> Registry::list(const ActorQuery& query, size_t* total) const {
  std::vector<std::shared_ptr<Probe>> probes;
  for (const auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mutex);
    for (const auto& [id, p] : shard.probes) probes.push_back(p);
  }
  std::vector<ActorInfo> out;
  out.reserve(probes.size());
  for (const auto& p : probes) {
    auto info = p->info();
    if (!query.kind.empty() && info.kind != query.kind) continue;
    out.push_back(std::move(info));
  }
  if (query.kind.empty() || query.kind == "task")
    for (auto& r : records()) out.push_back(std::move(r));
  if (total) *total = out.size();
  auto key = [&](const ActorInfo& a) -> uint64_t {
    if (query.sort == "mailbox") return a.mailbox;
    if (query.sort == "messages") return a.messages;
    if (query.sort == "errors") return a.errors;
    return 0;
  };
  size_t keep = std::min(query.limit, out.size());
  if (query.sort.empty()) {
    std::partial_sort(out.begin(), out.begin() + long(keep), out.end(),
                      [](const ActorInfo& a, const ActorInfo& b) { return a.id < b.id; });
  } else {
    std::partial_sort(out.begin(), out.begin() + long(keep), out.end(), [&](const ActorInfo& a, const ActorInfo& b) {
      auto ka = key(a), kb = key(b);
      return ka != kb ? ka > kb : a.id < b.id;
    });
  }
  out.resize(keep);
  return out;
}

size_t Registry::size() const {
  size_t n = 0;
  for (const auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mutex);
    n += shard.probes.size();
  }
  std::lock_guard<std::mutex> lock(records_mutex_);
  return n + (records_.count ? records_.count() : 0);
}

void Registry::set_records(Records records) {
  std::lock_guard<std::mutex> lock(records_mutex_);
  records_ = std::move(records);
}

std::vector<ActorInfo> Registry::records() const {
  std::vector<ActorInfo> out;
  std::lock_guard<std::mutex> lock(records_mutex_);
  if (records_.list) records_.list(out);
  return out;
}

std::vector<std::pair<std::string, size_t>> Registry::count_by_kind() const {
  std::map<std::string, size_t> counts;
  for (const auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mutex);
    for (const auto& [id, p] : shard.probes) ++counts[p->info().kind];
  }
  {
    std::lock_guard<std::mutex> lock(records_mutex_);
    if (size_t n = records_.count ? records_.count() : 0) counts["task"] += n;
  }
  return {counts.begin(), counts.end()};
}

std::string Registry::label_of(uint64_t id) const {
  auto p = find(id);
  return p ? p->label() : "#" + std::to_string(id);
}

namespace {

nlohmann::json actor_json(const ActorInfo& a, const std::string& node) {
  return {{"id", a.id},
          {"node", node},
          {"kind", a.kind},
          {"name", a.name},
          {"state", a.state},
          {"parent", a.parent ? nlohmann::json(a.parent) : nlohmann::json()},
          {"mailbox_size", a.mailbox},
          {"messages", a.messages},
          {"errors", a.errors},
          {"busy_ms", std::round(a.busy_ms * 1000) / 1000},
          {"last_message_at", a.last_message_ms ? nlohmann::json(rfc3339(a.last_message_ms)) : nlohmann::json()},
          {"started_at", rfc3339(a.started_ms)},
          {"traced", a.tracers > 0}};
}

nlohmann::json brief(const Registry& registry, uint64_t id) {
  auto probe = registry.find(id);
  if (!probe) return nullptr;
  auto info = probe->info();
  return {{"id", id}, {"kind", info.kind}, {"name", info.name}};
}

}  // namespace

std::string actors_page(const Registry& registry, const ActorQuery& query) {
  auto node = registry.node();
  size_t total = 0;
  auto actors = nlohmann::json::array();
  for (const auto& a : registry.list(query, &total)) actors.push_back(actor_json(a, node));
  auto kinds = nlohmann::json::object();
  for (const auto& [kind, count] : registry.count_by_kind()) kinds[kind] = count;
  return nlohmann::json{{"actors", std::move(actors)}, {"total", total}, {"by_kind", {{node, std::move(kinds)}}}}.dump();
}

std::string actor_detail(const Registry& registry, uint64_t id) {
  auto probe = registry.find(id);
  if (!probe) return {};
  auto info = probe->info();
  auto out = actor_json(info, registry.node());
  out["busy_percent_since_start"] =
      std::round(info.busy_ms / double(std::max<int64_t>(1, now_ms() - info.started_ms)) * 10000) / 100;
  if (info.parent) out["parent_actor"] = brief(registry, info.parent);
  out["inspectable"] = info.inspectable;
  return out.dump();
}

std::string kill_actor(const Registry& registry, uint64_t id, std::string* why) {
  auto probe = registry.find(id);
  auto node = registry.node();
  if (!probe) {
    *why = "not_found|no live actor " + std::to_string(id) + " on node " + node;
    return {};
  }
  auto info = probe->info();
  if (info.parent == 0) {
    *why = "conflict|actor " + std::to_string(id) + " (" + info.kind +
           ") has no supervisor or owner to restart it; killing it would stop that part of the node for good";
    return {};
  }
  auto parent = brief(registry, info.parent);
  caf::anon_send_exit(probe->address(), caf::exit_reason::kill);
  spdlog::warn("introspection: actor {} ({} {}) killed on request", id, info.kind, info.name);
  std::string owner = parent.is_null() ? std::string("owner") : parent["kind"].get<std::string>();
  return nlohmann::json{{"id", id},
                        {"node", node},
                        {"kind", info.kind},
                        {"name", info.name},
                        {"killed", true},
                        {"parent", parent},
                        {"message", "sent the kill signal; its " + owner +
                                        " restarts it (see GET /api/supervisors and the new actor in GET /api/actors)"}}
      .dump();
}

}  // namespace hub::runtime::introspection
