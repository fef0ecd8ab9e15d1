// Switch: Open vSwitch's database as Qiao sees it - bridges, and ports with their one
// interface each. The real one (ovsdb_switch.cc) speaks RFC 7047 to ovsdb-server through
// OvsdbClient; tests use a fake. No ovs-vsctl anywhere. Flows are not here: they go through
// ovs-ofctl bundles (flows.h).
//
// Every call is idempotent (ensure* of what exists changes nothing; remove of what is absent
// succeeds), so a task step can be run again after a crash. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"

namespace qiao {

// A port and its interface (same name), as Qiao wants it.
struct SwitchPort {
  std::string name;           // interface name, <= 15 bytes (IFNAMSIZ - 1)
  std::string type;           // "" (a system device: tap, veth), "internal", "vxlan", "geneve"
  int64_t ofport_request = 0; // 0 = OVS chooses; else the OpenFlow port number to ask for
  std::map<std::string, std::string> external_ids;  // Interface.external_ids
  std::map<std::string, std::string> options;       // Interface.options (tunnels: remote_ip, key)
  bool operator==(const SwitchPort&) const = default;
};

// A port as it is in the database.
struct SwitchPortState {
  SwitchPort port;
  int64_t ofport = -1;  // -1 while OVS has not (or could not) attach the interface
  std::string error;    // Interface.error, "" when none
};

struct SwitchOptions {
  std::string socket = "/var/run/openvswitch/db.sock";  // unix socket of ovsdb-server
  int timeout_ms = 5000;                                 // per call
};

class Switch {
 public:
  virtual ~Switch() = default;

  // kUnavailable when ovsdb-server cannot be reached (it may start after qiaod).
  virtual Status ping() = 0;
  // Creates the bridge when missing (added to Open_vSwitch.bridges) and sets datapath_type and
  // fail_mode: "secure" (no NORMAL flow of OVS's own: only Qiao's flows forward; an existing
  // bridge is set so) or "standalone" (a learning switch: a provider bridge; the fail_mode of
  // an existing bridge is then left as its owner set it).
  virtual Status ensureBridge(const std::string& bridge, const std::string& datapath_type,
                              const std::string& fail_mode = "secure") = 0;
  // Creates or updates the port so that type, ofport_request, external_ids and options are
  // exactly `port`'s. A port of that name on another bridge is moved.
  virtual Status ensurePort(const std::string& bridge, const SwitchPort& port) = 0;
  virtual Status removePort(const std::string& bridge, const std::string& name) = 0;
  // kNotFound when the bridge does not exist.
  virtual Result<std::vector<SwitchPortState>> listPorts(const std::string& bridge) = 0;
  // Called whenever Bridge/Port/Interface change or the connection to ovsdb-server comes back
  // after a loss (ovsdb-server or ovs-vswitchd restarted). Runs on the client's thread: the
  // handler only schedules work.
  virtual void setChangeHandler(std::function<void()> handler) = 0;
};

std::unique_ptr<Switch> makeOvsdbSwitch(const SwitchOptions& options);

}  // namespace qiao
