// TunnelPeers: a cluster member's tunnel peers follow the cluster's membership. The peers are
// the tunnel addresses (network.tunnel_ip, published in the host records) of every other host
// of the cluster that is not removed - an unreachable host stays a peer: it may come back, and
// its idle tunnel costs nothing meanwhile. The hosts table is read again at once when it
// announces a change (a watch on its object), and every `interval` besides (a missed notify,
// a broken watch, Ceph back after an outage); the fabric gets the whole set each time and
// changes only what differs (network/fabric.h setTunnelPeers). One thread of its own.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "cluster/hosts.h"
#include "cluster/record_table.h"
#include "network/fabric.h"
#include "storage/rados_cluster.h"

namespace qiao {

struct TunnelPeersOptions {
  std::string self;       // this host's name in the cluster
  std::string tunnel_ip;  // this host's tunnel address
  std::chrono::milliseconds interval{5000};
};

// The peers of host `self` (at `self_ip`) among `hosts`, sorted and distinct. A record whose
// address is not a host's unicast IPv4 address, or is this host's own, is left out and named
// in `skipped` ("NAME: why").
std::vector<std::string> tunnelPeersOf(const std::vector<HostRecord>& hosts,
                                       const std::string& self, const std::string& self_ip,
                                       std::vector<std::string>* skipped = nullptr);

class TunnelPeers {
 public:
  TunnelPeers(RadosCluster& rados, RecordTable& hosts, Fabric& fabric, TunnelPeersOptions options);
  ~TunnelPeers();
  TunnelPeers(const TunnelPeers&) = delete;
  TunnelPeers& operator=(const TunnelPeers&) = delete;

  void start();
  // Joins the thread and drops the watch. Idempotent.
  void stop();
  // Reads the hosts table and gives the fabric its peers, now (the thread's one round).
  Status refresh();

 private:
  void run();
  void wake();

  RadosCluster& rados_;
  RecordTable& hosts_;
  Fabric& fabric_;
  const TunnelPeersOptions options_;
  Logger log_{"network"};

  std::mutex mutex_;
  std::condition_variable wake_;
  bool wake_now_ = false;
  bool stopping_ = false;
  std::thread thread_;
  std::unique_ptr<RadosWatch> watch_;  // the thread's
  std::vector<std::string> last_skipped_;
  std::string last_error_;
};

}  // namespace qiao
