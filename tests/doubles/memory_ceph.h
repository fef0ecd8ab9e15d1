// MemoryCeph: a double of Ceph as the cluster's coordinator (storage/rados_cluster.h), for
// unit tests: several clients of one in-memory cluster, lock durations measured by a Clock,
// objects with omap, epochs and guarded writes, watch/notify, blocklisted clients refused, and
// Ceph made unreachable on demand (for everyone, or for one client: a partitioned host). The RADOS
// conformance suite (tests/unit/storage/rados_conformance.h) runs against it and against the real
// Ceph.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

#include "base/clock.h"
#include "storage/rados_cluster.h"

namespace qiao {

class MemoryCeph {
 public:
  explicit MemoryCeph(Clock& clock) : clock_(clock) {}
  // A new client, with its own id and address ("<ip>:0/<n>"): give simulated hosts their own
  // IP so that blocklisting "IP:0/0" fences one host's clients.
  std::unique_ptr<RadosCluster> client(const std::string& ip = "127.0.0.1");
  // While false, every call of every client answers kUnavailable.
  void setReachable(bool reachable);
  // While false, the clients of `ip` answer kUnavailable and their watches break (a partition).
  void setReachable(const std::string& ip, bool reachable);
  // The caps of a cephx user made with authGetOrCreate, or nullopt when there is none.
  std::optional<std::map<std::string, std::string>> userCaps(const std::string& entity);

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
  struct CephUser {
    std::string key;
    std::map<std::string, std::string> caps;
  };
  std::map<std::string, CephUser> users_;         // "client.NAME" -> key and caps
  std::map<std::string, Lock> locks_;             // "pool/ns/name\nlock" -> holder
  struct Object {
    uint64_t version = 0;
    std::map<std::string, std::string> omap;
    std::map<std::string, uint64_t> epochs;
  };
  std::map<std::string, Object> objects_;  // "pool/ns/name" -> object
  struct Watcher {
    std::string object, ip, address;  // the watching client's IP and address
    std::function<void(const WatchEvent&)> on_event;
    bool broken = false;
  };
  std::map<uint64_t, std::shared_ptr<Watcher>> watchers_;
  uint64_t next_watch_ = 0;
  std::set<std::string> cut_off_;  // IPs that cannot reach Ceph
  // mutex_ held: marks the watchers `which` selects broken and returns them (to be told after
  // the mutex is released).
  std::vector<std::shared_ptr<Watcher>> breakWatches(
      const std::function<bool(const Watcher&)>& which);
};

}  // namespace qiao
