#include "cluster/placement.h"

#include <algorithm>

namespace qiao {

Result<std::string> firstFit(std::vector<HostLoad> hosts, const PlacementRequest& request,
                             const PlacementPolicy& policy) {
  std::sort(hosts.begin(), hosts.end(),
            [](const HostLoad& a, const HostLoad& b) { return a.name < b.name; });
  std::string why;
  for (const auto& h : hosts) {
    const int64_t vcpu_room = int64_t{h.vcpus} * policy.cpu_overcommit_percent / 100 - h.used_vcpus;
    const int64_t memory_room =
        h.memory_mib * policy.memory_overcommit_percent / 100 - h.used_memory_mib;
    std::string reason;
    if (!h.ready) {
      reason = "not ready";
    } else if (!request.arch.empty() && h.arch != request.arch) {
      reason = "arch " + h.arch;
    } else if (vcpu_room < request.vcpus) {
      reason = std::to_string(std::max<int64_t>(vcpu_room, 0)) + " vCPUs free";
    } else if (memory_room < request.memory_mib) {
      reason = std::to_string(std::max<int64_t>(memory_room, 0)) + " MiB free";
    } else {
      return h.name;
    }
    why += (why.empty() ? "" : "; ") + h.name + ": " + reason;
  }
  if (hosts.empty()) why = "the cluster has no hosts";
  return makeError(ErrorCode::kResourceExhausted, "placement",
                   "no host can take a VM of " + std::to_string(request.vcpus) + " vCPUs and " +
                       std::to_string(request.memory_mib) + " MiB" +
                       (request.arch.empty() ? "" : " (" + request.arch + ")") + ": " + why);
}

}  // namespace qiao
