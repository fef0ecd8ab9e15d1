// parseDomainStats: libvirt's named statistics of one domain (virDomainStatsRecord's typed
// parameters, already copied out of libvirt's types by libvirt_hypervisor.cc) into
// DomainStats. Kept apart from the libvirt adapter so that it is tested without a QEMU: the
// test driver reports only the state group.
#include <charconv>
#include <string_view>

#include "node/vm/hypervisor.h"

namespace qiao {
namespace {

// libvirt numbers the NICs and disks of a domain 0..count-1; a larger index would be a libvirt
// bug, and must not make us allocate without bound.
constexpr size_t kMaxIndexed = 1024;

// "net.3.rx.bytes" with prefix "net." -> index 3, rest "rx.bytes".
bool splitIndexed(std::string_view field, std::string_view prefix, size_t* index,
                  std::string_view* rest) {
  if (!field.starts_with(prefix)) return false;
  field.remove_prefix(prefix.size());
  auto dot = field.find('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  size_t n = 0;
  auto [end, ec] = std::from_chars(field.data(), field.data() + dot, n);
  if (ec != std::errc() || end != field.data() + dot || n >= kMaxIndexed) return false;
  *index = n;
  *rest = field.substr(dot + 1);
  return true;
}

template <typename T>
T& at(std::vector<T>& items, size_t index) {
  if (items.size() <= index) items.resize(index + 1);
  return items[index];
}

DomainState stateOf(const DomainStatField& f) {
  // libvirt's virDomainState numbering (VIR_DOMAIN_RUNNING = 1, ...), stable in its ABI.
  if (f.negative) return DomainState::kNoState;
  switch (f.number) {
    case 1: return DomainState::kRunning;
    case 2: return DomainState::kBlocked;
    case 3: return DomainState::kPaused;
    case 4: return DomainState::kShutdown;
    case 5: return DomainState::kShutoff;
    case 6: return DomainState::kCrashed;
    case 7: return DomainState::kPmSuspended;
    default: return DomainState::kNoState;
  }
}

void applyNic(DomainNicStats& nic, std::string_view rest, const DomainStatField& f) {
  if (rest == "name") nic.device = f.text;
  else if (rest == "rx.bytes") nic.rx_bytes = f.number;
  else if (rest == "rx.pkts") nic.rx_packets = f.number;
  else if (rest == "rx.errs") nic.rx_errors = f.number;
  else if (rest == "rx.drop") nic.rx_drops = f.number;
  else if (rest == "tx.bytes") nic.tx_bytes = f.number;
  else if (rest == "tx.pkts") nic.tx_packets = f.number;
  else if (rest == "tx.errs") nic.tx_errors = f.number;
  else if (rest == "tx.drop") nic.tx_drops = f.number;
}

void applyDisk(DomainDiskStats& disk, std::string_view rest, const DomainStatField& f) {
  if (rest == "name") disk.target = f.text;
  else if (rest == "path") disk.path = f.text;
  else if (rest == "rd.bytes") disk.read_bytes = f.number;
  else if (rest == "rd.reqs") disk.read_ops = f.number;
  else if (rest == "wr.bytes") disk.write_bytes = f.number;
  else if (rest == "wr.reqs") disk.write_ops = f.number;
  else if (rest == "fl.reqs") disk.flush_ops = f.number;
}

}  // namespace

DomainStats parseDomainStats(std::string name, const std::vector<DomainStatField>& fields) {
  DomainStats s;
  s.name = std::move(name);
  size_t nic_count = 0, disk_count = 0;
  bool nic_count_seen = false, disk_count_seen = false;
  for (const auto& f : fields) {
    std::string_view field = f.name;
    size_t index = 0;
    std::string_view rest;
    if (field == "state.state") s.state = stateOf(f);
    else if (field == "cpu.time") s.cpu_time_ns = f.number;
    else if (field == "cpu.user") s.cpu_user_ns = f.number;
    else if (field == "cpu.system") s.cpu_system_ns = f.number;
    else if (field == "vcpu.current") s.vcpus_current = static_cast<int>(f.number);
    else if (field == "vcpu.maximum") s.vcpus_maximum = static_cast<int>(f.number);
    else if (field == "balloon.current") s.memory_current_kib = f.number;
    else if (field == "balloon.maximum") s.memory_max_kib = f.number;
    else if (field == "balloon.rss") s.memory_rss_kib = f.number;
    else if (field == "balloon.unused") s.memory_unused_kib = f.number;
    else if (field == "balloon.available") s.memory_available_kib = f.number;
    else if (field == "balloon.usable") s.memory_usable_kib = f.number;
    else if (field == "balloon.last-update") {
      s.memory_last_update_s = static_cast<int64_t>(f.number);
    }
    else if (field == "net.count") { nic_count = f.number; nic_count_seen = true; }
    else if (field == "block.count") { disk_count = f.number; disk_count_seen = true; }
    else if (splitIndexed(field, "net.", &index, &rest)) applyNic(at(s.nics, index), rest, f);
    else if (splitIndexed(field, "block.", &index, &rest)) applyDisk(at(s.disks, index), rest, f);
  }
  // libvirt says how many there are; entries beyond its count are not the domain's.
  if (nic_count_seen && s.nics.size() > nic_count) s.nics.resize(nic_count);
  if (disk_count_seen && s.disks.size() > disk_count) s.disks.resize(disk_count);
  return s;
}

}  // namespace qiao
