// VolumeDriver: where a node keeps its VMs' disks and its golden images. Two drivers ship:
// Ceph RBD through librbd/librados (one RBD namespace per tenant in the configured pool, so a
// tenant's images are apart inside Ceph too; public images in the pool's default namespace),
// and a local directory (one folder per namespace, sparse raw files) for hosts without Ceph.
// Every call is idempotent where that makes sense (create of an existing volume of the same
// size, remove of a missing one) so that a task step can be run again after a crash.
// Thread-safe. librbd/librados headers stay in rbd_driver.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace qiao {

class LibradosCluster;

// A volume in a backend: the namespace (a tenant, or "" for public images) and the object's
// name there ("vol-data1", "img-debian12").
struct VolumeId {
  std::string ns;
  std::string name;
  std::string pool;  // RBD: the pool, "" for the driver's own (RbdOptions::pool); local: ""
  // "tenant-a/vol-data1" or "vol-data1" in the public namespace.
  std::string describe() const { return ns.empty() ? name : ns + "/" + name; }
  bool operator==(const VolumeId&) const = default;
};

struct VolumeStat {
  int64_t size_bytes = 0;
  std::string parent;  // "ns/name@snap" of a clone that is not flattened, else ""
};

// I/O limits of one volume; 0 = unlimited.
// I/O limits of a volume, 0 = none: totals, and reads and writes on their own (a disk obeys
// each limit it has).
struct VolumeQos {
  int64_t iops = 0;
  int64_t bytes_per_sec = 0;
  int64_t read_iops = 0;
  int64_t write_iops = 0;
  int64_t read_bytes_per_sec = 0;
  int64_t write_bytes_per_sec = 0;
  bool operator==(const VolumeQos&) const = default;
};

// How QEMU reaches a volume.
struct DiskSource {
  std::string type;  // "file" | "rbd"
  std::string path;  // file
  std::string pool, ns, image, user, conf;  // rbd (the key is in the keyring the conf names)
  bool operator==(const DiskSource&) const = default;
};

// Sequential writes into a volume (imports). finish() flushes; a writer destroyed without
// finish() leaves a partial volume that the caller removes.
class VolumeWriter {
 public:
  virtual ~VolumeWriter() = default;
  virtual Status write(uint64_t offset, const void* data, size_t length) = 0;
  virtual Status finish() = 0;
};

class VolumeDriver {
 public:
  virtual ~VolumeDriver() = default;

  virtual std::string_view backend() const = 0;  // "rbd" | "local"
  // "rbd pool qiao" | "/var/lib/qiao/volumes", for messages and the host API.
  virtual std::string location() const = 0;
  // kUnavailable with the reason when the backend cannot be reached now.
  virtual Status ping() = 0;
  // The pool of a VolumeId whose pool is "" (RBD); "" for backends without pools.
  virtual std::string defaultPool() const { return {}; }

  // Creates an empty (thin) volume. Idempotent: an existing volume of the same size is fine,
  // of another size kConflict.
  virtual Status create(const VolumeId& id, int64_t size_bytes) = 0;
  virtual Result<VolumeStat> stat(const VolumeId& id) = 0;  // kNotFound when absent
  // Grows to size_bytes (never shrinks: kInvalidArgument).
  virtual Status resize(const VolumeId& id, int64_t size_bytes) = 0;
  // Removes the volume and its snapshots. A missing volume is fine. A volume that a client
  // still has open answers kConflict naming the clients; one with clones answers kConflict.
  virtual Status remove(const VolumeId& id) = 0;
  // The clients that have the volume open ("127.0.0.1:0/123 (client.4123)"), if the backend
  // knows them.
  virtual Result<std::vector<std::string>> watchers(const VolumeId& id) = 0;
  virtual Status setQos(const VolumeId& id, const VolumeQos& qos) = 0;
  virtual Result<VolumeQos> qos(const VolumeId& id) = 0;

  // Makes `snapshot` of the volume, protected, so that clones can be made from it (idempotent).
  virtual Status createGoldenSnapshot(const VolumeId& id, const std::string& snapshot) = 0;
  // A copy-on-write clone of parent@snapshot, in the child's namespace (idempotent).
  virtual Status clone(const VolumeId& parent, const std::string& snapshot,
                       const VolumeId& child) = 0;
  // Copies the parent's data into a clone so that it no longer depends on it.
  virtual Status flatten(const VolumeId& id) = 0;

  virtual Result<std::unique_ptr<VolumeWriter>> openWriter(const VolumeId& id) = 0;
  // Up to `length` bytes from `offset` (fewer at the end of the volume).
  virtual Result<std::string> read(const VolumeId& id, uint64_t offset, size_t length) = 0;
  // The volumes of one namespace, by name.
  virtual Result<std::vector<std::string>> list(const std::string& ns) = 0;

  virtual DiskSource diskSource(const VolumeId& id) const = 0;
};

struct RbdOptions {
  std::string conf;      // ceph.conf (monitors; the keyring it names holds the user's key)
  std::string user = "qiao";  // cephx user, without "client."
  std::string keyring;   // optional: overrides the conf's keyring
  std::string pool = "qiao";
  int op_timeout_s = 30;  // monitor and OSD operations
  // Where the driver keeps the address of its Ceph client. At connect, the client of the
  // previous run (a qiaod that was killed) is blocklisted for an hour: its watches would
  // otherwise hold the images it had open, for half a minute, as if they were in use.
  // Empty: no fencing.
  std::string instance_file;
  // The process's Ceph client to use (storage/rados_cluster.h); null: the driver makes its own
  // from the fields above.
  std::shared_ptr<LibradosCluster> cluster;
};

// Connects to the cluster (kUnavailable when it cannot be reached).
Result<std::unique_ptr<VolumeDriver>> makeRbdDriver(const RbdOptions& options);
// The base64 key of client.<user> in a Ceph keyring file (for QEMU's secret object).
Result<std::string> readCephKey(const std::string& keyring, const std::string& user);

// Files under `dir` (created when missing).
Result<std::unique_ptr<VolumeDriver>> makeLocalDriver(const std::string& dir);

}  // namespace qiao
