#include "node/networks/tunnel_peers.h"

#include <algorithm>

#include "network/ipam.h"

namespace qiao {

std::vector<std::string> tunnelPeersOf(const std::vector<HostRecord>& hosts,
                                       const std::string& self, const std::string& self_ip,
                                       std::vector<std::string>* skipped) {
  std::set<std::string> peers;
  auto skip = [&](const HostRecord& h, const std::string& why) {
    if (skipped != nullptr) skipped->push_back(h.name + ": " + why);
  };
  for (const auto& h : hosts) {
    if (h.name == self || h.state == HostState::kRemoved || h.tunnel_ip.empty()) continue;
    // The address goes into OVSDB: only a canonical unicast dotted quad (as the config's check
    // of network.tunnel_ip, which the host published).
    auto ip = parseIpv4(h.tunnel_ip, "tunnel_ip");
    const uint32_t first = ip ? *ip >> 24 : 0;
    if (!ip || formatIpv4(*ip) != h.tunnel_ip || first == 0 || first == 127 || first >= 224) {
      skip(h, "tunnel_ip is not a host's IPv4 address");
      continue;
    }
    if (h.tunnel_ip == self_ip) {
      skip(h, "tunnel_ip " + h.tunnel_ip + " is this host's own");
      continue;
    }
    peers.insert(h.tunnel_ip);
  }
  return {peers.begin(), peers.end()};
}

TunnelPeers::TunnelPeers(RadosCluster& rados, RecordTable& hosts, Fabric& fabric,
                         TunnelPeersOptions options)
    : rados_(rados), hosts_(hosts), fabric_(fabric), options_(std::move(options)) {}

TunnelPeers::~TunnelPeers() { stop(); }

void TunnelPeers::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread(withLogScope([this] { run(); }));
}

void TunnelPeers::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    wake_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  watch_.reset();  // after the thread: it is the thread's; unwatching waits for its callbacks
}

void TunnelPeers::wake() {
  std::lock_guard lock(mutex_);
  wake_now_ = true;
  wake_.notify_all();
}

Status TunnelPeers::refresh() {
  auto table = hosts_.readAll();
  if (!table) return std::unexpected(table.error());
  std::vector<HostRecord> hosts;
  std::vector<std::string> skipped;
  for (const auto& [name, text] : table->entries) {
    auto host = hostFromJson(text);
    if (!host) {
      skipped.push_back(name + ": " + host.error().message);
      continue;
    }
    hosts.push_back(std::move(*host));
  }
  auto peers = tunnelPeersOf(hosts, options_.self, options_.tunnel_ip, &skipped);
  if (skipped != last_skipped_) {
    // Each distinct set once, not every round.
    for (const auto& s : skipped) log_.warn("host left out of the tunnel peers", {{"host", s}});
    last_skipped_ = std::move(skipped);
  }
  if (peers.size() > Fabric::kMaxTunnelPeers) {
    log_.warn("more hosts than tunnel slots: the first ones (by address) get tunnels",
              {{"hosts", std::to_string(peers.size())},
               {"slots", std::to_string(Fabric::kMaxTunnelPeers)}});
    peers.resize(Fabric::kMaxTunnelPeers);
  }
  return fabric_.setTunnelPeers(peers);
}

void TunnelPeers::run() {
  while (true) {
    // The watch first (again after it broke): a change announced after it is heard.
    if (watch_ && !watch_->check()) watch_.reset();
    if (!watch_) {
      auto watch = rados_.watch(hosts_.object(), [this](const WatchEvent&) { wake(); });
      if (watch) watch_ = std::move(*watch);
    }
    Status done = refresh();
    const std::string error = done ? "" : done.error().describe();
    if (error != last_error_) {
      if (!error.empty()) {
        log_.warn("tunnel peers not updated; will retry", {{"error", error}});
      } else {
        log_.info("tunnel peers follow the cluster's hosts again");
      }
      last_error_ = error;
    }
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, options_.interval, [this] { return wake_now_ || stopping_; });
    if (stopping_) return;
    wake_now_ = false;
  }
}

}  // namespace qiao
