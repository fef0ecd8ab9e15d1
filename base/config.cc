#include "base/config.h"

#include <toml++/toml.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <variant>

#include "base/names.h"

namespace qiao {
namespace {

using StringField = std::string* (*)(Config&);
using IntField = int* (*)(Config&);
using Int64Field = int64_t* (*)(Config&);
using ListField = std::vector<std::string>* (*)(Config&);
using Field = std::variant<StringField, IntField, Int64Field, ListField>;
// Extra validation of one string value; returns "" when fine, else what is wrong.
using Check = std::string (*)(const std::string&);

struct Option {
  const char* key;  // "api.max_body_bytes"
  Field field;
  int64_t min = 0;
  int64_t max = 0;
  std::vector<std::string> allowed;  // for enumerations
  Check check = nullptr;
  const char* help;
};

std::string checkListen(const std::string& v) {
  std::string host, port;
  if (!v.empty() && v.front() == '[') {
    auto close = v.find(']');
    if (close == std::string::npos || close + 1 >= v.size() || v[close + 1] != ':') {
      return "must look like [::1]:8443";
    }
    host = v.substr(1, close - 1);
    port = v.substr(close + 2);
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) {
      return "bad IPv6 address";
    }
  } else {
    auto colon = v.rfind(':');
    if (colon == std::string::npos) return "must be ADDRESS:PORT";
    host = v.substr(0, colon);
    port = v.substr(colon + 1);
    int dots = 0;
    for (char c : host) {
      if (c == '.') ++dots;
      else if (c < '0' || c > '9') return "must be an IP address (IPv6 in brackets)";
    }
    if (dots != 3) return "must be an IPv4 address (IPv6 in brackets)";
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) > 65535) {
    return "port must be 0 to 65535";
  }
  return "";
}

std::string checkAbsolutePath(const std::string& v) {
  return !v.empty() && v.front() == '/' ? "" : "must be an absolute path";
}

std::string checkOptionalAbsolutePath(const std::string& v) {
  return v.empty() ? "" : checkAbsolutePath(v);
}

// The form of audit.syslog; the daemon parses it fully when it starts.
std::string checkSyslog(const std::string& v) {
  if (v.empty() || v.rfind("unix:/", 0) == 0 || v.rfind("tls://", 0) == 0) return "";
  return "must be unix:/path/of/socket or tls://host:port";
}

std::string checkNotEmpty(const std::string& v) { return v.empty() ? "must not be empty" : ""; }

// A dotted-quad IPv4 address (each part 0-255, no leading zeros).
std::string checkIpv4(const std::string& v) {
  int parts = 0;
  size_t i = 0;
  while (i <= v.size()) {
    size_t end = v.find('.', i);
    if (end == std::string::npos) end = v.size();
    const std::string part = v.substr(i, end - i);
    if (part.empty() || part.size() > 3 || part.find_first_not_of("0123456789") != std::string::npos ||
        (part.size() > 1 && part[0] == '0') || std::stoi(part) > 255) {
      return "must be an IPv4 address such as 192.0.2.10";
    }
    ++parts;
    i = end + 1;
  }
  if (parts != 4) return "must be an IPv4 address such as 192.0.2.10";
  const int first = std::stoi(v.substr(0, v.find('.')));
  if (first == 0 || first == 127 || first >= 224) {
    return "must be a unicast address of a host (not 0.x, 127.x, multicast or reserved)";
  }
  return "";
}

std::string checkOptionalIpv4(const std::string& v) { return v.empty() ? "" : checkIpv4(v); }

std::string checkOptionalDnsLabel(const std::string& v) {
  return v.empty() || isDnsLabel(v) ? ""
                                    : "must be a DNS label (lower-case letters, digits, '-')";
}

std::string checkOptionalEndpoint(const std::string& v) {
  if (v.empty()) return "";
  if (!v.starts_with("https://")) return "must be https://ADDRESS:PORT";
  return checkListen(v.substr(8));
}

std::string checkLabel(const std::string& v) {
  auto eq = v.find('=');
  if (eq == std::string::npos) return "must be key=value";
  if (!isDnsLabel(v.substr(0, eq))) return "the key must be a DNS label";
  if (v.size() - eq - 1 > 63) return "the value must be at most 63 characters";
  for (char c : v.substr(eq + 1)) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return "the value may hold letters, digits, '-', '_' and '.'";
    }
  }
  return "";
}

