// ClusterMember: what makes a qiaod a member of its cluster. It registers the host's record,
// keeps the host's lease (renewed at a third of its duration, the renewal's time noted next to
// it for the lease age) and runs for leader, on one thread of its own. step() is one round of
// all of it; the thread calls it at the pace the leases ask, tests call it with a ManualClock.
//
// A clean stop resigns the leadership (another member takes over at its next attempt) but
// keeps the host lease until it lapses: a qiaod restarted within the lease duration finds its
// predecessor's lease, which it breaks once that client is blocklisted (qiaod blocklists the
// Ceph client of its previous run when it connects), so the host is never seen unreachable
// for a restart.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "base/clock.h"
#include "base/error.h"
#include "cluster/cluster_pool.h"
#include "cluster/hosts.h"
#include "cluster/leader.h"
#include "cluster/lease.h"
#include "storage/rados_cluster.h"

namespace qiao {

struct ClusterMemberOptions {
  ClusterPool pool;
  HostRecord self;  // name, arch, capacity, site, labels, endpoint
  LeaseTiming timing;
  std::string cookie;  // this process's (unique per run)
};

class ClusterMember {
 public:
  ClusterMember(RadosCluster& rados, ClusterMemberOptions options, Clock& clock);
  ~ClusterMember();
  ClusterMember(const ClusterMember&) = delete;
  ClusterMember& operator=(const ClusterMember&) = delete;

  // Starts the thread (which registers the host as soon as Ceph answers).
  void start();
  // Resigns the leadership and joins the thread. Idempotent.
  void stop();

  // One round: register (until done), take or renew the host lease, run for leader while the
  // host holds its lease.
  void step();
  Clock::Steady nextStep() const;

  bool registered() const;
  // The host holds its lease: it reaches Ceph and the cluster sees it alive.
  bool alive() const { return host_lease_.held(); }
  // This member's epoch while it is the leader.
  std::optional<uint64_t> leaderEpoch() const { return leader_.epoch(); }

  Membership& membership() { return membership_; }
  LeaderElection& leader() { return leader_; }
  const HostRecord& self() const { return options_.self; }
  const ClusterPool& pool() const { return options_.pool; }
  RadosCluster& rados() { return rados_; }

 private:
  void breakStaleLease();
  void markReady();
  void run();

  RadosCluster& rados_;
  const ClusterMemberOptions options_;
  Clock& clock_;
  Membership membership_;
  Lease host_lease_;
  LeaderElection leader_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool registered_ = false;
  bool stopping_ = false;
  bool was_alive_ = false;
  std::optional<std::string> last_problem_;
  std::thread thread_;
};

}  // namespace qiao
