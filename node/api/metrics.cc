#include "node/api/metrics.h"

#include <cstdio>

namespace qiao {
namespace {

// Label values are escaped as the text format asks: backslash, double quote and newline.
std::string label(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string number(double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", value);
  return buf;
}

}  // namespace

void Metrics::observeRequest(const std::string& method, const std::string& route, int status,
                             double seconds) {
  std::lock_guard lock(mutex_);
  ++requests_[{method, route, status}];
  auto& h = latency_[{method, route}];
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += seconds;
}

std::string Metrics::render(const std::map<std::string, int>& vms_by_state,
                            const std::vector<VmMetric>& vms) const {
  std::string out;
  {
    std::lock_guard lock(mutex_);
    out += "# HELP qiao_api_requests_total API requests by route and status.\n";
    out += "# TYPE qiao_api_requests_total counter\n";
    for (const auto& [key, count] : requests_) {
      const auto& [method, route, status] = key;
      out += "qiao_api_requests_total{method=\"" + label(method) + "\",route=\"" + label(route) +
             "\",status=\"" + std::to_string(status) + "\"} " + std::to_string(count) + "\n";
    }
    out += "# HELP qiao_api_request_duration_seconds API request latency.\n";
    out += "# TYPE qiao_api_request_duration_seconds histogram\n";
    for (const auto& [key, h] : latency_) {
      std::string labels = "method=\"" + label(key.first) + "\",route=\"" + label(key.second) + "\"";
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        out += "qiao_api_request_duration_seconds_bucket{" + labels + ",le=\"" +
               number(kBuckets[i]) + "\"} " + std::to_string(h.buckets[i]) + "\n";
      }
      out += "qiao_api_request_duration_seconds_bucket{" + labels + ",le=\"+Inf\"} " +
             std::to_string(h.count) + "\n";
      out += "qiao_api_request_duration_seconds_sum{" + labels + "} " + number(h.sum) + "\n";
      out += "qiao_api_request_duration_seconds_count{" + labels + "} " +
             std::to_string(h.count) + "\n";
    }
  }
  out += "# HELP qiao_vms VMs known to this node by state.\n";
  out += "# TYPE qiao_vms gauge\n";
  for (const auto& [state, count] : vms_by_state) {
    out += "qiao_vms{state=\"" + label(state) + "\"} " + std::to_string(count) + "\n";
  }
  out += "# HELP qiao_vm_cpu_seconds_total CPU time used by the VM's vCPUs and QEMU.\n";
  out += "# TYPE qiao_vm_cpu_seconds_total counter\n";
  for (const auto& vm : vms) {
    out += "qiao_vm_cpu_seconds_total{tenant=\"" + label(vm.tenant) + "\",vm=\"" +
           label(vm.name) + "\"} " + number(static_cast<double>(vm.cpu_time_ns) / 1e9) + "\n";
  }
  out += "# HELP qiao_vm_memory_rss_bytes Resident memory of the VM.\n";
  out += "# TYPE qiao_vm_memory_rss_bytes gauge\n";
  for (const auto& vm : vms) {
    out += "qiao_vm_memory_rss_bytes{tenant=\"" + label(vm.tenant) + "\",vm=\"" +
           label(vm.name) + "\"} " + std::to_string(vm.memory_rss_bytes) + "\n";
  }
  out += "# HELP qiao_vm_memory_max_bytes Memory assigned to the VM.\n";
  out += "# TYPE qiao_vm_memory_max_bytes gauge\n";
  for (const auto& vm : vms) {
    out += "qiao_vm_memory_max_bytes{tenant=\"" + label(vm.tenant) + "\",vm=\"" +
           label(vm.name) + "\"} " + std::to_string(vm.memory_max_bytes) + "\n";
  }
  return out;
}

}  // namespace qiao
