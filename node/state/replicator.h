// Replicator: keeps a cluster member's SQLite cache of the cluster's records current
// (node/state/mirror.h). It watches the RADOS table object of each mirrored kind: a notify names
// the record that changed, which it reads again; a watch that broke (notifies may have been
// missed) and a sweep every `sweep` read the whole table again. syncNow() makes the first full
// read before the services start; the thread does the rest. Ceph out of reach: the cache stays
// as it was and the thread tries again every second.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "node/state/mirror.h"
#include "storage/rados_cluster.h"

namespace qiao {

class Replicator {
 public:
  Replicator(RadosCluster& rados, std::vector<Replicated*> kinds, Clock& clock,
             std::chrono::seconds sweep = std::chrono::seconds(30));
  ~Replicator();  // stop()
  Replicator(const Replicator&) = delete;
  Replicator& operator=(const Replicator&) = delete;

  // Watches every kind and reads it whole. The first error (Ceph out of reach) is returned; the
  // kinds it could not read are read again by the thread.
  Status syncNow();
  // One round: the watches that broke made again, the records announced read again, and the
  // kinds whose watch broke or whose sweep is due read whole.
  void step();
  void start();
  void stop();

 private:
  struct Kind {
    Replicated* replica = nullptr;
    std::unique_ptr<RadosWatch> watch;
    bool stale = true;           // read it whole at the next step
    std::set<std::string> keys;  // announced since the last step
  };
  void run();

  RadosCluster& rados_;
  Clock& clock_;
  const std::chrono::seconds sweep_;
  std::mutex mutex_;  // kinds_' stale and keys; the watches' callbacks take it
  std::condition_variable wake_;
  std::vector<std::unique_ptr<Kind>> kinds_;
  Clock::Steady next_sweep_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace qiao
