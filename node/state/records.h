// The records the Store keeps, one struct per kind of row, and the filters of their lists.
// Plain data: the repositories (node/state/*_repository.h) read and write them.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "node/state/states.h"
#include "storage/volume_driver.h"

namespace qiao {

struct VmRecord {
  std::string tenant, name, uuid, spec_json;
  VmState state = VmState::kCreating;
  std::string last_error, created_at, updated_at;
  // The host whose hypervisor holds the VM (its host name); "" in rows from before hosts were
  // recorded: this host.
  std::string host;
};

// A volume: a disk of a tenant in a backend ("rbd" | "local"), under the backend object name
// `object` in the tenant's namespace.
struct VolumeRecord {
  std::string tenant, name, uuid, backend, object;
  int64_t size_bytes = 0;
  VolumeState state = VolumeState::kCreating;
  std::string attached_vm;  // the VM that uses it, "" when none
  std::string image;        // the golden image it was cloned from, "" when made empty
  VolumeQos qos;
  std::string pool;         // the RBD pool, "" for the node's first (storage.ceph_pool)
  std::string last_error, created_at, updated_at;
};

// An image of the catalog: a tenant's (tenant = owner) or public (tenant ""). Its data lives
// in the volume backend as `object` with a protected snapshot "golden" once it is ready.
struct ImageRecord {
  std::string tenant, name, uuid, owner;
  ImageState state = ImageState::kPending;
  std::string source;            // "upload" | "path:<host path>"
  std::string declared_format;   // what the caller said, "" when nothing
  std::string format;            // what the probe found: raw | qcow2 | iso
  int64_t virtual_size = 0, file_size = 0;
  std::string sha256;            // of the file as received
  std::string backend, object, last_error, created_at, updated_at;
};

// A tenant network. type: vlan | vxlan | geneve. With dhcp, its DHCP server has dhcp_ip and
// dhcp_mac (on every host that carries the network). local_id and dhcp_ofport are this host's
// numbers for it (its tag in the flows, its DHCP server's OpenFlow port): 0 while this host
// does not carry it.
struct NetworkRecord {
  std::string tenant, name, uuid;
  int64_t local_id = 0;
  std::string type;
  int64_t segment_id = 0;
  std::string subnet, gateway;
  bool dhcp = true;
  std::string dns_json = "[]";
  int64_t mtu = 1500;
  std::string dhcp_ip, dhcp_mac;
  int64_t dhcp_ofport = 0;
  NetworkState state = NetworkState::kCreating;
  std::string last_error, created_at, updated_at;
};

// A VM's NIC on a network: its tap `name`, MAC, address, and OpenFlow port number on `host`,
// the host of its VM ("" in rows from before hosts were recorded: this host).
struct PortRecord {
  std::string uuid, tenant, network, vm, vm_name;  // network and vm by uuid
  int64_t nic = 0;
  std::string name, mac, ip;
  int64_t ofport = 0;
  std::string created_at;
  std::string security_groups = "[\"default\"]";  // JSON array of group names
  std::string host;
};

// A tenant's security group: its rules as the API's JSON array (validated on the way in).
struct SecurityGroupRecord {
  std::string tenant, name, uuid, rules_json, created_at, updated_at;
};

// OpenFlow port numbers Qiao gives out start here (below are left to OVS and to hand work).
inline constexpr int64_t kFirstOfport = 100;

struct VmFilter {
  std::vector<std::string> tenants;  // empty = every tenant
  std::string state;
  std::vector<std::pair<std::string, std::string>> labels;  // all must match
  int limit = 100;
  std::string page_token;  // opaque; from VmPage::next_page_token
};

struct VmPage {
  std::vector<VmRecord> items;
  std::string next_page_token;  // "" on the last page
};

struct TaskRecord {
  std::string id;
  TaskKind kind = TaskKind::kUnknown;
  std::string tenant, target, identity;
  TaskState state = TaskState::kQueued;
  int progress = 0;
  std::string message, error_json, params_json, created_at, updated_at;
  int attempts = 0;
  int64_t seq = 0;  // the order tasks were recorded in (given by the store)
};

struct TaskFilter {
  std::vector<std::string> tenants;  // empty = every tenant
  std::string state;
  std::string target;
  int limit = 100;
  std::string page_token;
};

struct JournalEntry {
  int64_t seq = 0;
  std::string task_id, step;
  JournalPhase phase = JournalPhase::kBegin;
  std::string at, detail;
};

struct AuditEntry {
  int64_t seq = 0;
  std::string at, identity, method, path, tenant, target;
  int status = 0;
  std::string request_digest, prev_hash, hash;
};

// A point in the audit chain: an entry's seq and hash (seq 0 and the genesis hash: before the
// first entry).
struct AuditLink {
  int64_t seq = 0;
  std::string hash;
};

// A closed run of the audit log, exported to a file and removed from the database.
struct AuditSegment {
  int64_t first_seq = 0, last_seq = 0;
  std::string first_prev_hash, last_hash;
  std::string file;    // its path when exported
  std::string sha256;  // of the file's bytes
  std::string exported_at;
};

struct Binding {
  std::string identity;  // "qiao://cluster/user/alice"
  std::string role;      // admin | operator | viewer
  std::vector<std::string> tenants;
  std::string created_at;
  // The serial (hex) of the identity's current certificate: any other is refused. "" for a
  // binding made before certificates were recorded (any certificate of the CA).
  std::string serial;
};

// A tenant's quotas as an admin set them: a JSON object of the limits (keys not in it: the
// node's defaults).
struct QuotaRecord {
  std::string tenant, limits_json, updated_at;
};

// A client certificate the CA issued, and whether it was revoked.
struct CertificateRecord {
  std::string serial;  // hex, as OpenSSL prints it
  std::string identity;
  std::string not_after;  // ISO 8601
  std::string issued_at;
  std::string revoked_at;  // "" while valid
  std::string reason;      // why it was revoked: superseded, or the admin's words
};

}  // namespace qiao