const std::vector<Option>& options() {
  static const std::vector<Option> table = {
      {"api.listen", ListField([](Config& c) { return &c.api.listen; }), 1, 0, {}, checkListen,
       "Addresses the node API listens on (HTTPS), as IP:PORT or [IPv6]:PORT. Port 0 takes "
       "any free port; the bound addresses are written to <state.dir>/qiaod.addr."},
      {"api.max_body_bytes", Int64Field([](Config& c) { return &c.api.max_body_bytes; }), 1024,
       64 << 20, {}, nullptr, "Largest request body accepted; larger ones get 413."},
      {"api.max_connections", IntField([](Config& c) { return &c.api.max_connections; }), 1,
       65536, {}, nullptr,
       "Concurrent API connections. A connection over this (or another connection cap) gets "
       "503 with Retry-After to its first request; 64 more than this are closed unanswered."},
      {"api.max_connections_per_source",
       IntField([](Config& c) { return &c.api.max_connections_per_source; }), 1, 65536, {},
       nullptr, "Concurrent connections from one source address (admins are not held to it)."},
      {"api.max_connections_per_identity",
       IntField([](Config& c) { return &c.api.max_connections_per_identity; }), 1, 65536, {},
       nullptr, "Concurrent connections of one identity (admins are not held to it)."},
      {"api.admin_reserved_connections",
       IntField([](Config& c) { return &c.api.admin_reserved_connections; }), 0, 65536, {},
       nullptr,
       "Of api.max_connections, how many only admins may use: an admin can always connect "
       "while others exhaust their share."},
      {"api.max_event_streams", IntField([](Config& c) { return &c.api.max_event_streams; }), 1,
       65536, {}, nullptr, "Concurrent event streams (GET /v1/events); more get 503."},
      {"api.max_event_streams_per_identity",
       IntField([](Config& c) { return &c.api.max_event_streams_per_identity; }), 1, 65536, {},
       nullptr, "Concurrent event streams of one identity; more get 503."},
      {"api.admin_reserved_event_streams",
       IntField([](Config& c) { return &c.api.admin_reserved_event_streams; }), 0, 65536, {},
       nullptr, "Of api.max_event_streams, how many only admins may open."},
      {"api.event_stream_max_s", IntField([](Config& c) { return &c.api.event_stream_max_s; }),
       10, 86400, {}, nullptr,
       "An event stream ends after this long; the client reconnects (qiaoctl does)."},
      {"api.request_timeout_s", IntField([](Config& c) { return &c.api.request_timeout_s; }), 1,
       3600, {}, nullptr,
       "Deadline for a TLS handshake, reading a request and writing a reply; a kept-alive "
       "connection idle this long is closed."},
      {"api.audit_summary_interval_s",
       IntField([](Config& c) { return &c.api.audit_summary_interval_s; }), 1, 3600, {}, nullptr,
       "Calls refused to callers without an identity this node knows are audited per source "
       "address: the first of this many seconds in full, the rest as one summary entry with "
       "their count at its end."},
      {"audit.export_dir", StringField([](Config& c) { return &c.audit.export_dir; }), 0, 0, {},
       checkOptionalAbsolutePath,
       "Directory the audit log's closed segments are exported to (audit-FIRST-LAST.jsonl and "
       "its .sha256); empty means <state.dir>/audit. Archive them: `qiaod audit verify` "
       "needs them to prove the chain from its first entry."},
      {"audit.segment_entries", Int64Field([](Config& c) { return &c.audit.segment_entries; }),
       0, int64_t{1} << 30, {}, nullptr,
       "When the database holds more audit entries than this, the oldest this many are "
       "exported as one segment and removed from it (never entries a syslog destination has "
       "not confirmed). 0: the daemon never rotates (`qiaod audit rotate` still does)."},
      {"audit.rotate_check_s", IntField([](Config& c) { return &c.audit.rotate_check_s; }), 1,
       86400, {}, nullptr, "How often the daemon checks whether a segment is due."},
      {"audit.syslog", StringField([](Config& c) { return &c.audit.syslog; }), 0, 0, {},
       checkSyslog,
       "Where the audit log is shipped as RFC 5424 syslog, octet-counted: tls://HOST:PORT (RFC "
       "5425) or unix:/PATH (a local stream socket). Empty: not shipped. Delivery resumes "
       "after the last entry the collector confirmed."},
      {"audit.syslog_ca_file", StringField([](Config& c) { return &c.audit.syslog_ca_file; }),
       0, 0, {}, checkOptionalAbsolutePath,
       "CA certificates the collector's TLS certificate is checked against (its name or IP "
       "must be the HOST of audit.syslog); empty means the system's trust store."},
      {"audit.syslog_cert_file", StringField([](Config& c) { return &c.audit.syslog_cert_file; }),
       0, 0, {}, checkOptionalAbsolutePath,
       "Client certificate qiaod shows the collector; empty means this node's (pki.dir/node.crt)."},
      {"audit.syslog_key_file", StringField([](Config& c) { return &c.audit.syslog_key_file; }),
       0, 0, {}, checkOptionalAbsolutePath,
       "Key of audit.syslog_cert_file; empty means pki.dir/node.key."},
      {"audit.syslog_confirm_s", IntField([](Config& c) { return &c.audit.syslog_confirm_s; }),
       0, 300, {}, nullptr,
       "An entry counts as delivered once the collector's side acknowledged its bytes and the "
       "connection stayed up this long after: a collector that dies sooner gets it again."},
      {"pki.dir", StringField([](Config& c) { return &c.pki.dir; }), 0, 0, {}, checkAbsolutePath,
       "Directory of the cluster CA and this node's certificate: ca.crt, node.crt, node.key, "
       "cluster (made by `qiaod pki init`)."},
      {"state.dir", StringField([](Config& c) { return &c.state.dir; }), 0, 0, {},
       checkAbsolutePath,
       "Directory of qiaod's state: qiao.db (SQLite), console/ (serial console logs), "
       "qiaod.addr."},
      {"libvirt.uri", StringField([](Config& c) { return &c.libvirt.uri; }), 0, 0, {},
       checkNotEmpty, "libvirt connection URI."},
      {"libvirt.workers", IntField([](Config& c) { return &c.libvirt.workers; }), 1, 64, {},
       nullptr, "Threads that run tasks (libvirt calls block); tasks beyond wait in a queue."},
      {"libvirt.keepalive_interval_s",
       IntField([](Config& c) { return &c.libvirt.keepalive_interval_s; }), 1, 300, {}, nullptr,
       "libvirt keepalive interval; three missed answers mean the connection is lost."},
      {"vm.accelerator", StringField([](Config& c) { return &c.vm.accelerator; }), 0, 0,
       {"auto", "kvm", "tcg"}, nullptr,
       "auto: KVM when the start-up probe shows that KVM really runs guests, else TCG. kvm: "
       "require KVM (qiaod refuses to start without it). tcg: always emulate."},
      {"vm.shutdown_timeout_s", IntField([](Config& c) { return &c.vm.shutdown_timeout_s; }), 1,
       3600, {}, nullptr,
       "How long a stop (ACPI shutdown) waits for the guest to power off before the task fails."},
      {"vm.dependency_timeout_s",
       IntField([](Config& c) { return &c.vm.dependency_timeout_s; }), 1, 86400, {}, nullptr,
       "How long a VM create waits for the networks and images it names that are still being "
       "made (a network being created, an image being imported) before the create fails."},
      {"vm.console_log_max_bytes",
       Int64Field([](Config& c) { return &c.vm.console_log_max_bytes; }), 4096, int64_t{1} << 30,
       {}, nullptr,
       "Largest console-log tail the API returns (virtlogd rotates the files themselves)."},
      {"vm.machine_x86_64", StringField([](Config& c) { return &c.vm.machine_x86_64; }), 0, 0,
       {}, checkNotEmpty, "QEMU machine type of x86_64 guests."},
      {"vm.machine_aarch64", StringField([](Config& c) { return &c.vm.machine_aarch64; }), 0, 0,
       {}, checkNotEmpty, "QEMU machine type of aarch64 guests."},
      {"vm.cpu_model_aarch64_tcg",
       StringField([](Config& c) { return &c.vm.cpu_model_aarch64_tcg; }), 0, 0, {},
       checkNotEmpty, "CPU model of aarch64 guests under TCG (KVM uses host-passthrough)."},
      {"vm.kvm_probe_kernel", StringField([](Config& c) { return &c.vm.kvm_probe_kernel; }), 0,
       0, {}, checkOptionalAbsolutePath,
       "Linux kernel the start-up KVM probe boots (vm.accelerator auto or kvm): KVM is usable "
       "when it prints its banner within 15 s. Empty: /boot/vmlinuz-<running release> when "
       "readable, else only a halted QEMU is started (which misses a nested KVM that starts "
       "guests but never runs them)."},
      {"vm.max_vcpus", IntField([](Config& c) { return &c.vm.max_vcpus; }), 1, 4096, {}, nullptr,
       "Most vCPUs a VM may ask for."},
      {"vm.max_memory_mib", Int64Field([](Config& c) { return &c.vm.max_memory_mib; }), 64,
       int64_t{1} << 32, {}, nullptr, "Most memory (MiB) a VM may ask for."},
      {"vm.cpu_overcommit_percent",
       IntField([](Config& c) { return &c.vm.cpu_overcommit_percent; }), 10, 10000, {}, nullptr,
       "A VM may have at most this host's cores x this / 100 vCPUs (counting max_vcpus): one "
       "this host could never run is refused at create (400, with the figures)."},
      {"vm.memory_overcommit_percent",
       IntField([](Config& c) { return &c.vm.memory_overcommit_percent; }), 10, 1000, {},
       nullptr,
       "A VM may have at most this host's memory x this / 100 (counting max_memory_mib); one "
       "asking for more is refused at create (400, with the figures)."},
      {"storage.backend", StringField([](Config& c) { return &c.storage.backend; }), 0, 0,
       {"auto", "rbd", "local"}, nullptr,
       "Where volumes and images live. rbd: Ceph RBD (storage.ceph_*). local: files under "
       "storage.local_dir. auto: rbd when storage.ceph_conf exists, else local."},
      {"storage.local_dir", StringField([](Config& c) { return &c.storage.local_dir; }), 0, 0,
       {}, checkAbsolutePath, "Directory of the local volume driver (one folder per tenant)."},
      {"storage.ceph_conf", StringField([](Config& c) { return &c.storage.ceph_conf; }), 0, 0,
       {}, checkAbsolutePath,
       "ceph.conf of the cluster that holds the volumes (its monitors; its keyring, unless "
       "storage.ceph_keyring is set)."},
      {"storage.ceph_user", StringField([](Config& c) { return &c.storage.ceph_user; }), 0, 0,
       {}, checkNotEmpty,
       "cephx user, without \"client.\"; give it `profile rbd` on storage.ceph_pool (and "
       "storage.ceph_other_pools) only."},
      {"storage.ceph_keyring", StringField([](Config& c) { return &c.storage.ceph_keyring; }), 0,
       0, {}, checkOptionalAbsolutePath,
       "Keyring of storage.ceph_user; empty means the one ceph.conf names."},
      {"storage.ceph_pool", StringField([](Config& c) { return &c.storage.ceph_pool; }), 0, 0,
       {}, checkNotEmpty, "RBD pool of the volumes; each tenant gets an RBD namespace in it."},
      {"storage.ceph_other_pools",
       ListField([](Config& c) { return &c.storage.ceph_other_pools; }), 0, 0, {}, checkNotEmpty,
       "Other RBD pools of the same cluster where a volume may be created or copied to (the "
       "`pool` of POST /v1/volumes and of a copy), say a faster or a cheaper one; "
       "storage.ceph_user needs `profile rbd` on each too."},
      {"storage.ceph_timeout_s", IntField([](Config& c) { return &c.storage.ceph_timeout_s; }),
       1, 600, {}, nullptr,
       "Deadline of one Ceph monitor or OSD operation; a Ceph that does not answer is reported "
       "unavailable after it."},
      {"storage.max_volume_gib", Int64Field([](Config& c) { return &c.storage.max_volume_gib; }),
       1, int64_t{1} << 20, {}, nullptr, "Largest volume (GiB) a caller may ask for."},
      {"cluster.mode", StringField([](Config& c) { return &c.cluster.mode; }), 0, 0,
       {"standalone", "member"}, nullptr,
       "standalone: this host is alone (its state in its own database). member: it belongs to "
       "the cluster whose state is in the Ceph pool cluster.pool: it holds a lease there, runs "
       "for leader and lists the whole cluster (needs the rbd storage backend)."},
      {"cluster.pool", StringField([](Config& c) { return &c.cluster.pool; }), 0, 0, {},
       checkNotEmpty, "RADOS pool of the cluster's state (hosts, VMs, leases, the leader)."},
      {"cluster.host", StringField([](Config& c) { return &c.cluster.host; }), 0, 0, {},
       checkOptionalDnsLabel,
       "This host's name in the cluster (a DNS label). Empty: the machine's host name."},
      {"cluster.endpoint", StringField([](Config& c) { return &c.cluster.endpoint; }), 0, 0, {},
       checkOptionalEndpoint,
       "https://ADDRESS:PORT at which the other members reach this host's API. Empty: "
       "https:// and the first of api.listen."},
      {"cluster.lease_s", IntField([](Config& c) { return &c.cluster.lease_s; }), 2, 300, {},
       nullptr,
       "Lease of a host (and of the leader), in seconds: renewed every third of it; a host that "
       "has not renewed it for this long is unreachable, and a lost leader is replaced within "
       "it plus about a second."},
      {"cluster.site", StringField([](Config& c) { return &c.cluster.site; }), 0, 0, {},
       checkOptionalDnsLabel, "The site (data center) of this host, for placement."},
      {"cluster.labels", ListField([](Config& c) { return &c.cluster.labels; }), 0, 0, {},
       checkLabel, "key=value labels of this host, for placement (keys are DNS labels)."},
      {"host.baseline_file", StringField([](Config& c) { return &c.host.baseline_file; }), 0, 0,
       {}, checkAbsolutePath,
       "The cluster's baseline for this host (TOML: minimum libvirt and QEMU versions, KVM, CPU "
       "features, UEFI builds per guest arch, BIOS date, IOMMU, hugepages, time sync); GET "
       "/v1/host/check and `qiaoctl host check` judge the host against it. Missing: the "
       "built-in defaults."},
      {"network.mode", StringField([](Config& c) { return &c.network.mode; }), 0, 0,
       {"auto", "ovs", "off"}, nullptr,
       "Tenant networks on Open vSwitch. ovs: required (qiaod waits for OVS when it is down). "
       "auto: on when network.ovsdb_socket exists at start. off: VMs have no NICs."},
      {"network.ovsdb_socket", StringField([](Config& c) { return &c.network.ovsdb_socket; }), 0,
       0, {}, checkAbsolutePath, "Unix socket of ovsdb-server (RFC 7047)."},
      {"network.bridge", StringField([](Config& c) { return &c.network.bridge; }), 0, 0, {},
       checkNotEmpty,
       "Integration bridge of the guests' taps and the DHCP ports (Qiao creates it, "
       "fail_mode=secure: only Qiao's flows forward)."},
      {"network.datapath_type", StringField([](Config& c) { return &c.network.datapath_type; }),
       0, 0, {"netdev", "system"}, nullptr,
       "OVS datapath of the bridge: netdev (userspace) or system (the kernel module)."},
      {"network.check_interval_ms",
       IntField([](Config& c) { return &c.network.check_interval_ms; }), 100, 60000, {}, nullptr,
       "How often the ports, DHCP servers and flows are compared with the store and repaired "
       "(also at once when OVS reports a change or comes back)."},
      {"network.run_dir", StringField([](Config& c) { return &c.network.run_dir; }), 0, 0, {},
       checkAbsolutePath,
       "Files of the DHCP servers (dnsmasq reads them after dropping privileges to nobody: "
       "keep it world-readable, e.g. under /run)."},
      {"network.ovs_timeout_ms", IntField([](Config& c) { return &c.network.ovs_timeout_ms; }),
       100, 600000, {}, nullptr, "Deadline of one OVSDB transaction or ovs-ofctl call."},
      {"network.vlan_uplink", StringField([](Config& c) { return &c.network.vlan_uplink; }), 0,
       0, {}, nullptr,
       "Host NIC that carries the vlan networks to the physical network, on the provider bridge "
       "network.vlan_bridge (frames leave and enter tagged with the network's segment_id). "
       "Empty: vlan networks stay on this host."},
      {"network.vlan_bridge", StringField([](Config& c) { return &c.network.vlan_bridge; }), 0,
       0, {}, checkNotEmpty,
       "Provider bridge of network.vlan_uplink: Qiao creates it when missing (standalone: a "
       "learning switch; an existing one keeps its fail_mode, and may hold the host's address), "
       "puts the NIC on it and joins it to network.bridge with a patch port pair."},
      {"network.tunnel_ip", StringField([](Config& c) { return &c.network.tunnel_ip; }), 0, 0,
       {}, checkOptionalIpv4,
       "This host's address on the underlay network: the local end of the vxlan and geneve "
       "tunnels to the other hosts (network.tunnel_peers; in a cluster, every other member, "
       "which tunnels back to this address as the host's record publishes it). Empty: no "
       "tunnels; vxlan and geneve networks stay on this host."},
      {"network.tunnel_peers", ListField([](Config& c) { return &c.network.tunnel_peers; }), 0,
       0, {}, checkIpv4,
       "Underlay addresses of the other hosts that carry this host's vxlan and geneve networks "
       "(at most 40): a vxlan and a geneve port to each, on network.bridge. Only for a "
       "standalone host: with cluster.mode member the peers are the other members' "
       "network.tunnel_ip, from the cluster's host records, and this key is refused."},
      {"quota.vms", Int64Field([](Config& c) { return &c.quota.vms; }), -1, int64_t{1} << 40,
       {}, nullptr, "Default quota: VMs a tenant may have (-1: no limit); an admin sets a tenant's own with "
       "`qiaoctl quota set`."},
      {"quota.vcpus", Int64Field([](Config& c) { return &c.quota.vcpus; }), -1, int64_t{1} << 40,
       {}, nullptr, "Default quota: vCPUs a tenant's VMs may have in all, counting the max_vcpus each may grow to (-1: no limit); an admin sets a tenant's own with "
       "`qiaoctl quota set`."},
      {"quota.memory_mib", Int64Field([](Config& c) { return &c.quota.memory_mib; }), -1, int64_t{1} << 40,
       {}, nullptr, "Default quota: memory (MiB) a tenant's VMs may have in all, counting max_memory_mib (-1: no limit); an admin sets a tenant's own with "
       "`qiaoctl quota set`."},
      {"quota.volume_gib", Int64Field([](Config& c) { return &c.quota.volume_gib; }), -1, int64_t{1} << 40,
       {}, nullptr, "Default quota: GiB of volumes (image disks included) a tenant may have (-1: no limit); an admin sets a tenant's own with "
       "`qiaoctl quota set`."},
      {"quota.images", Int64Field([](Config& c) { return &c.quota.images; }), -1, int64_t{1} << 40,
       {}, nullptr, "Default quota: images a tenant may own (-1: no limit); an admin sets a tenant's own with "
       "`qiaoctl quota set`."},
      {"quota.networks", Int64Field([](Config& c) { return &c.quota.networks; }), -1, int64_t{1} << 40,
       {}, nullptr, "Default quota: networks a tenant may have (-1: no limit); an admin sets a tenant's own with "
       "`qiaoctl quota set`."},
      {"images.max_upload_bytes",
       Int64Field([](Config& c) { return &c.images.max_upload_bytes; }), 1 << 20,
       int64_t{1} << 42, {}, nullptr,
       "Largest image upload (PUT /v1/images/{name}/data); it is streamed to a file under "
       "<state.dir>/images, never held in memory."},
      {"images.max_parallel_uploads",
       IntField([](Config& c) { return &c.images.max_parallel_uploads; }), 1, 64, {}, nullptr,
       "Uploads one tenant (and the public images) may have in progress at once; one more is "
       "refused (429, Retry-After) before a byte of it is read."},
      {"images.upload_reserve_mib",
       Int64Field([](Config& c) { return &c.images.upload_reserve_mib; }), 0, int64_t{1} << 30,
       {}, nullptr,
       "Free space (MiB) that uploads leave on the filesystem of <state.dir>/images: an upload "
       "whose declared length would cross it is refused (507) before a byte is read, and one "
       "that crosses it while streaming is stopped and removed."},
      {"images.max_virtual_gib", Int64Field([](Config& c) { return &c.images.max_virtual_gib; }),
       1, int64_t{1} << 20, {}, nullptr,
       "Largest virtual size (GiB) an image may declare; a qcow2 claiming more is refused."},
      {"images.convert_cpu_seconds",
       IntField([](Config& c) { return &c.images.convert_cpu_seconds; }), 10, 86400, {}, nullptr,
       "CPU time qemu-img may spend converting one qcow2 image to raw."},
      {"images.convert_memory_mib",
       Int64Field([](Config& c) { return &c.images.convert_memory_mib; }), 128, 65536, {},
       nullptr,
       "Address space (MiB) qemu-img may use while writing one image (librbd reserves thread "
       "stacks: below 2048 the RBD writes fail)."},
      {"log.level", StringField([](Config& c) { return &c.log.level; }), 0, 0,
       {"debug", "info", "warn", "error"}, nullptr, "Least severe level written."},
      {"log.file", StringField([](Config& c) { return &c.log.file; }), 0, 0, {},
       checkOptionalAbsolutePath,
       "File the JSON log lines are appended to; empty means stderr (the journal)."},
  };
  return table;
}

