// Where the cluster's state lives: a RADOS pool (`[cluster] pool`, default qiao-cluster) holding
// one object per kind of record (a RecordTable each), the leader object and one object per
// host (its lease). docs/operators/cluster.md "The state in RADOS" lists them.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "storage/rados_cluster.h"

namespace qiao {

struct ClusterPool {
  std::string pool = "qiao-cluster";
  std::string ns;  // a RADOS namespace; "" in production (tests give each run its own)

  RadosObject object(const std::string& name) const { return {pool, ns, name}; }
  // The object a kind of record lives in ("hosts" -> "table.hosts").
  RadosObject table(std::string_view kind) const { return object("table." + std::string(kind)); }
  RadosObject leader() const { return object("leader"); }
  // The object whose lock is the host's lease.
  RadosObject hostLease(const std::string& host) const { return object("host." + host); }
};

// The kinds of cluster record, one table each. A new leader stamps its epoch on all of them.
inline constexpr std::array<std::string_view, 12> kRecordKinds{
    "hosts",    "vms",    "volumes",    "images",   "networks",    "ports",
    "segments", "groups", "identities", "bindings", "revocations", "tokens"};

}  // namespace qiao
