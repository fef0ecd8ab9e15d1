// FakeFlows: an in-memory FlowInstaller for unit tests of what programs the flows (the Fabric,
// and the services above it). It keeps the last table installed per bridge, applies updates
// as ovs-ofctl would, and can be made unreachable like a stopped ovs-vswitchd (`down`) or made
// to fail chosen installs (`faults`).
#pragma once

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "network/flows.h"
#include "tests/doubles/fault_plan.h"

namespace qiao::testing {

enum class FlowOp { kReplace, kUpdate };

// Keeps the last replaced flows; dump() returns them sorted, unless told to lose some.
class FakeFlows : public FlowInstaller {
 public:
  Status replace(const std::string& bridge, const std::vector<std::string>& flows) override {
    if (down) return makeError(ErrorCode::kUnavailable, "ovs", "vswitchd down");
    if (auto fault = faults.onCall(FlowOp::kReplace)) return std::unexpected(fault->error);
    table[bridge] = flows;
    std::sort(table[bridge].begin(), table[bridge].end());
    ++installs;
    return {};
  }
  // Applies the difference as ovs-ofctl would with flowDiff()'s lines: by table, priority and
  // match, touching nothing else (a flow lost meanwhile stays lost).
  Status update(const std::string& bridge, const std::vector<std::string>& from,
                const std::vector<std::string>& to) override {
    if (down) return makeError(ErrorCode::kUnavailable, "ovs", "vswitchd down");
    if (auto fault = faults.onCall(FlowOp::kUpdate)) return std::unexpected(fault->error);
    ++updates;
    auto key = [](const std::string& f) { return f.substr(0, f.find(",actions=")); };
    const std::set<std::string> old_flows(from.begin(), from.end());
    const std::set<std::string> new_flows(to.begin(), to.end());
    std::set<std::string> new_keys;
    for (const auto& f : to) new_keys.insert(key(f));
    auto& table = this->table[bridge];
    auto drop_key = [&](const std::string& k) {
      std::erase_if(table, [&](const std::string& f) { return key(f) == k; });
    };
    for (const auto& f : from) {
      if (!new_flows.contains(f) && !new_keys.contains(key(f))) drop_key(key(f));
    }
    for (const auto& f : to) {
      if (old_flows.contains(f)) continue;
      drop_key(key(f));
      table.push_back(f);
    }
    std::sort(table.begin(), table.end());
    return {};
  }
  Result<std::vector<std::string>> dump(const std::string& bridge) override {
    if (down) return makeError(ErrorCode::kUnavailable, "ovs", "vswitchd down");
    return table[bridge];
  }
  Status flushZone(int zone, const std::string& address) override {
    if (down) return makeError(ErrorCode::kUnavailable, "ovs", "vswitchd down");
    if (address.empty()) {
      flushed.push_back(zone);
    } else {
      flushed_addresses.emplace_back(zone, address);
    }
    return {};
  }
  std::vector<int> flushed;
  std::vector<std::pair<int, std::string>> flushed_addresses;
  std::map<std::string, std::vector<std::string>> table;
  int installs = 0;
  int updates = 0;
  bool down = false;
  // Installs that fail (before anything is installed: FaultTiming is not looked at).
  FaultPlan<FlowOp> faults;
};

}  // namespace qiao::testing
