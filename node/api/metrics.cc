#include "node/api/metrics.h"

#include <cstdio>
#include <tuple>

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

// One metric family: its HELP and TYPE lines, then a sample for each (labels, value).
class Family {
 public:
  Family(std::string& out, std::string name, const std::string& type, const std::string& help)
      : out_(out), name_(std::move(name)) {
    out_ += "# HELP " + name_ + " " + help + "\n";
    out_ += "# TYPE " + name_ + " " + type + "\n";
  }
  void sample(const std::string& labels, const std::string& value) {
    out_ += name_ + "{" + labels + "} " + value + "\n";
  }

 private:
  std::string& out_;
  std::string name_;
};

std::string vmLabels(const VmFigures& vm) {
  return "tenant=\"" + label(vm.tenant) + "\",vm=\"" + label(vm.name) + "\"";
}

std::string diskLabels(const VmFigures& vm, const VmFigures::Disk& disk) {
  return vmLabels(vm) + ",volume=\"" + label(disk.ref.volume) + "\",backend=\"" +
         label(disk.ref.backend) + "\"";
}

std::string nicLabels(const VmFigures& vm, const VmFigures::Nic& nic) {
  return vmLabels(vm) + ",mac=\"" + label(nic.ref.mac) + "\",network=\"" +
         label(nic.ref.network) + "\"";
}

std::string count(uint64_t value) { return std::to_string(value); }

// Per-VM series. Disks and NICs only with figures (a running VM); a part of a running VM that
// could not be read this time is in qiao_vm_figures_missing instead (its reason is in the
// VM's stats object and, at debug level, in the log).
void renderVms(std::string& out, const std::vector<VmFigures>& vms) {
  {
    Family f(out, "qiao_vm_cpu_seconds_total", "counter",
             "CPU time used by the VM's vCPUs and QEMU.");
    for (const auto& vm : vms) {
      f.sample(vmLabels(vm), number(static_cast<double>(vm.domain.cpu_time_ns) / 1e9));
    }
  }
  for (auto [name, field, help] :
       {std::tuple{"qiao_vm_cpu_user_seconds_total", &DomainStats::cpu_user_ns,
                   "CPU time of the VM's QEMU process in user mode (guest time included)."},
        std::tuple{"qiao_vm_cpu_system_seconds_total", &DomainStats::cpu_system_ns,
                   "CPU time of the VM's QEMU process in the host kernel."}}) {
    Family f(out, name, "counter", help);
    for (const auto& vm : vms) {
      const auto& value = vm.domain.*field;
      if (value) f.sample(vmLabels(vm), number(static_cast<double>(*value) / 1e9));
    }
  }
  {
    Family f(out, "qiao_vm_vcpus", "gauge", "vCPUs the VM has online.");
    for (const auto& vm : vms) {
      if (vm.live()) f.sample(vmLabels(vm), std::to_string(vm.domain.vcpus_current));
    }
  }
  for (auto [name, field, help] :
       {std::tuple{"qiao_vm_memory_rss_bytes", &DomainStats::memory_rss_kib,
                   "Resident memory of the VM's QEMU process."},
        std::tuple{"qiao_vm_memory_max_bytes", &DomainStats::memory_max_kib,
                   "Memory assigned to the VM."},
        std::tuple{"qiao_vm_memory_current_bytes", &DomainStats::memory_current_kib,
                   "Memory the balloon leaves to the guest."}}) {
    Family f(out, name, "gauge", help);
    for (const auto& vm : vms) f.sample(vmLabels(vm), count(vm.domain.*field * 1024));
  }
  for (auto [name, field, help] :
       {std::tuple{"qiao_vm_memory_guest_unused_bytes", &DomainStats::memory_unused_kib,
                   "Memory the guest leaves unused (its balloon driver's report)."},
        std::tuple{"qiao_vm_memory_guest_available_bytes", &DomainStats::memory_available_kib,
                   "Memory the guest sees (its balloon driver's report)."},
        std::tuple{"qiao_vm_memory_guest_usable_bytes", &DomainStats::memory_usable_kib,
                   "Memory the guest could use without swapping (its balloon driver's report)."}}) {
    Family f(out, name, "gauge", help);
    for (const auto& vm : vms) {
      const auto& value = vm.domain.*field;
      if (value) f.sample(vmLabels(vm), count(*value * 1024));
    }
  }
  for (auto [name, field, help] :
       {std::tuple{"qiao_vm_disk_read_bytes_total", &BlockFigures::read_bytes,
                   "Bytes the guest read from the disk."},
        std::tuple{"qiao_vm_disk_read_ops_total", &BlockFigures::read_ops,
                   "Read requests the guest made to the disk."},
        std::tuple{"qiao_vm_disk_write_bytes_total", &BlockFigures::write_bytes,
                   "Bytes the guest wrote to the disk."},
        std::tuple{"qiao_vm_disk_write_ops_total", &BlockFigures::write_ops,
                   "Write requests the guest made to the disk."},
        std::tuple{"qiao_vm_disk_flush_ops_total", &BlockFigures::flush_ops,
                   "Flush requests the guest made to the disk."}}) {
    Family f(out, name, "counter", help);
    for (const auto& vm : vms) {
      for (const auto& disk : vm.disks) {
        if (disk.figures) f.sample(diskLabels(vm, disk), count((*disk.figures).*field));
      }
    }
  }
  for (auto [name, field, help] :
       {std::tuple{"qiao_vm_nic_rx_bytes_total", &DomainNicStats::rx_bytes,
                   "Bytes the VM received on the NIC."},
        std::tuple{"qiao_vm_nic_rx_packets_total", &DomainNicStats::rx_packets,
                   "Packets the VM received on the NIC."},
        std::tuple{"qiao_vm_nic_rx_errors_total", &DomainNicStats::rx_errors,
                   "Receive errors on the NIC."},
        std::tuple{"qiao_vm_nic_rx_drops_total", &DomainNicStats::rx_drops,
                   "Packets for the VM dropped on the NIC."},
        std::tuple{"qiao_vm_nic_tx_bytes_total", &DomainNicStats::tx_bytes,
                   "Bytes the VM sent on the NIC."},
        std::tuple{"qiao_vm_nic_tx_packets_total", &DomainNicStats::tx_packets,
                   "Packets the VM sent on the NIC."},
        std::tuple{"qiao_vm_nic_tx_errors_total", &DomainNicStats::tx_errors,
                   "Transmit errors on the NIC."},
        std::tuple{"qiao_vm_nic_tx_drops_total", &DomainNicStats::tx_drops,
                   "Packets from the VM dropped on the NIC."}}) {
    Family f(out, name, "counter", help);
    for (const auto& vm : vms) {
      for (const auto& nic : vm.nics) {
        if (nic.figures) f.sample(nicLabels(vm, nic), count((*nic.figures).*field));
      }
    }
  }
  {
    Family f(out, "qiao_vm_figures_missing", "gauge",
             "1 for each part of a running VM whose figures could not be read for this scrape "
             "(a QEMU that did not answer in time, a tap that is gone).");
    for (const auto& vm : vms) {
      for (const auto& m : vm.missing) {
        f.sample(vmLabels(vm) + ",part=\"" + label(m.part) + "\"", "1");
      }
    }
  }
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
                            const std::vector<VmFigures>& vms) const {
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
  renderVms(out, vms);
  return out;
}

}  // namespace qiao
