// The HTTP gateway: cpp-httplib worker threads that turn requests into CAF requests to the
// scheduler (through one scoped_actor per thread) and store reads, and answer in the JSON
// envelope. Owns the listening socket, readiness and the orderly stop of HTTP.
// Must never block a CAF scheduler thread; must never be included by runtime/ or actors/.
#pragma once

#include "config/config.hpp"

#include <atomic>
#include <caf/fwd.hpp>
#include <memory>
#include <string>

namespace hub::runtime {
class Store;
class SystemMonitor;
}

namespace hub::gateway {

struct GatewayDeps {
  caf::actor_system* system = nullptr;
  const config::Config* config = nullptr;
  std::string node;
  std::string version;
  int64_t started_ms = 0;
  runtime::SystemMonitor* monitor = nullptr;
};

// HTTP connection threads for `[server] workers`.
inline int connection_threads(int workers) { return workers * 4; }

class Gateway {
 public:
  explicit Gateway(GatewayDeps deps);
  ~Gateway();

  // Binds host:port; returns "" or a one-line reason (e.g. the port is in use).
  std::string bind();
  // Serves on a thread of its own until stop().
  void serve();
  // Connects the API to the actors and store once they are up; until then /readyz is 503
  // and the API answers 503.
  // `cluster`: the node manager (runtime/cluster.hpp), or null when clustering is off.
  void attach(caf::actor_system& system, caf::actor scheduler, caf::actor store_actor, runtime::Store* store,
              caf::actor supervisor_root, caf::actor cluster);
  void set_ready(bool ready);
  // Stops accepting, lets in-flight requests finish within `deadline_ms`; false if the
  // deadline passed first.
  bool stop(int deadline_ms);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hub::gateway
