// LeaderElection: one leader per cluster. The leader holds the lease on the leader object; on
// taking it, it starts a new epoch (a guarded increment of the leader object's "epoch" entry)
// and stamps that epoch on every record table before it acts. Its writes as leader carry the
// epoch (RecordTable's `epoch` argument), so a deposed leader that still runs (paused, cut off,
// slow) is refused by the store once its successor has stamped the tables. When the leader's
// host dies, its lease lapses after the lease duration and another member, trying every
// retry interval, takes over: a new leader within duration + retry + one round of stamping.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "base/clock.h"
#include "base/error.h"
#include "cluster/cluster_pool.h"
#include "cluster/lease.h"
#include "storage/rados_cluster.h"

namespace qiao {

struct LeaderInfo {
  std::string member;  // "" when no leader was ever elected
  uint64_t epoch = 0;
  std::string since;  // RFC 3339, when that epoch began
};

class LeaderElection {
 public:
  LeaderElection(RadosCluster& rados, ClusterPool pool, std::string member, std::string cookie,
                 LeaseTiming timing, Clock& clock);

  // One round: takes or renews the leader lease; a member that has just taken it starts a new
  // epoch and stamps the tables before epoch() answers.
  void step();
  // This member's epoch while it leads (its lease held and its tables stamped), else nullopt.
  std::optional<uint64_t> epoch() const;
  Clock::Steady nextStep() const { return lease_.nextStep(); }
  // Who leads, as the leader object says (it may name a member whose lease has lapsed).
  Result<LeaderInfo> current();
  // Gives the office up (a clean stop): another member takes over at its next attempt.
  void resign();

 private:
  Result<uint64_t> beginEpoch();

  RadosCluster& rados_;
  const ClusterPool pool_;
  const std::string member_;
  Clock& clock_;
  Lease lease_;
  mutable std::mutex mutex_;
  std::optional<uint64_t> epoch_;
};

}  // namespace qiao
