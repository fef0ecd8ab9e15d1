// Full copies of volumes as QEMU block jobs, driven over QMP (blockdev-backup, sync=full: the
// copy is the source as it was when the job began, even while a guest goes on writing to it).
// A copy runs where the source is open:
//   - in the QEMU of the running VM that has the source attached (its disk's raw node is the
//     job's source; libvirt does not know Qiao's RBD disks, so this is QMP, not blockcopy);
//   - otherwise in a qemu-storage-daemon of the copy's own, the source opened read-only.
// Both outlive a killed qiaod: a copy step run again after a restart finds its job by id and
// follows it on; only a job whose QEMU is gone starts again from the beginning (a full copy
// rewrites the whole target, so that is safe).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "node/vm/qmp/qmp_channel.h"
#include "node/vm/qmp/qmp_socket.h"
#include "storage/volume_driver.h"

namespace qiao {

// A volume's node pair in a QEMU: "<name>-file" (rbd or file) under <name> (raw). A VM's disk
// (its id), and the source and target of a copy.
struct BlockNode {
  std::string name;
  DiskSource source;
  bool read_only = false;
};

struct BlockCopyPlan {
  std::string job_id;                   // the same across restarts ("qiao-copy-<task>")
  std::string source_node;              // the raw node the job reads
  std::optional<BlockNode> add_source;  // added when the runner does not have the source open
  BlockNode target;                     // always added; the job writes it whole
  int64_t speed_bytes_per_sec = 0;      // 0: as fast as the backends go
};

struct BlockCopyProgress {
  int64_t done_bytes = 0;
  int64_t total_bytes = 0;
};

struct BlockCopyHooks {
  std::function<void(const BlockCopyProgress&)> progress;  // about every poll
  std::function<bool()> cancelled;                         // true: cancel the job
  std::chrono::milliseconds poll{100};
};

// The names of the block nodes QEMU has (query-named-block-nodes, flat).
Result<std::set<std::string>> blockNodeNames(QmpChannel& qmp);
// Adds the node pair of `node` that QEMU does not have yet (idempotent: a step run again after
// a crash finds its nodes there); deletes the pairs named, raw node first, those that exist.
Status addBlockNodes(QmpChannel& qmp, const BlockNode& node);
Status deleteBlockNodes(QmpChannel& qmp, const std::vector<std::string>& names);

// Starts the job unless it exists (adding the nodes that are missing), then follows it until
// it concludes. OK when everything was copied; TaskEngine::Run::cancelledError() when it was
// cancelled; the job's own error otherwise (kUnavailable when its QEMU went away). Leaves the
// job concluded (cleanupBlockCopy dismisses it).
Status runBlockCopy(QmpChannel& qmp, const BlockCopyPlan& plan, const BlockCopyHooks& hooks);

// Cancels the job if it still runs, dismisses it, and deletes the nodes the plan added (the
// source's too). Idempotent; a QEMU that has gone away has nothing left to clean.
Status cleanupBlockCopy(QmpChannel& qmp, const BlockCopyPlan& plan);

// The qemu-storage-daemons of copies: started detached (each outlives a killed qiaod, so its
// job goes on), found again by their socket, told to quit at the end.
struct StorageDaemonOptions {
  std::string binary = "qemu-storage-daemon";
  std::string dir;            // their QMP sockets and pid files (no ',' in it)
  std::string ceph_key_file;  // the Ceph key (base64) for kCephKeyId; "" without Ceph
};

// The daemon called `name` (a task's id), started when none answers on its socket.
Result<std::shared_ptr<QmpSocketChannel>> openStorageDaemon(QmpRuntime& runtime,
                                                            const StorageDaemonOptions& options,
                                                            const std::string& name);
// Tells it to quit (kills it when it does not answer) and removes its files. Idempotent.
// `connected`: the caller's own channel to it, if it has one (a daemon serves one QMP client
// at a time: a second connection would wait for the first to close).
Status stopStorageDaemon(QmpRuntime& runtime, const StorageDaemonOptions& options,
                         const std::string& name, QmpChannel* connected = nullptr);

}  // namespace qiao
