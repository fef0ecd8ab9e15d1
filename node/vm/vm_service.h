// VmService: the VM lifecycle of one node. It owns the tasks that change VMs (each an
// operation of named, idempotent steps with their undo, journaled in the store), the
// reconciliation of the store with libvirt, and the tracking of VM state from libvirt events.
//
// Threads: API calls (createVm, deleteVm, action, ...) validate and record a task, then return
// at once; the task runs on the task workers. libvirt events and reconciliation run, one at a
// time and in order, on the control worker. Nothing here ever destroys a guest it was not
// asked to destroy: reconciliation adopts, redefines and reports, never kills.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/event_bus.h"
#include "base/work_queue.h"
#include "firmware/descriptor.h"
#include "node/networks/vm_ports.h"
#include "node/state/store.h"
#include "node/tasks/task_engine.h"
#include "node/vm/domain.h"
#include "node/vm/guest_monitors.h"
#include "node/vm/hypervisor.h"
#include "node/vm/spec.h"
#include "node/vm/vm_stats.h"
#include "node/volumes/volume_service.h"

namespace qiao {

class QmpChannel;

struct VmServiceOptions {
  std::string cluster;
  std::string host;              // this host's name: recorded in the VMs it makes or adopts
  std::string console_dir;       // <state dir>/console
  std::string nvram_dir;         // <state dir>/nvram: each UEFI VM's own variable store
  std::string seed_dir;          // <state dir>/seeds: cloud-init seed ISOs
  FirmwareCatalog firmware;      // QEMU's firmware descriptors, read at start
  std::string host_accelerator;  // "kvm" | "tcg": what accel=auto resolves to
  bool kvm_usable = false;
  std::string kvm_reason;  // why KVM is (not) usable, for error messages
  std::string machine_x86_64 = "q35";
  std::string machine_aarch64 = "virt";
  std::string cpu_model_aarch64_tcg = "cortex-a72";
  int shutdown_timeout_s = 60;
  int dependency_timeout_s = 900;  // a create's wait for its networks and images
  int64_t console_log_max_bytes = 2 << 20;
  std::string ceph_key_file;  // the cephx key QEMU reads for RBD disks (root only)
};

class VmService {
 public:
  // `volumes` may be null on a node without volumes (then VMs have no disks), `networks` on a
  // node without networks (then VMs have no NICs).
  VmService(VmServiceOptions options, Store& store, Hypervisor& hypervisor, EventBus& events,
            TaskEngine& tasks, GuestMonitors& guests, VolumeService& volumes, VmPorts& networks);
  ~VmService();
  VmService(const VmService&) = delete;
  VmService& operator=(const VmService&) = delete;

  // Subscribes to libvirt events and reconciles the store with libvirt, then calls
  // `after_reconcile` on the same queue (the composition root resumes unfinished tasks there).
  void start(std::function<void()> after_reconcile = {});
  // Stops the event handling; the task engine is its owner's to stop (after this).
  void stop();

  // The API's entry points: validate, record the task (and the VM row), queue it.
  Result<TaskRecord> createVm(VmSpec spec, bool start, const std::string& identity);
  Result<TaskRecord> deleteVm(const VmRecord& vm, bool force, const std::string& identity);
  // action: start | stop | force-stop | reboot | pause | resume
  Result<TaskRecord> action(const VmRecord& vm, std::string_view action,
                            const std::string& identity);
  static bool isAction(std::string_view action);
  // The task kind of an action: vm.<action>; nullopt for a word that is none of them.
  static std::optional<TaskKind> actionKind(std::string_view action);

  // Disks while the VM lives (or not): added from a volume or an image (a running VM gets it
  // hot-plugged, its guest sees it at once), removed (the guest must let it go; the volume
  // stays, available). Both keep the stored spec and libvirt's definition in step.
  Result<TaskRecord> addDisk(const VmRecord& vm, DiskSpec disk, const std::string& identity);
  Result<TaskRecord> removeDisk(const VmRecord& vm, const std::string& volume,
                                const std::string& identity);
  // NICs while the VM lives (or not): a port on the network (address, flows) and, in a
  // running VM, the device hot-plugged; removed by MAC (the guest must let it go).
  Result<TaskRecord> addNic(const VmRecord& vm, NicSpec nic, const std::string& identity);
  Result<TaskRecord> removeNic(const VmRecord& vm, const std::string& mac,
                               const std::string& identity);
  // vCPUs and memory (the balloon's target) within the maximums fixed at create; a running
  // VM changes at once, a stopped one at its next start. 0 = unchanged.
  Result<TaskRecord> resize(const VmRecord& vm, int vcpus, int64_t memory_mib,
                            const std::string& identity);
  // How long an unplug waits for the guest to release the disk (default 30 s).
  void setDiskReleaseTimeout(std::chrono::milliseconds timeout);