std::string typeName(const Field& f) {
  switch (f.index()) {
    case 0: return "string";
    case 1:
    case 2: return "integer";
    default: return "array of strings";
  }
}

std::string tomlValueOf(const Option& o, const Config& defaults) {
  Config copy = defaults;
  return std::visit(
      [&](auto fn) -> std::string {
        auto* p = fn(copy);
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return "\"" + *p + "\"";
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          std::string out = "[";
          for (size_t i = 0; i < p->size(); ++i) out += (i ? ", \"" : "\"") + (*p)[i] + "\"";
          return out + "]";
        } else {
          return std::to_string(*p);
        }
      },
      o.field);
}

std::string rangeOf(const Option& o) {
  if (!o.allowed.empty()) {
    std::string out;
    for (const auto& a : o.allowed) out += (out.empty() ? "" : " \\| ") + a;
    return out;
  }
  if (o.field.index() == 1 || o.field.index() == 2) {
    return std::to_string(o.min) + " to " + std::to_string(o.max);
  }
  return "";
}

std::string describeNode(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number with a fraction";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
  }
}

Status applyValue(const Option& o, const toml::node& node, Config& config,
                  const std::string& where) {
  auto bad = [&](const std::string& why) {
    return makeError(ErrorCode::kInvalidArgument, "config", where + ": " + o.key + ": " + why);
  };
  auto checkString = [&](const std::string& v) -> Status {
    if (!o.allowed.empty() &&
        std::find(o.allowed.begin(), o.allowed.end(), v) == o.allowed.end()) {
      return bad("must be one of " + rangeOf(o) + ", got \"" + v + "\"");
    }
    if (o.check != nullptr) {
      std::string why = o.check(v);
      if (!why.empty()) return bad(why + ", got \"" + v + "\"");
    }
    return {};
  };
  return std::visit(
      [&](auto fn) -> Status {
        auto* p = fn(config);
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, std::string>) {
          auto v = node.value<std::string>();
          if (!node.is_string() || !v) return bad("must be a string, got " + describeNode(node));
          if (auto ok = checkString(*v); !ok) return ok;
          *p = *v;
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          const auto* arr = node.as_array();
          if (arr == nullptr) return bad("must be an array of strings, got " + describeNode(node));
          std::vector<std::string> values;
          for (const auto& item : *arr) {
            auto v = item.value<std::string>();
            if (!item.is_string() || !v) return bad("must hold only strings");
            if (auto ok = checkString(*v); !ok) return ok;
            values.push_back(*v);
          }
          if (static_cast<int64_t>(values.size()) < o.min) return bad("must not be empty");
          *p = std::move(values);
        } else {
          auto v = node.value<int64_t>();
          if (!node.is_integer() || !v) return bad("must be an integer, got " + describeNode(node));
          if (*v < o.min || *v > o.max) {
            return bad("must be between " + std::to_string(o.min) + " and " +
                       std::to_string(o.max) + ", got " + std::to_string(*v));
          }
          *p = static_cast<T>(*v);
        }
        return {};
      },
      o.field);
}

}  // namespace

