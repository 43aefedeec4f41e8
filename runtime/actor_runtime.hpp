// Actor-system setup: the CAF configuration the node runs with (scheduler threads and
// policy) and the registration of every message type that crosses actors.
// Must never spawn actors of its own kinds or know about HTTP.
#pragma once

#include <caf/actor_system_config.hpp>

#include <string>

namespace hub::runtime {

// Mutual TLS between nodes (CAF's OpenSSL module): this node's certificate and key, and the
// CA every member's certificate must be signed by. All empty: plain TCP.
struct ClusterTls {
  std::string cert, key, ca;
  bool enabled() const { return !cert.empty(); }
};

class HubActorConfig : public caf::actor_system_config {
 public:
  // threads: scheduler worker threads; policy: "stealing" or "sharing"; network: load CAF's
  // middleman (node-to-node traffic, for clusters), and its OpenSSL module when `tls` is set.
  HubActorConfig(int threads, const std::string& policy, bool network = false, const ClusterTls& tls = {});
};

}  // namespace hub::runtime
