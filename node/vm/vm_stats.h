// A VM's statistics as Qiao names them: libvirt's figures of the domain (CPU, memory, its
// <disk>s and NICs) and QEMU's query-blockstats for Qiao's own RBD disks, put together by
// volume name and by NIC MAC/network. VmService (vm_stats.cc) gathers the inputs; the pure
// functions here merge them and render the API's object, and are unit-tested on their own.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/work_queue.h"
#include "node/vm/hypervisor.h"

namespace qiao {

// A disk of the VM as Qiao knows it.
struct VmStatsDisk {
  std::string volume;   // the volume's name; "" for the cloud-init seed
  std::string backend;  // "rbd" (QEMU's -blockdev, figures from QMP) | "local" | "seed"
  std::string device;   // rbd: the QEMU id (qd-<hex>); local/seed: the file libvirt opens
  std::string target;   // local/seed: the target given at definition ("vdb", "sda")
};

// A NIC of the VM: its port in the store.
struct VmStatsNic {
  std::string mac, network, ip;
  std::string device;  // the tap, "qt-<8 hex>"
};

struct BlockFigures {
  uint64_t read_bytes = 0, read_ops = 0, write_bytes = 0, write_ops = 0, flush_ops = 0;
};

// QMP query-blockstats' answer: each device's figures under every name it goes by (its qdev
// id, the id in its QOM path "/machine/peripheral/<id>/...", its root node-name, its
// BlockBackend name). Entries without stats are skipped.
std::map<std::string, BlockFigures> parseQmpBlockstats(const nlohmann::json& answer);

// One VM's figures, named.
struct VmFigures {
  std::string tenant, name;
  DomainStats domain;
  struct Disk {
    VmStatsDisk ref;
    std::optional<BlockFigures> figures;  // nullopt: not read (see missing)
  };
  struct Nic {
    VmStatsNic ref;
    std::optional<DomainNicStats> figures;
  };
  std::vector<Disk> disks;
  std::vector<Nic> nics;
  struct Missing {
    std::string part;    // "disk <volume>", "nic <mac>", "rbd disks"
    std::string reason;
  };
  std::vector<Missing> missing;
  bool live() const;  // running, paused, ...: QEMU is there
};

// Names libvirt's figures (file disks by path, else by target; NICs by tap) and QEMU's (RBD
// disks by QEMU id). `blockstats`: QMP's answer, its error, or nullptr when QMP was not asked.
// Figures libvirt has for a disk or NIC Qiao does not know are dropped; a disk or NIC of a
// live VM without figures is listed as missing, with the reason.
VmFigures mergeVmFigures(std::string tenant, std::string name, DomainStats domain,
                         const std::vector<VmStatsDisk>& disks,
                         const std::vector<VmStatsNic>& nics,
                         const Result<nlohmann::json>* blockstats);

// How many VMs' monitors a /metrics scrape asks at once (the VM service's stats pool).
inline constexpr size_t kMetricsParallel = 8;

// Runs ask(i, timeout) for each i in [0, n) on `pool`'s threads (no thread is made per call),
// `parallel` at a time, each told to take at most `each` and all of them within `budget` from
// the call: an i whose turn comes when the budget is spent gets skipped(i) instead. `ask` must
// keep to its timeout; returns when every ask started has returned. (/metrics asks the VMs'
// monitors this way.)
void askWithinBudget(WorkQueue& pool, size_t n, size_t parallel, std::chrono::milliseconds each,
                     std::chrono::milliseconds budget,
                     const std::function<void(size_t, std::chrono::milliseconds)>& ask,
                     const std::function<void(size_t)>& skipped);

// The API's object (GET /v1/vms/{name}/stats): docs/api/openapi.yaml's VmStats.
nlohmann::json vmFiguresToJson(const VmFigures& figures);

}  // namespace qiao