Result<Config> parseConfig(std::string_view toml_text, std::string_view source_name) {
  const std::string where(source_name);
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    return makeError(ErrorCode::kInvalidArgument, "config",
                     where + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) +
                         ": " + std::string(e.description()));
  }
  Config config;
  for (const auto& [table_key, table_node] : root) {
    const std::string table_name(table_key.str());
    const auto* table = table_node.as_table();
    if (table == nullptr) {
      return makeError(ErrorCode::kInvalidArgument, "config",
                       where + ": " + table_name + ": unknown key (keys live in tables such as "
                                                   "[api], [vm])");
    }
    for (const auto& [key, node] : *table) {
      const std::string full = table_name + "." + std::string(key.str());
      const Option* option = nullptr;
      for (const auto& o : options()) {
        if (full == o.key) option = &o;
      }
      if (option == nullptr) {
        return makeError(ErrorCode::kInvalidArgument, "config",
                         where + ": " + full + ": unknown key (see `qiaod config reference`)");
      }
      if (auto ok = applyValue(*option, node, config, where); !ok) {
        return std::unexpected(ok.error());
      }
    }
  }
  // What one key cannot say alone.
  const auto& net = config.network;
  auto invalid = [&](const std::string& message) {
    return makeError(ErrorCode::kInvalidArgument, "config", where + ": " + message);
  };
  if (config.cluster.mode == "member" && config.storage.backend == "local") {
    return invalid("cluster.mode member needs Ceph: storage.backend must be rbd or auto");
  }
  if (config.cluster.mode == "member" && !net.tunnel_peers.empty()) {
    return invalid(
        "network.tunnel_peers is not allowed with cluster.mode member: the tunnel peers are "
        "the other members' network.tunnel_ip, as the cluster's host records publish them; "
        "remove the key (set network.tunnel_ip on every host)");
  }
  if (net.vlan_bridge == net.bridge) {
    return invalid("network.vlan_bridge must be another bridge than network.bridge");
  }
  if (!net.tunnel_peers.empty() && net.tunnel_ip.empty()) {
    return invalid("network.tunnel_peers needs network.tunnel_ip (this host's underlay address)");
  }
  if (net.tunnel_peers.size() > 40) return invalid("network.tunnel_peers: at most 40 peers");
  const auto& api = config.api;
  if (api.admin_reserved_connections >= api.max_connections) {
    return invalid("api.admin_reserved_connections must be less than api.max_connections");
  }
  if (api.admin_reserved_event_streams >= api.max_event_streams) {
    return invalid("api.admin_reserved_event_streams must be less than api.max_event_streams");
  }
  for (size_t i = 0; i < net.tunnel_peers.size(); ++i) {
    const auto& peer = net.tunnel_peers[i];
    if (peer == net.tunnel_ip) {
      return invalid("network.tunnel_peers: " + peer + " is this host's own network.tunnel_ip");
    }
    for (size_t j = 0; j < i; ++j) {
      if (net.tunnel_peers[j] == peer) {
        return invalid("network.tunnel_peers: " + peer + " is listed twice");
      }
    }
  }
  return config;
}

