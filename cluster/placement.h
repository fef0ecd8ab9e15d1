// Placement: which host a new VM goes to. Until the placement issue brings scoring, spreading
// and anti-affinity, the leader places by first fit: the hosts in name order, the first that is
// ready, of the VM's architecture, with room for its vCPUs and memory (each host's capacity
// times the overcommit the cluster allows, less what its VMs already have). Pure: the caller
// gives the hosts and their load (from the cluster's records), the tests give made-up ones.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace qiao {

struct HostLoad {
  std::string name;
  std::string arch;
  bool ready = false;  // ready state and its lease held
  int vcpus = 0;       // the host's cores
  int64_t memory_mib = 0;
  int used_vcpus = 0;  // what its VMs have (their maximums)
  int64_t used_memory_mib = 0;
};

struct PlacementRequest {
  std::string arch;  // "" = any
  int vcpus = 1;
  int64_t memory_mib = 0;
};

struct PlacementPolicy {
  int cpu_overcommit_percent = 400;
  int memory_overcommit_percent = 100;
};

// The first host with room. kResourceExhausted when none has, saying of each host why not.
Result<std::string> firstFit(std::vector<HostLoad> hosts, const PlacementRequest& request,
                             const PlacementPolicy& policy);

}  // namespace qiao
