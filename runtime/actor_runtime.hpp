// Actor-system setup: the CAF configuration the node runs with (scheduler threads and
// policy) and the registration of every message type that crosses actors.
// Must never spawn actors of its own kinds or know about HTTP.
#pragma once

#include <caf/actor_system_config.hpp>

#include <string>

namespace hub::runtime {

class HubActorConfig : public caf::actor_system_config {
 public:
  // threads: scheduler worker threads; policy: "stealing" or "sharing"; network: load CAF's
  // middleman (node-to-node traffic, for clusters).
  HubActorConfig(int threads, const std::string& policy, bool network = false);
};

}  // namespace hub::runtime
