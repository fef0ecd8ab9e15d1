// Store: qiaod's durable state in SQLite (WAL, synchronous=FULL) under /var/lib/qiao/qiao.db:
// VMs, tasks, the journal of every task's steps, the hash-chained audit log, and the bindings
// of client identities to roles and tenants. A committed row survives a kill -9. Several
// processes may open the file at once (qiaod, and `qiaod pki issue` writing a binding): writes
// take the database lock up front (BEGIN IMMEDIATE) and wait for it up to 5 s.
// Thread-safe: one connection, one mutex; every call is short.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "storage/volume_driver.h"

struct sqlite3;

namespace qiao {

struct VmRecord {
  std::string tenant, name, uuid, spec_json, state, last_error, created_at, updated_at;
  // The host whose hypervisor holds the VM (its host name); "" in rows from before hosts were
  // recorded: this host.
  std::string host;
};

// A volume: a disk of a tenant in a backend ("rbd" | "local"), under the backend object name
// `object` in the tenant's namespace. state: creating | available | in-use | resizing |
// deleting | error.
struct VolumeRecord {
  std::string tenant, name, uuid, backend, object;
  int64_t size_bytes = 0;
  std::string state;
  std::string attached_vm;  // the VM that uses it, "" when none
  std::string image;        // the golden image it was cloned from, "" when made empty
  VolumeQos qos;
  std::string pool;         // the RBD pool, "" for the node's first (storage.ceph_pool)
  std::string last_error, created_at, updated_at;
};

// An image of the catalog: a tenant's (tenant = owner) or public (tenant ""). Its data lives
// in the volume backend as `object` with a protected snapshot "golden" once it is ready.
// state: pending (waiting for its upload) | importing | ready.
struct ImageRecord {
  std::string tenant, name, uuid, owner, state;
  std::string source;            // "upload" | "path:<host path>"
  std::string declared_format;   // what the caller said, "" when nothing
  std::string format;            // what the probe found: raw | qcow2 | iso
  int64_t virtual_size = 0, file_size = 0;
  std::string sha256;            // of the file as received
  std::string backend, object, last_error, created_at, updated_at;
};

// A tenant network. type: vlan | vxlan | geneve. local_id tags it in this host's flows. With
// dhcp, its DHCP server has dhcp_ip/dhcp_mac on OpenFlow port dhcp_ofport. state: creating |
// ready | deleting | error.
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
  std::string state, last_error, created_at, updated_at;
};

// A VM's NIC on a network: its tap `name`, MAC, address and OpenFlow port number.
struct PortRecord {
  std::string uuid, tenant, network, vm, vm_name;  // network and vm by uuid
  int64_t nic = 0;
  std::string name, mac, ip;
  int64_t ofport = 0;
  std::string created_at;
  std::string security_groups = "[\"default\"]";  // JSON array of group names
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
  std::string id, kind, tenant, target, identity, state;
  int progress = 0;
  std::string message, error_json, params_json, created_at, updated_at;
  int attempts = 0;
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
  std::string task_id, step, phase, at, detail;
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

// Walks a run of audit entries from a link, checking order, links and hashes; stops at the
// first broken entry. One walker for the database's entries and exported segments.
class AuditChainWalker {
 public:
  explicit AuditChainWalker(const AuditLink& from)
      : prev_(from.hash), expected_seq_(from.seq + 1) {}
  // False (and problem() says why) when `entry` does not follow the entries before it.
  bool next(const AuditEntry& entry);
  int64_t entries() const { return entries_; }
  AuditLink last() const { return {expected_seq_ - 1, prev_}; }
  int64_t brokenSeq() const { return broken_seq_; }
  const std::string& problem() const { return problem_; }

