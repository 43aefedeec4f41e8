// The store actor: the single writer of the store, on its own thread (a detached actor, so
// SQLite/libpq calls never block the cooperative scheduler). Group commit: every batch that
// arrives while a transaction is being written joins the next one; each sender's reply
// (`true`, or an error) comes only after its batch is durable.
//
//   (persist_atom, WriteBatch) -> bool     durable, or error(sec::runtime_error, reason)
//   (flush_atom)               -> bool     everything received so far is durable
//   (load_agent_atom, id)      -> AgentRecord   as stored (a restarted agent reloads itself)
//   (load_task_atom, id)       -> TaskRecord    as stored (a restarted task actor reloads itself)
//   (renew_atom, owner, until_ms)                         -> bool     Store::renew_leases
//   (expire_atom, owner, now_ms)                          -> bool     Store::expire_leases
//   (claim_atom, owner, now_ms, until_ms, limit)          -> vector<TaskRecord>  Store::claim_tasks (not own)
// Every call is guarded by the store's circuit breaker: while it is open, writes are refused
// at once (no waiting on a dead database) and the refusal says so.
#pragma once

#include <caf/atom.hpp>
#include <caf/fwd.hpp>

namespace hub::runtime {

class Store;

using persist_atom = caf::atom_constant<caf::atom("persist")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using load_agent_atom = caf::atom_constant<caf::atom("load_agent")>;
using load_task_atom = caf::atom_constant<caf::atom("load_task")>;
using renew_atom = caf::atom_constant<caf::atom("renew")>;
using claim_atom = caf::atom_constant<caf::atom("claim")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;

struct BreakerPolicy;

// `store` must outlive the actor.
caf::actor spawn_store_actor(caf::actor_system& system, Store& store);
caf::actor spawn_store_actor(caf::actor_system& system, Store& store, const BreakerPolicy& breaker);

}  // namespace hub::runtime