  // The last `tail_bytes` of the VM's serial console (kept across guest reboots and daemon
  // restarts by virtlogd, rotated at console_log_max_bytes).
  Result<std::string> consoleLog(const VmRecord& vm, size_t tail_bytes) const;
  std::string consoleLogPath(const VmRecord& vm) const;

  // Statistics (vm_stats.cc). One VM's: libvirt's figures and QMP's for its RBD disks, as the
  // API's object; a VM that is not running answers kConflict; a QMP failure leaves the RBD
  // disks' figures null and says so under "missing".
  Result<nlohmann::json> stats(const VmRecord& vm);
  // Every VM's figures for /metrics: libvirt's from one call, and QEMU's for the RBD disks of
  // the live VMs through their kept monitors, a few VMs at a time, each within a short timeout
  // and all within one budget (a VM whose QEMU does not answer in time has its RBD disks under
  // `missing`; the scrape does not wait for it).
  std::vector<VmFigures> metricsFigures();

  struct ReconcileReport {
    int seen = 0;
    int updated = 0;
    int adopted = 0;
    int redefined = 0;
    int foreign = 0;
    std::vector<std::string> notes;
  };
  // Runs one reconciliation on the control worker and waits for it.
  ReconcileReport reconcileNow();

  bool libvirtConnected() const { return libvirt_connected_.load(); }
  // Blocks until no task is queued or running (tests and shutdown).
  void waitIdle();

 private:
  // Records the task and queues it; the VM shows `vm_state_while_running` (when given) until
  // the task sets its outcome.
  Result<TaskRecord> queueTask(TaskRecord task, std::optional<VmState> vm_state_while_running);
  Status runTask(TaskEngine::Run& run);
  void giveUp(TaskEngine::Run& run);
  Status runCreate(TaskEngine::Run& run, const VmRecord& vm, bool start);
  Status runDelete(TaskEngine::Run& run, const VmRecord& vm, bool force);
  Status runAction(TaskEngine::Run& run, const VmRecord& vm, TaskKind action);

  Status runAddDisk(TaskEngine::Run& run, const VmRecord& vm, const nlohmann::json& disk);
  Status runRemoveDisk(TaskEngine::Run& run, const VmRecord& vm, const std::string& volume);
  Status runAddNic(TaskEngine::Run& run, const VmRecord& vm, const nlohmann::json& params);
  Status runResize(TaskEngine::Run& run, const VmRecord& vm, int vcpus, int64_t memory_mib);
  Status runRemoveNic(TaskEngine::Run& run, const VmRecord& vm, const nlohmann::json& params);
  Result<PortRecord> portOfNic(const VmRecord& vm, size_t index);
  Status attachNicLive(const VmRecord& vm, size_t index);
  Status detachNicLive(const VmRecord& vm, const NicDef& nic);
  // What Qiao knows of a VM's disks and NICs, to name their figures (vm_stats.cc).
  Result<std::vector<VmStatsDisk>> statsDisksOf(const VmRecord& vm) const;
  Result<std::vector<VmStatsNic>> statsNicsOf(const VmRecord& vm) const;
  // QEMU's query-blockstats through the VM's kept monitor (its RBD disks' figures).
  Result<nlohmann::json> rbdBlockstats(const VmRecord& vm, std::chrono::milliseconds timeout);
  // Records the spec and defines the domain from it (the running guest is not touched).
  Status redefineWith(const VmRecord& vm, const VmSpec& spec);
  Result<DiskDef> diskDefOf(const VmRecord& vm, const std::string& volume_name) const;
  // Idempotent: a step run again after a crash finds its own work done.
  Status attachLive(QmpChannel& qmp, const DiskDef& disk);
  Status detachLive(QmpChannel& qmp, const std::string& id);
  // Unplugs the VM's disk on `volume` from its running guest (detachLive); nothing to do
  // when the VM does not run.
  Status unplugDisk(const VmRecord& vm, const std::string& volume);
  // Disk i of a spec can be taken by it: its volume free, or its image ready (or, with
  // `importing_ok`, being imported: a create waits for it) and its name free.
  Status checkNewDisk(const VmSpec& spec, size_t i, bool importing_ok = false) const;
  // A disk of `size_gib` holds the image (`where` starts the message: "disks[0]: ").
  static Status checkImageFits(const std::string& where, const DiskSpec& disk,
                               const ImageRecord& image);
  // "" when every image the spec's disks name is ready (and not larger than its disk), else
  // what is still awaited; an error when one will never be ready (its import failed).
  Result<std::string> awaitedImages(const VmSpec& spec) const;
  // A create's first wait: for the networks and images it names that are still being made,
  // vm.dependency_timeout_s at most.
  Status awaitDependencies(TaskEngine::Run& run, const VmSpec& spec);

