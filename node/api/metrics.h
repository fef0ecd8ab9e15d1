// Metrics: the counters behind GET /metrics (Prometheus text format 0.0.4): API requests by
// route and status with a latency histogram, VMs by state, and per-VM CPU, memory, disks and
// NICs (docs/operators/monitoring.md lists them).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "node/vm/vm_stats.h"

namespace qiao {

class Metrics {
 public:
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1.0,  2.5};

  // `route` is the route's pattern ("/v1/vms/{name}"), never the raw path: bounded labels.
  void observeRequest(const std::string& method, const std::string& route, int status,
                      double seconds);
  std::string render(const std::map<std::string, int>& vms_by_state,
                     const std::vector<VmFigures>& vms) const;

 private:
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests_;
  std::map<std::pair<std::string, std::string>, Histogram> latency_;
};

}  // namespace qiao