 private:
  std::string prev_;
  int64_t expected_seq_;
  int64_t entries_ = 0;
  int64_t broken_seq_ = 0;
  std::string problem_;
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

// A client certificate the CA issued, and whether it was revoked.
struct CertificateRecord {
  std::string serial;  // hex, as OpenSSL prints it
  std::string identity;
  std::string not_after;  // ISO 8601
  std::string issued_at;
  std::string revoked_at;  // "" while valid
  std::string reason;      // why it was revoked: superseded, or the admin's words
};

class Store {
 public:
  static Result<std::unique_ptr<Store>> open(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // VMs. createVmWithTask is one transaction: kConflict when (tenant, name) exists.
  Status createVmWithTask(const VmRecord& vm, const TaskRecord& task);
  Result<VmRecord> getVm(const std::string& tenant, const std::string& name);
  Result<std::vector<VmRecord>> findVmsByName(const std::string& name,
                                              const std::vector<std::string>& tenants);
  Result<VmPage> listVms(const VmFilter& filter);
  Result<std::vector<VmRecord>> allVms();
  Status upsertVm(const VmRecord& vm);
  Status setVmState(const std::string& tenant, const std::string& name, const std::string& state,
                    const std::string& last_error = "");
  // Only the spec (a disk or NIC added or removed while the VM lives): never its state.
  Status setVmSpec(const std::string& tenant, const std::string& name,
                   const std::string& spec_json);
  Status deleteVm(const std::string& tenant, const std::string& name);  // idempotent
  Result<std::map<std::string, int>> countVmsByState();

  // Volumes. createVolume records the volume and, when given, its task in one transaction:
  // kConflict when (tenant, name) exists.
  Status createVolume(const VolumeRecord& volume, const TaskRecord* task);
  Result<VolumeRecord> getVolume(const std::string& tenant, const std::string& name);
  // Ordered by tenant and name; empty tenants = every tenant; empty name = every name.
  Result<std::vector<VolumeRecord>> listVolumes(const std::vector<std::string>& tenants,
                                                const std::string& name = {});
  // Writes size, state, attachment, limits and last error.
  Status updateVolume(const VolumeRecord& volume);
  // Atomically moves a volume from one of `from_states`, attached to `from_vm` ("" = none), to
  // `to_state` attached to `to_vm`: kConflict when it is not (any more) in such a state, so
  // that two tasks never both take, or take and delete, one volume.
  Status transitionVolume(const std::string& tenant, const std::string& name,
                          const std::vector<std::string>& from_states, const std::string& from_vm,
                          const std::string& to_state, const std::string& to_vm);
  Status deleteVolume(const std::string& tenant, const std::string& name);  // idempotent

  // Images. createImage records the image and, when given, its import task in one
  // transaction: kConflict when (tenant, name) exists.
  Status createImage(const ImageRecord& image, const TaskRecord* task);
  Result<ImageRecord> getImage(const std::string& tenant, const std::string& name);
  // Ordered by tenant and name; empty tenants = every tenant ("" is the public one).
  Result<std::vector<ImageRecord>> listImages(const std::vector<std::string>& tenants,
                                              const std::string& name = {});
  // Writes state, format, sizes, digest and last error.
  Status updateImage(const ImageRecord& image);
  Status deleteImage(const std::string& tenant, const std::string& name);  // idempotent

  // Networks. createNetwork fills local_id and dhcp_ofport and records the network and, when
  // given, its task in one transaction: kConflict when (tenant, name), or (type, segment_id),
  // exists.
  Status createNetwork(NetworkRecord& network, const TaskRecord* task);
  Result<NetworkRecord> getNetwork(const std::string& tenant, const std::string& name);
  Result<std::vector<NetworkRecord>> listNetworks(const std::vector<std::string>& tenants,
                                                  const std::string& name = {});
  Status setNetworkState(const std::string& tenant, const std::string& name,
                         const std::string& state, const std::string& last_error = "");
  // Idempotent; a network that still has ports stays.
  Status deleteNetwork(const std::string& tenant, const std::string& name);
  Result<std::vector<int64_t>> segmentsInUse(const std::string& type);
  // Ports. createPort fills ofport: kConflict naming the address or MAC when taken.
  Status createPort(PortRecord& port);
  // All ports, or those whose `column` ("network" | "vm") is `value`; by vm and nic.
  Result<std::vector<PortRecord>> listPorts(const std::string& column = {},
                                            const std::string& value = {});
  Status deletePort(const std::string& uuid);  // idempotent
  // A VM's NIC unplugged: its port goes and the VM's later NICs' numbers move up one, so they
  // stay the indexes of the VM's spec. Idempotent: a port already gone changes nothing.
  Status deletePortOfNic(const std::string& port_uuid);
  // Security groups. create: kConflict when it exists; delete: kConflict when a port of the
  // tenant names it, or it is gone.
  Status createSecurityGroup(const SecurityGroupRecord& group);
  Result<SecurityGroupRecord> getSecurityGroup(const std::string& tenant, const std::string& name);
  Result<std::vector<SecurityGroupRecord>> listSecurityGroups(
      const std::vector<std::string>& tenants, const std::string& name = {});
  Status setSecurityGroupRules(const std::string& tenant, const std::string& name,
                               const std::string& rules_json);
  Status deleteSecurityGroup(const std::string& tenant, const std::string& name);

  // Tasks.
  Status createTask(const TaskRecord& task);
  // kConflict when another task for the same (tenant, target) is queued or running.
  Status createTaskIfIdle(const TaskRecord& task);
  Status updateTask(const std::string& id, const std::string& state, int progress,
                    const std::string& message, const std::string& error_json = "");
  Status bumpTaskAttempts(const std::string& id);
  Result<TaskRecord> getTask(const std::string& id);
  // Newest first.
  Result<std::vector<TaskRecord>> listTasks(const TaskFilter& filter, std::string* next_page_token);
  // Queued or running, oldest first.
  Result<std::vector<TaskRecord>> unfinishedTasks();

  // The journal of task steps: phases begin, done, failed, undo-begin, undone; and
  // cancel-requested, a mark (step "cancel") that opens and closes nothing.
  Status journal(const std::string& task_id, const std::string& step, const std::string& phase,
                 const std::string& detail = "");
  Result<std::vector<JournalEntry>> journalOf(const std::string& task_id);
  struct JournalReport {
    bool ok = true;
    std::string first_problem;
    int64_t tasks_checked = 0;
  };
  // Every step of a finished task was closed (done, failed, undone); unfinished tasks may have
  // one open step.
  Result<JournalReport> verifyJournal();

  // The audit log. appendAudit fills seq, at, prev_hash and hash.
  Status appendAudit(AuditEntry entry);
  struct AuditReport {
    bool ok = true;
    int64_t from_seq = 0;  // the checkpoint the walk started after (0: the first entry)
    int64_t entries = 0;
    int64_t first_broken_seq = 0;
    std::string problem;
  };
  // Walks the entries in the database from the checkpoint.
  Result<AuditReport> verifyAudit();
  Result<std::vector<AuditEntry>> listAudit(int64_t after_seq, int limit);
  // The last exported entry (the chain in the database goes on from it); {0, genesis} if none.
  Result<AuditLink> auditCheckpoint();
  // The newest entry (the checkpoint when the database holds none).
  Result<AuditLink> auditHead();
  Result<int64_t> countAudit();
  // Records an exported segment and removes its entries, in one transaction. kConflict when it
  // does not start right after the checkpoint or does not end on an entry of the database.
  Status closeAuditSegment(const AuditSegment& segment);
  Result<std::vector<AuditSegment>> listAuditSegments();
  // The last entry a syslog destination confirmed (0: none yet).
  Result<int64_t> auditConfirmed(const std::string& destination);
  Status setAuditConfirmed(const std::string& destination, int64_t seq);

  // Identity bindings.
  Status putBinding(const Binding& binding);
  Result<Binding> getBinding(const std::string& identity);
  Result<std::vector<Binding>> listBindings();
  // kNotFound when the identity has none.
  Status deleteBinding(const std::string& identity);

  // A tenant's quotas as an admin set them: a JSON object (kNotFound when none was set).
  Result<std::string> getQuota(const std::string& tenant);
  Status putQuota(const std::string& tenant, const std::string& limits_json);
  Result<std::vector<std::string>> quotaTenants();

  // Certificates: recorded at issue, revoked by serial or by identity (every one it has);
  // revokeCertificates answers how many it revoked now.
  Status recordCertificate(const CertificateRecord& cert);
  Result<std::vector<CertificateRecord>> listCertificates();
  Result<int> revokeCertificates(const std::string& serial, const std::string& identity,
                                 const std::string& reason);

 private:
  explicit Store(sqlite3* db);
  class Statement;
  class Transaction;

  Status exec(const char* sql);
  static Binding bindingFromRow(Statement& q);
  static AuditEntry auditFromRow(Statement& q);
  Result<AuditLink> auditCheckpointLocked();  // mutex_ held
  Result<AuditLink> auditHeadLocked();        // mutex_ held
  Status insertTaskLocked(const TaskRecord& task);  // mutex_ held
  int64_t lowestFreeLocked(const std::string& sql, int64_t first);  // mutex_ held
  // SELECT columns FROM table of some tenants (all when empty) and one name (any when ""),
  // ordered by tenant and name; `from` makes a record of a row.
  template <typename Record, typename From>
  Result<std::vector<Record>> selectByTenant(const char* table, const char* columns, From from,
                                             const std::vector<std::string>& tenants,
                                             const std::string& name);
  Error sqlError(const std::string& what) const;

  std::mutex mutex_;
  sqlite3* db_;
};

// The hash of one audit entry given its predecessor's: SHA-256 over length-prefixed fields, so
// that moving characters between fields changes it.
std::string auditHash(const AuditEntry& entry, const std::string& prev_hash);
// The link the first entry of the audit log names as its predecessor.
extern const std::string kAuditGenesisHash;

}  // namespace qiao
