// Hypervisor: the domain-level interface to the host's hypervisor (libvirt with QEMU).
// It owns nothing of a guest's life: qiaod never owns guests, it asks the hypervisor.
// Every call blocks; callers run them on the worker pool, never on the API's io thread.
// The real implementation (LibvirtHypervisor, libvirt_hypervisor.cc) is the only place that
// includes libvirt's headers. Unit tests use the same implementation on libvirt's
// test:///default driver.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/event_bus.h"
#include "node/state/states.h"

namespace qiao {

enum class DomainState {
  kNoState,
  kRunning,
  kBlocked,
  kPaused,
  kShutdown,  // shutting down
  kShutoff,
  kCrashed,
  kPmSuspended,
};
// The VM state a domain state shows as: the same name ("running", "paused", "shutoff", ...).
constexpr VmState vmStateOf(DomainState state) {
  switch (state) {
    case DomainState::kNoState: return VmState::kNoState;
    case DomainState::kRunning: return VmState::kRunning;
    case DomainState::kBlocked: return VmState::kBlocked;
    case DomainState::kPaused: return VmState::kPaused;
    case DomainState::kShutdown: return VmState::kShutdown;
    case DomainState::kShutoff: return VmState::kShutoff;
    case DomainState::kCrashed: return VmState::kCrashed;
    case DomainState::kPmSuspended: return VmState::kPmSuspended;
  }
  return VmState::kNoState;
}
// Running, paused, blocked or suspended: the domain's QEMU is there.
constexpr bool domainLive(DomainState s) {
  return s == DomainState::kRunning || s == DomainState::kPaused || s == DomainState::kBlocked ||
         s == DomainState::kPmSuspended;
}

// What Qiao wrote into the domain's <metadata> (namespace kQiaoMetadataNs).
struct QiaoMetadata {
  std::string cluster;    // the cluster that owns the domain; other clusters' domains are foreign
  std::string tenant;
  std::string name;
  std::string spec_json;  // the VmSpec the domain was made from
};

struct DomainInfo {
  std::string name;  // libvirt domain name, "<tenant>.<name>"
  std::string uuid;
  DomainState state = DomainState::kNoState;
  bool persistent = false;
  std::optional<QiaoMetadata> metadata;  // nullopt: not a Qiao domain
};

// One disk libvirt knows (a <disk>: local files, the cloud-init CD-ROM; never Qiao's RBD
// -blockdevs, which only QEMU's query-blockstats sees).
struct DomainDiskStats {
  std::string target;  // "vda", "sda"
  std::string path;    // its source file, when libvirt reports one
  uint64_t read_bytes = 0, read_ops = 0, write_bytes = 0, write_ops = 0, flush_ops = 0;
};

// One NIC, by its host-side device (Qiao's tap, "qt-<8 hex>"). rx is what the guest received.
struct DomainNicStats {
  std::string device;
  uint64_t rx_bytes = 0, rx_packets = 0, rx_errors = 0, rx_drops = 0;
  uint64_t tx_bytes = 0, tx_packets = 0, tx_errors = 0, tx_drops = 0;
};

struct DomainStats {
  std::string name;
  DomainState state = DomainState::kNoState;
  uint64_t cpu_time_ns = 0;
  uint64_t memory_rss_kib = 0;   // resident set of the QEMU process, when known
  uint64_t memory_max_kib = 0;
  // The rest is filled when libvirt reports it (a running domain).
  std::optional<uint64_t> cpu_user_ns, cpu_system_ns;  // the QEMU process's, from its cgroup
  int vcpus_current = 0, vcpus_maximum = 0;
  uint64_t memory_current_kib = 0;  // what the balloon leaves the guest
  // The guest's own view: only with a balloon driver in the guest and a stats period set.
  std::optional<uint64_t> memory_unused_kib, memory_available_kib, memory_usable_kib;
  std::optional<int64_t> memory_last_update_s;  // when the guest last reported (epoch)
  std::vector<DomainDiskStats> disks;
  std::vector<DomainNicStats> nics;
};

// One statistic as libvirt names it ("net.0.rx.bytes") with its value: a number (integers
// of any width; a boolean is 0 or 1) or a text.
struct DomainStatField {
  std::string name;
  uint64_t number = 0;
  bool negative = false;  // a signed value below zero (then `number` is 0)
  std::string text;
};
// Reads libvirt's fields of one domain (the groups state, cpu-total, balloon, vcpu, interface,
// block) into DomainStats; fields it does not know are ignored. Pure, for unit tests.
DomainStats parseDomainStats(std::string name, const std::vector<DomainStatField>& fields);

struct HypervisorInfo {
  std::string hostname;
  std::string libvirt_version;  // "9.0.0"
  std::string qemu_version;     // "7.2.0"
  std::string uri;
};

enum class DomainEventKind {
  kDefined,
  kUndefined,
  kStarted,
  kSuspended,
  kResumed,
  kStopped,   // shut off, for whatever reason (detail says which)
  kShutdown,  // guest began shutting down
  kRebooted,  // the guest rebooted itself (or was rebooted); it keeps running
  kCrashed,
  kConnectionLost,      // libvirtd went away; the implementation reconnects by itself
  kConnectionRestored,  // reconnected: callers should reconcile
};

struct DomainEvent {
  DomainEventKind kind;
  std::string domain;  // empty for connection events
  std::string detail;  // libvirt's detail ("destroyed", "shutdown", "crashed", ...)
};

class Hypervisor {
 public:
  virtual ~Hypervisor() = default;

