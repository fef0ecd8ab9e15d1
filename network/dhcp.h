// DHCP and DNS of a tenant network: one dnsmasq per network, in a network namespace of its
// own, reached from br-int through a veth pair (a veth keeps working across an OVS restart,
// where an internal port moved into a namespace would go dead). It serves fixed addresses by
// MAC only (no dynamic pool: every address is Qiao's IPAM's), the gateway, DNS servers and
// the MTU, and answers DNS for the network's VM names. dnsmasq runs as a daemon of its own, so
// DHCP keeps serving while qiaod restarts; ensure() starts it when it is not running (it died,
// or the host rebooted) and makes it re-read its files when they changed.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "network/ipam.h"

namespace qiao {

struct DhcpHost {
  std::string mac, ip, hostname;
  bool operator==(const DhcpHost&) const = default;
};

struct DhcpConfig {
  std::string key;         // names the files and the namespace; the network's uuid
  std::string outer;       // veth end on br-int
  std::string inner;       // veth end in the namespace
  std::string mac;         // of the inner end
  std::string ip;          // of the inner end (the DNS server the guests get)
  Ipv4Subnet subnet;
  std::string gateway;     // "" = no router option
  std::vector<std::string> dns;  // "" = dnsmasq itself
  int mtu = 1500;
  std::string domain;      // DNS suffix of the VM names
  std::vector<DhcpHost> hosts;
};

class DhcpServers {
 public:
  // `run_dir` holds one folder per network (files dnsmasq reads after it dropped privileges:
  // world-readable, rebuilt from the store at any time).
  explicit DhcpServers(std::string run_dir, std::string program = "dnsmasq");

  static std::string netnsOf(const DhcpConfig& config) { return "qiao-dhcp-" + config.key; }
  // Namespace, veth (not the OVS port: the caller plugs `outer`), files, process. Idempotent.
  Status ensure(const DhcpConfig& config);
  // True when its dnsmasq runs.
  bool running(const std::string& key) const;
  // Stops dnsmasq, removes the veth, the namespace and the files. Idempotent.
  Status remove(const DhcpConfig& config);

 private:
  std::string dirOf(const std::string& key) const { return run_dir_ + "/" + key; }
  int pidOf(const std::string& key) const;  // 0 when not running
  Status start(const DhcpConfig& config, const std::vector<std::string>& argv);

  std::string run_dir_;
  std::string program_;
};

}  // namespace qiao