  // kConflict while the VM is being created or deleted.
  static Status checkNotBusy(const VmRecord& vm);
  // kConflict when a copy of one of the VM's volumes (or of `only_volume`) runs: its QEMU
  // must not come or go, nor the disk, under the copy.
  Status checkNotCopying(const VmRecord& vm, const std::string& only_volume = {});
  static std::vector<NicRequest> nicRequests(const VmSpec& spec);
  static std::string vmId(const std::string& tenant, const std::string& name);
  // Limits for a spec already accepted once (the host's may have changed since).
  static SpecLimits storedLimits();
  Result<VmSpec> storedSpec(const VmRecord& vm) const;
  Result<std::string> renderXml(const VmRecord& vm) const;
  // The spec's disks as the domain sees them (from the volumes' records).
  Result<std::vector<DiskDef>> resolveDisks(const VmRecord& vm, const VmSpec& spec) const;
  std::string seedPath(const VmRecord& vm) const;
  // A UEFI VM's NVRAM is an RBD image beside its disks when the node keeps volumes on RBD
  // (made from the firmware's template at create, removed with the VM); else a file in
  // nvram_dir that libvirt makes.
  bool nvramOnRbd() const;
  // The VM is this host's to run (the cluster's VMs are all in the store; "" from before hosts
  // were recorded: this host's).
  bool onThisHost(const VmRecord& vm) const { return vm.host.empty() || vm.host == options_.host; }
  static VolumeId nvramId(const VmRecord& vm);
  Status makeNvram(const VmRecord& vm, const std::string& template_path);
  // Once the guest is gone: waits out a killed QEMU's watch on the image.
  Status removeNvram(const VmRecord& vm);
  // At create time: the volumes exist in the VM's tenant and are free, the images are ready or
  // being imported.
  Status checkDisks(const VmSpec& spec) const;
  // The create step: volumes claimed, image disks cloned. Its undo, and the delete step:
  // volumes given back, image disks removed (unless kept, on delete).
  Status takeDisks(const VmSpec& spec);
  Status giveBackDisks(const VmSpec& spec, bool deleting);
  Status checkNics(const VmSpec& spec) const;
  // The firmware build for a spec (none for bios); kInvalidArgument when the host has none.
  Result<std::optional<FirmwareDescriptor>> chooseFirmware(const VmSpec& spec) const;
  std::string resolveAccelerator(const VmSpec& spec) const;
  // Reads the domain's state from libvirt and records it (and announces a change).
  void refreshState(const std::string& tenant, const std::string& name,
                    std::string_view reason = {});
  void setState(const VmRecord& vm, VmState state, std::string_view reason,
                const std::string& last_error = {});
  void publishVm(const std::string& tenant, const std::string& name, VmState state,
                 std::string_view reason);
  // The event of a VM that is no more: its state "deleted" (which no stored VM has).
  void publishDeleted(const std::string& tenant, const std::string& name, std::string_view reason);

  void onDomainEvent(const DomainEvent& event);
  ReconcileReport reconcile();
  ReconcileReport reconcileLocked();

  VmServiceOptions options_;
  Store& store_;
  Hypervisor& hypervisor_;
  EventBus& events_;
  TaskEngine& tasks_;
  GuestMonitors& guests_;  // QMP monitors of running guests (one kept per VM)
  VolumeService& volumes_;
  VmPorts& networks_;
  std::atomic<bool> libvirt_connected_{true};
  std::atomic<bool> stopping_{false};
  // Task steps hold it shared; reconciliation and event handling hold it exclusively, so that
  // they never see libvirt and the store in the middle of a step (a domain listed before a
  // delete's undefine, its row read after the delete's forget, would look like an orphan).
  std::shared_mutex ops_mutex_;
  WorkQueue control_;  // libvirt events and reconciliation, in order
  // QMP questions of a /metrics scrape (askWithinBudget): a fixed set of threads, not one per
  // VM and scrape.
  WorkQueue stats_pool_;
  Subscription domain_events_;
  std::chrono::milliseconds disk_release_timeout_{30000};
};

}  // namespace qiao