  virtual Result<HypervisorInfo> info() = 0;
  virtual Result<std::vector<DomainInfo>> listDomains() = 0;
  // kNotFound when there is no such domain.
  virtual Result<DomainInfo> lookup(const std::string& name) = 0;

  // Defines (or redefines) a persistent domain from XML. Idempotent.
  virtual Status define(const std::string& xml) = 0;
  // Idempotent: starting a running domain succeeds.
  virtual Status start(const std::string& name) = 0;
  // ACPI shutdown, then waits up to `timeout_ms` for the guest to power off; kTimeout when
  // it did not (the guest keeps running; the caller may force-stop).
  virtual Status shutdown(const std::string& name, int timeout_ms) = 0;
  // Hard power-off. Idempotent: a shut-off or missing domain succeeds.
  virtual Status destroy(const std::string& name) = 0;
  virtual Status reboot(const std::string& name) = 0;
  virtual Status suspend(const std::string& name) = 0;
  virtual Status resume(const std::string& name) = 0;
  // Removes the persistent definition (and its NVRAM). Idempotent: missing succeeds.
  virtual Status undefine(const std::string& name) = 0;
  // The live or inactive domain XML.
  virtual Result<std::string> domainXml(const std::string& name) = 0;

  // A device (libvirt device XML) into or out of the running guest only; the persistent
  // definition is the caller's (it redefines). A detach asks the guest: it returns once asked,
  // and the device is gone when the live XML no longer has it.
  virtual Status attachDevice(const std::string& name, const std::string& device_xml) = 0;
  virtual Status detachDevice(const std::string& name, const std::string& device_xml) = 0;
  // The running guest's vCPUs (hot-plug and unplug, up to its maximum) and its balloon target.
  virtual Status setVcpus(const std::string& name, int vcpus) = 0;
  virtual Status setMemory(const std::string& name, uint64_t kib) = 0;

  // Every domain's figures, in one libvirt call.
  virtual Result<std::vector<DomainStats>> stats() = 0;
  // One domain's figures (kNotFound when there is no such domain), in one libvirt call.
  virtual Result<DomainStats> domainStats(const std::string& name) = 0;

  // Lifecycle and connection events, delivered on the implementation's event thread to every
  // subscriber (VmService; the cluster's HA watches the same), until the returned
  // subscription ends. A handler must be quick (post the work elsewhere).
  virtual Subscription subscribe(std::function<void(const DomainEvent&)> handler) = 0;

  // Live migration of a running domain to the hypervisor at `destination_uri`
  // ("qemu+tls://host-b/system"), its disks shared (RBD); returns once the guest runs there.
  // Implemented with the cluster (issue 19); until then kUnimplemented.
  struct MigrateOptions {
    std::string destination_uri;
    int max_downtime_ms = 300;
    int64_t bandwidth_mib_s = 0;  // 0: unlimited
  };
  virtual Status migrate(const std::string& name, const MigrateOptions& options) = 0;

  // Stops the event thread and closes the connection; further calls fail with kUnavailable.
  virtual void stop() = 0;
};

struct LibvirtOptions {
  std::string uri = "qemu:///system";
  int keepalive_interval_s = 5;
  int keepalive_count = 3;
  int reconnect_max_backoff_ms = 5000;
};

// Connects to libvirt (retrying in the background when it is down: calls fail with
// kUnavailable until it is back). Never returns null.
std::unique_ptr<Hypervisor> makeLibvirtHypervisor(const LibvirtOptions& options);

// Qiao's XML namespace for <metadata>.
inline constexpr const char* kQiaoMetadataNs = "urn:qiao:vm:1";

}  // namespace qiao
