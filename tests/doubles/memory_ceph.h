// MemoryCeph: a double of Ceph as the cluster's coordinator (storage/rados_cluster.h), for
// unit tests: several clients of one in-memory cluster, lock durations measured by a Clock,
// blocklisted clients refused, and Ceph made unreachable on demand. The RADOS conformance
// suite (tests/unit/storage/rados_conformance.h) runs against it and against the real Ceph.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "base/clock.h"
#include "storage/rados_cluster.h"

namespace qiao {

class MemoryCeph {
 public:
  explicit MemoryCeph(Clock& clock) : clock_(clock) {}
  // A new client, with its own id and address ("127.0.0.1:0/<n>").
  std::unique_ptr<RadosCluster> client();
  // While false, every call of every client answers kUnavailable.
  void setReachable(bool reachable);

 private:
  class Client;
  struct Lock {
    LockHolder holder;
    std::optional<Clock::Steady> expires;
  };
  Clock& clock_;
  std::mutex mutex_;
  bool reachable_ = true;
  uint64_t next_id_ = 4100;
  std::map<std::string, std::string> blocklist_;  // address -> until (text)
  std::map<std::string, Lock> locks_;             // "pool/ns/name\nlock" -> holder
};

}  // namespace qiao
