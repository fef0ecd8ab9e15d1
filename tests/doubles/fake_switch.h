// FakeSwitch: an in-memory Switch for unit tests of what drives the switch. It keeps bridges and
// ports as OVS would (a port gets the lowest free ofport of its bridge unless it requests one;
// ensured on another bridge, it moves there), can be made unreachable like a stopped
// ovsdb-server, and calls the change handler after every change - synchronously, on the
// caller's thread, after its lock is released (the real one calls it on its reader thread).
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "network/switch.h"

namespace qiao::testing {

class FakeSwitch : public Switch {
 public:
  struct Bridge {
    std::string datapath_type;
    std::string fail_mode;
    std::map<std::string, SwitchPortState> ports;  // by name
  };

  Status ping() override {
    std::lock_guard lock(mu_);
    return checkAvailable();
  }

  Status ensureBridge(const std::string& bridge, const std::string& datapath_type,
                      const std::string& fail_mode = "secure") override {
    {
      std::lock_guard lock(mu_);
      if (auto ok = checkAvailable(); !ok) return ok;
      if (auto ok = checkName(bridge); !ok) return ok;
      const bool made = !bridges_.contains(bridge);
      auto& b = bridges_[bridge];
      const bool enforce = fail_mode == "secure";
      if (!made && b.datapath_type == datapath_type && (!enforce || b.fail_mode == fail_mode)) {
        return {};
      }
      b.datapath_type = datapath_type;
      if (made || enforce) b.fail_mode = fail_mode;
      ++writes_;
    }
    notify();
    return {};
  }

  Status ensurePort(const std::string& bridge, const SwitchPort& port) override {
    {
      std::lock_guard lock(mu_);
      if (auto ok = checkAvailable(); !ok) return ok;
      if (auto ok = checkName(port.name); !ok) return ok;
      // As the real one: the bridge's own port is OVS's; OpenFlow's reserved numbers are not
      // for ports.
      if (port.name == bridge || port.ofport_request < 0 || port.ofport_request > 65279) {
        return makeError(ErrorCode::kInvalidArgument, "ovsdb",
                         "port " + port.name + " cannot be ensured as asked");
      }
      auto target = bridges_.find(bridge);
      if (target == bridges_.end()) {
        return makeError(ErrorCode::kNotFound, "ovsdb", "bridge " + bridge + " does not exist");
      }
      std::optional<SwitchPortState> existing;
      for (auto& [name, b] : bridges_) {
        auto it = b.ports.find(port.name);
        if (it == b.ports.end()) continue;
        if (name == bridge && it->second.port == port) return {};  // already as wanted
        existing = std::move(it->second);
        b.ports.erase(it);
      }
      SwitchPortState state = existing.value_or(SwitchPortState{});
      state.port = port;
      if (port.ofport_request != 0)
        state.ofport = port.ofport_request;
      else if (state.ofport < 0)
        state.ofport = freeOfport(target->second);
      if (auto forced = forced_.find(port.name); forced != forced_.end()) {
        state.ofport = forced->second.first;
        state.error = forced->second.second;
      }
      target->second.ports[port.name] = std::move(state);
      ++writes_;
    }
    notify();
    return {};
  }

  Status removePort(const std::string& bridge, const std::string& name) override {
    {
      std::lock_guard lock(mu_);
      if (auto ok = checkAvailable(); !ok) return ok;
      auto b = bridges_.find(bridge);
      if (b == bridges_.end() || b->second.ports.erase(name) == 0) return {};
      ++writes_;
    }
    notify();
    return {};
  }

  Result<std::vector<SwitchPortState>> listPorts(const std::string& bridge) override {
    std::lock_guard lock(mu_);
    if (auto ok = checkAvailable(); !ok) return std::unexpected(ok.error());
    auto b = bridges_.find(bridge);
    if (b == bridges_.end()) {
      return makeError(ErrorCode::kNotFound, "ovsdb", "bridge " + bridge + " does not exist");
    }
    std::vector<SwitchPortState> ports;
    for (const auto& [name, state] : b->second.ports) ports.push_back(state);
    return ports;
  }

  void setChangeHandler(std::function<void()> handler) override {
    std::lock_guard lock(mu_);
    handler_ = std::move(handler);
  }

  // ---- What tests steer and look at ----

  // Every call answers kUnavailable, as with ovsdb-server stopped. Coming back (false) calls
  // the change handler, as the real switch does after a reconnection.
  void setUnavailable(bool unavailable) {
    {
      std::lock_guard lock(mu_);
      unavailable_ = unavailable;
    }
    if (!unavailable) notify();
  }
  // What OVS reports for port `name` from now on, wherever it is (ofport -1 and an error: the
  // device could not be attached). Calls the change handler.
  void setPortState(const std::string& name, int64_t ofport, const std::string& error) {
    {
      std::lock_guard lock(mu_);
      forced_[name] = {ofport, error};
      for (auto& [bridge_name, b] : bridges_) {
        if (auto it = b.ports.find(name); it != b.ports.end()) {
          it->second.ofport = ofport;
          it->second.error = error;
        }
      }
    }
    notify();
  }
  // A change made behind Qiao's back (ovs-vsctl del-port): the port goes, the handler is called.
  void dropPortBehindTheBack(const std::string& bridge, const std::string& name) {
    {
      std::lock_guard lock(mu_);
      if (auto b = bridges_.find(bridge); b != bridges_.end()) b->second.ports.erase(name);
    }
    notify();
  }
  // Calls the change handler as a reconnection would.
  void fireChange() { notify(); }

  std::map<std::string, Bridge> bridges() const {
    std::lock_guard lock(mu_);
    return bridges_;
  }
  std::optional<SwitchPortState> port(const std::string& bridge, const std::string& name) const {
    std::lock_guard lock(mu_);
    auto b = bridges_.find(bridge);
    if (b == bridges_.end()) return std::nullopt;
    auto p = b->second.ports.find(name);
    if (p == b->second.ports.end()) return std::nullopt;
    return p->second;
  }
  // Calls that changed something (an idempotent step run again adds none).
  int writes() const {
    std::lock_guard lock(mu_);
    return writes_;
  }

 private:
  Status checkAvailable() const {
    if (!unavailable_) return {};
    return makeError(ErrorCode::kUnavailable, "ovsdb",
                     "cannot connect to ovsdb-server at fake: Connection refused");
  }
  static Status checkName(const std::string& name) {
    if (!name.empty() && name.size() <= 15) return {};
    return makeError(ErrorCode::kInvalidArgument, "ovsdb",
                     "\"" + name + "\" is not a valid interface name");
  }
  // The lowest number no port of the bridge has, as ovs-vswitchd chooses.
  static int64_t freeOfport(const Bridge& b) {
    for (int64_t n = 1;; ++n) {
      bool used = false;
      for (const auto& [name, state] : b.ports) used = used || state.ofport == n;
      if (!used) return n;
    }
  }
  void notify() {
    std::function<void()> handler;
    {
      std::lock_guard lock(mu_);
      handler = handler_;
    }
    if (handler) handler();
  }

  mutable std::mutex mu_;
  std::map<std::string, Bridge> bridges_;
  std::map<std::string, std::pair<int64_t, std::string>> forced_;
  std::function<void()> handler_;
  bool unavailable_ = false;
  int writes_ = 0;
};

}  // namespace qiao::testing