Result<Config> loadConfig(const std::string& path, bool must_exist) {
  std::ifstream in(path);
  if (!in) {
    if (!must_exist && errno == ENOENT) return Config{};
    return makeError(ErrorCode::kInvalidArgument, "config",
                     "cannot read " + path + ": " + std::strerror(errno));
  }
  std::stringstream text;
  text << in.rdbuf();
  return parseConfig(text.str(), path);
}

std::string configReferenceMarkdown() {
  const Config defaults;
  std::string out =
      "# qiaod configuration reference\n\n"
      "`/etc/qiao/qiaod.toml` (or `qiaod --config FILE`). Every key is optional; a missing\n"
      "file means all defaults. Unknown keys, wrong types and values out of range stop qiaod\n"
      "at start with the key's name. `qiaod config check` loads the file and reports;\n"
      "`qiaod config default` prints a file with every key and its default.\n\n"
      "This page is generated by `qiaod config reference`; a test keeps it equal.\n";
  std::string table;
  for (const auto& o : options()) {
    std::string key = o.key;
    std::string t = key.substr(0, key.find('.'));
    if (t != table) {
      table = t;
      out += "\n## [" + table + "]\n\n| key | type | default | range | help |\n|---|---|---|---|---|\n";
    }
    out += "| `" + key.substr(key.find('.') + 1) + "` | " + typeName(o.field) + " | `" +
           tomlValueOf(o, defaults) + "` | " + rangeOf(o) + " | " + o.help + " |\n";
  }
  return out;
}

std::string defaultConfigToml() {
  const Config defaults;
  std::string out =
      "# qiaod configuration. Every key is shown with its default, commented out.\n"
      "# `qiaod config reference` explains each; `qiaod config check` validates this file.\n";
  std::string table;
  for (const auto& o : options()) {
    std::string key = o.key;
    std::string t = key.substr(0, key.find('.'));
    if (t != table) {
      table = t;
      out += "\n[" + table + "]\n";
    }
    out += "# " + std::string(o.help) + "\n";
    std::string range = rangeOf(o);
    if (!range.empty()) {
      for (size_t pos; (pos = range.find("\\|")) != std::string::npos;) range.replace(pos, 2, "|");
      out += "# (" + range + ")\n";
    }
    out += "#" + key.substr(key.find('.') + 1) + " = " + tomlValueOf(o, defaults) + "\n";
  }
  return out;
}

}  // namespace qiao
