#include "runtime/metrics.hpp"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace hub::runtime::metrics {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

double Histogram::Snapshot::quantile(double q) const {
  if (count == 0 || cumulative.empty()) return 0;
  double rank = q * double(count);
  for (size_t i = 0; i < cumulative.size(); ++i) {
    if (double(cumulative[i]) >= rank) {
      if (i == bounds.size()) return bounds.empty() ? 0 : bounds.back();
      double lower = i == 0 ? 0 : bounds[i - 1];
      double below = i == 0 ? 0 : double(cumulative[i - 1]);
      double in_bucket = double(cumulative[i]) - below;
      double frac = in_bucket > 0 ? (rank - below) / in_bucket : 1;
      return lower + (bounds[i] - lower) * frac;
    }
  }
  return bounds.empty() ? 0 : bounds.back();
}

Histogram::Snapshot Histogram::Snapshot::minus(const Snapshot& earlier) const {
  Snapshot d = *this;
  if (earlier.cumulative.size() != cumulative.size()) return d;
  for (size_t i = 0; i < cumulative.size(); ++i) d.cumulative[i] -= earlier.cumulative[i];
  d.count -= earlier.count;
  d.sum -= earlier.sum;
  return d;
}

std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}
std::vector<double> duration_buckets() {
  return {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600};
}
std::vector<double> count_buckets() { return {1, 2, 3, 5, 10, 20, 50, 100}; }

Registry& Registry::global() {
  static Registry registry;
  return registry;
}

Registry::Family& Registry::family(const std::string& name, const std::string& help, Type type,
                                   const std::vector<double>& bounds) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(name, Family{}).first;
    it->second.help = help;
    it->second.type = type;
    it->second.bounds = bounds;
  }
  return it->second;
}

Counter& Registry::counter(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& child = family(name, help, Type::counter).counters[labels];
  if (!child) child = std::make_unique<Counter>();
  return *child;
}

Gauge& Registry::gauge(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& child = family(name, help, Type::gauge).gauges[labels];
  if (!child) child = std::make_unique<Gauge>();
  return *child;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help, const std::vector<double>& bounds,
                               const Labels& labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& f = family(name, help, Type::histogram, bounds);
  auto& child = f.histograms[labels];
  if (!child) child = std::make_unique<Histogram>(f.bounds);
  return *child;
}

namespace {

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string label_text(const Labels& labels, const std::string& extra_key = "", const std::string& extra_value = "") {
  if (labels.empty() && extra_key.empty()) return "";
  std::string s = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    s += (first ? "" : ",") + k + "=\"" + escape_label(v) + "\"";
    first = false;
  }
  if (!extra_key.empty()) s += (first ? "" : ",") + extra_key + "=\"" + extra_value + "\"";
  return s + "}";
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

bool includes(const Labels& labels, const Labels& match) {
  for (const auto& m : match) {
    bool found = false;
    for (const auto& l : labels) found |= l == m;
    if (!found) return false;
  }
  return true;
}

}  // namespace

std::string Registry::expose() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream out;
  for (const auto& [name, f] : families_) {
    out << "# HELP " << name << ' ' << f.help << '\n';
    switch (f.type) {
      case Type::counter:
        out << "# TYPE " << name << " counter\n";
        for (const auto& [labels, c] : f.counters) out << name << label_text(labels) << ' ' << number(c->value()) << '\n';
        break;
      case Type::gauge:
        out << "# TYPE " << name << " gauge\n";
        for (const auto& [labels, g] : f.gauges) out << name << label_text(labels) << ' ' << number(g->value()) << '\n';
        break;
      case Type::histogram:
        out << "# TYPE " << name << " histogram\n";
        for (const auto& [labels, h] : f.histograms) {
          auto s = h->snapshot();
          for (size_t i = 0; i < s.bounds.size(); ++i)
            out << name << "_bucket" << label_text(labels, "le", number(s.bounds[i])) << ' ' << s.cumulative[i] << '\n';
          out << name << "_bucket" << label_text(labels, "le", "+Inf") << ' ' << s.count << '\n';
          out << name << "_sum" << label_text(labels) << ' ' << number(s.sum) << '\n';
          out << name << "_count" << label_text(labels) << ' ' << s.count << '\n';
        }
        break;
    }
  }
  return out.str();
}

double Registry::counter_sum(const std::string& name, const Labels& match) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  double sum = 0;
  for (const auto& [labels, c] : it->second.counters)
    if (includes(labels, match)) sum += c->value();
  return sum;
}

double Registry::gauge_sum(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  double sum = 0;
  for (const auto& [labels, g] : it->second.gauges) sum += g->value();
  return sum;
}

Histogram::Snapshot Registry::histogram_merged(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Histogram::Snapshot merged;
  auto it = families_.find(name);
  if (it == families_.end()) return merged;
  for (const auto& [labels, h] : it->second.histograms) {
    auto s = h->snapshot();
    if (merged.cumulative.empty()) {
      merged = s;
      continue;
    }
    for (size_t i = 0; i < s.cumulative.size() && i < merged.cumulative.size(); ++i) merged.cumulative[i] += s.cumulative[i];
    merged.count += s.count;
    merged.sum += s.sum;
  }
  return merged;
}

}  // namespace hub::runtime::metrics
