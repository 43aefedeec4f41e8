#include "runtime/actor_runtime.hpp"

#include "runtime/cluster.hpp"
#include "runtime/domain.hpp"

#include <caf/atom.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

namespace hub::runtime {

HubActorConfig::HubActorConfig(int threads, const std::string& policy, bool network, const ClusterTls& tls) {
  set("scheduler.max-threads", static_cast<int64_t>(threads));
  set("scheduler.policy", caf::atom_from_string(policy));
  add_message_type<Capability>("hub_capability");
  add_message_type<RequiredCapability>("hub_required_capability");
  add_message_type<AgentRecord>("hub_agent_record");
  add_message_type<TaskRecord>("hub_task_record");
  add_message_type<TaskEvent>("hub_task_event");
  add_message_type<AuditEntry>("hub_audit_entry");
  add_message_type<std::vector<AuditEntry>>("hub_audit_entries");
  add_message_type<WriteBatch>("hub_write_batch");
  add_message_type<std::vector<Capability>>("hub_capabilities");
  add_message_type<std::vector<RequiredCapability>>("hub_required_capabilities");
  add_message_type<std::vector<AgentRecord>>("hub_agent_records");
  add_message_type<std::vector<TaskRecord>>("hub_task_records");
  add_message_type<LocalReport>("hub_local_report");
  add_message_type<std::vector<float>>("hub_floats");
  add_message_type<PeerView>("hub_peer_view");
  add_message_type<std::vector<PeerView>>("hub_peer_views");
  if (network) load<caf::io::middleman>();
  if (network && tls.enabled()) {
    // Both sides present a certificate and check the other's against the CA (CAF requires
    // peer certificates whenever its OpenSSL module has credentials).
    openssl_certificate = tls.cert;
    openssl_key = tls.key;
    openssl_cafile = tls.ca;
    load<caf::openssl::manager>();
  }
}

}  // namespace hub::runtime
