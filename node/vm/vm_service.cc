#include "node/vm/vm_service.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "base/crypto.h"
#include "base/files.h"
#include "base/log.h"
#include "images/cloud_init.h"
#include "node/images/image_service.h"
#include "node/state/record_json.h"
#include "node/vm/domain.h"

namespace qiao {
namespace {

const Logger kLog("vm");

// "acme.web1" -> {"acme", "web1"}: tenants are DNS labels, so the first dot splits.
bool splitDomainName(const std::string& domain, std::string* tenant, std::string* name) {
  auto dot = domain.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == domain.size()) return false;
  *tenant = domain.substr(0, dot);
  *name = domain.substr(dot + 1);
  return true;
}

// The event of a VM's state (its name; "deleted" once it is gone).
void publishVmEvent(EventBus& events, const std::string& tenant, const std::string& name,
                    std::string state, std::string_view reason) {
  events.publish({"vm", tenant,
                  dumpJson({{"type", "vm"},
                            {"tenant", tenant},
                            {"name", name},
                            {"state", std::move(state)},
                            {"reason", std::string(reason)}})});
}

}  // namespace

Status VmService::checkNotBusy(const VmRecord& vm) {
  if (!transient(vm.state)) return {};
  return makeError(
      ErrorCode::kConflict, "vm",
      "vm " + vmId(vm.tenant, vm.name) + " is " + toString(vm.state) + "; try again later");
}

std::string VmService::vmId(const std::string& tenant, const std::string& name) {
  return tenant + "/" + name;
}

SpecLimits VmService::storedLimits() {
  SpecLimits limits;
  limits.check_boot_files = false;  // checked when the VM was created; libvirt reports a loss
  limits.max_vcpus = 1 << 16;
  limits.max_memory_mib = int64_t{1} << 40;
  limits.max_disk_gib = int64_t{1} << 30;
  return limits;
}

VmService::VmService(VmServiceOptions options, Store& store, Hypervisor& hypervisor,
                     EventBus& events, TaskEngine& tasks, GuestMonitors& guests,
                     VolumeService& volumes, VmPorts& networks)
    : options_(std::move(options)),
      store_(store),
      hypervisor_(hypervisor),
      events_(events),
      tasks_(tasks),
      guests_(guests),
      volumes_(volumes),
      networks_(networks),
      control_("qiao-control", 1),
      stats_pool_("qiao-stats", kMetricsParallel) {
  TaskEngine::Kind kind;
  kind.run = [this](TaskEngine::Run& run) { return runTask(run); };
  kind.give_up = [this](TaskEngine::Run& run) { giveUp(run); };
  kind.step_lock = &ops_mutex_;
  tasks_.addFamily(TaskFamily::kVm, std::move(kind));
}

VmService::~VmService() { stop(); }

void VmService::start(std::function<void()> after_reconcile) {
  std::error_code ec;
  std::filesystem::create_directories(options_.nvram_dir, ec);
  std::filesystem::create_directories(options_.console_dir, ec);
  if (ec) {
    kLog.error("cannot create the console log directory",
               {{"path", options_.console_dir}, {"error", ec.message()}});
  }
  domain_events_ = hypervisor_.subscribe([this](const DomainEvent& event) {
    if (stopping_.load()) return;
    DomainEvent copy = event;
    control_.post([this, copy] { onDomainEvent(copy); });
  });
  control_.post([this, after_reconcile = std::move(after_reconcile)] {
    auto report = reconcile();
    kLog.info("startup reconciliation done", {{"seen", std::to_string(report.seen)},
                                              {"updated", std::to_string(report.updated)},
                                              {"adopted", std::to_string(report.adopted)},
                                              {"redefined", std::to_string(report.redefined)},
                                              {"foreign", std::to_string(report.foreign)}});
    if (after_reconcile) after_reconcile();
  });
}

void VmService::stop() {
  if (stopping_.exchange(true)) return;
  domain_events_.reset();
  control_.stop();
  stats_pool_.stop();
}

void VmService::waitIdle() {
  control_.drain();
  tasks_.drain();
}

std::optional<TaskKind> VmService::actionKind(std::string_view action) {
  auto kind = parseEnum<TaskKind>("vm." + std::string(action));
  if (!kind) return std::nullopt;
  switch (*kind) {
    case TaskKind::kVmStart:
    case TaskKind::kVmStop:
    case TaskKind::kVmForceStop:
    case TaskKind::kVmReboot:
    case TaskKind::kVmPause:
    case TaskKind::kVmResume: return kind;
    default: return std::nullopt;  // vm.create, vm.disk-add, ...: not actions
  }
}

bool VmService::isAction(std::string_view action) { return actionKind(action).has_value(); }

std::string VmService::resolveAccelerator(const VmSpec& spec) const {
  if (spec.accel == "tcg") return "tcg";
  if (spec.accel == "kvm") return "kvm";
  return options_.host_accelerator;
}

std::string VmService::consoleLogPath(const VmRecord& vm) const {
  return options_.console_dir + "/" + vm.uuid + ".log";
}

Result<VmSpec> VmService::storedSpec(const VmRecord& vm) const {
  auto spec = parseVmSpec(vm.spec_json, storedLimits());
  if (!spec) {
    return makeError(ErrorCode::kInternal, "vm",
                     "the stored spec of vm " + vmId(vm.tenant, vm.name) +
                         " does not parse: " + spec.error().message);
  }
  spec->tenant = vm.tenant;
  return spec;
}

bool VmService::nvramOnRbd() const {
  return volumes_.driver().backend() == "rbd" && !options_.ceph_key_file.empty();
}

VolumeId VmService::nvramId(const VmRecord& vm) { return {vm.tenant, "nvram-" + vm.uuid}; }

Status VmService::removeNvram(const VmRecord& vm) {
  // The step runs after the undefine: a killed QEMU's watch is all that can hold it.
  return volumes_.removeReleased(nvramId(vm));
}

Status VmService::makeNvram(const VmRecord& vm, const std::string& template_path) {
  const std::string bytes = readTextFile(template_path);
  if (bytes.empty()) {
    return makeError(ErrorCode::kInternal, "firmware",
                     "cannot read the NVRAM template " + template_path);
  }
  VolumeDriver& driver = volumes_.driver();
  const VolumeId id = nvramId(vm);
  // Written whole each time: the step may run again after a crash, before the VM ever ran.
  if (auto made = driver.create(id, static_cast<int64_t>(bytes.size())); !made) return made;
  auto writer = driver.openWriter(id);
  if (!writer) return std::unexpected(writer.error());
  if (auto wrote = (*writer)->write(0, bytes.data(), bytes.size()); !wrote) return wrote;
  return (*writer)->finish();
}

std::string VmService::seedPath(const VmRecord& vm) const {
  return options_.seed_dir + "/" + vm.uuid + ".iso";
}

Result<std::vector<DiskDef>> VmService::resolveDisks(const VmRecord& vm, const VmSpec& spec) const {
  std::vector<DiskDef> disks;
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    auto volume = store_.volumes().get(spec.tenant, diskVolumeName(spec, i));
    if (!volume) return std::unexpected(volume.error());
    DiskDef disk = diskFromSource(qemuDiskId(volume->uuid), volumes_.diskSource(*volume));
    disk.target = std::string("vd") + static_cast<char>('a' + i);
    disk.qos = volume->qos;
    disks.push_back(std::move(disk));
  }
  if (spec.cloud_init) {
    DiskDef seed;
    seed.target = "sda";
    seed.type = "file";
    seed.cdrom = true;
    seed.path = seedPath(vm);
    disks.push_back(std::move(seed));
  }
  return disks;
}

Result<std::string> VmService::renderXml(const VmRecord& vm) const {
  auto spec = storedSpec(vm);
  if (!spec) return std::unexpected(spec.error());
  DomainContext context;
  context.cluster = options_.cluster;
  context.accelerator = resolveAccelerator(*spec);
  context.uuid = vm.uuid;
  context.console_log_path = consoleLogPath(vm);
  context.machine = spec->arch == "aarch64" ? options_.machine_aarch64 : options_.machine_x86_64;
  context.cpu_model_tcg_aarch64 = options_.cpu_model_aarch64_tcg;
  auto firmware = chooseFirmware(*spec);
  if (!firmware) return std::unexpected(firmware.error());
  if (*firmware) {
    context.loader = (*firmware)->executable;
    context.nvram_template = (*firmware)->nvram_template;
    context.nvram_path = options_.nvram_dir + "/" + vm.uuid + "_VARS.fd";
    // On RBD when the VM's volumes are (made there by its create; a VM from before keeps its
    // file).
    if (nvramOnRbd() && volumes_.driver().stat(nvramId(vm))) {
      context.nvram_rbd = diskFromSource("qiao-nvram", volumes_.driver().diskSource(nvramId(vm)));
    }
    context.secure_boot = spec->firmware == "uefi-secure";
  }
  auto disks = resolveDisks(vm, *spec);
  if (!disks) return std::unexpected(disks.error());
  context.disks = std::move(*disks);
  context.ceph_key_file = options_.ceph_key_file;
  if (!spec->nics.empty()) {
    auto nics = networks_.nicsOf(vm.uuid);
    if (!nics) return std::unexpected(nics.error());
    context.nics = std::move(*nics);
  }
  return renderDomainXml(buildDomainDef(*spec, context));
}

Result<std::optional<FirmwareDescriptor>> VmService::chooseFirmware(const VmSpec& spec) const {
  if (spec.firmware == "bios") return std::optional<FirmwareDescriptor>();
  FirmwareRequest request;
  request.arch = spec.arch;
  request.machine = spec.arch == "aarch64" ? options_.machine_aarch64 : options_.machine_x86_64;
  request.interface = "uefi";
  if (spec.firmware == "uefi-secure") {
    request.require = {"secure-boot", "enrolled-keys", "requires-smm"};
  } else {
    // A secure, key-enrolled build refuses a directly booted kernel: never pick one for uefi.
    request.forbid = {"secure-boot", "enrolled-keys", "requires-smm"};
  }
  auto chosen = selectFirmware(options_.firmware, request);
  if (!chosen) {
    return makeError(ErrorCode::kInvalidArgument, "firmware",
                     "firmware " + spec.firmware + " cannot run here: " + chosen.error().message);
  }
  return std::optional<FirmwareDescriptor>(std::move(*chosen));
}

std::vector<NicRequest> VmService::nicRequests(const VmSpec& spec) {
  std::vector<NicRequest> out;
  for (const auto& n : spec.nics) out.push_back({n.network, n.ip, n.mac, n.security_groups});
  return out;
}

Status VmService::checkNics(const VmSpec& spec) const {
  if (spec.nics.empty()) return {};
  return networks_.checkNics(spec.tenant, nicRequests(spec), /*creating_ok=*/true);
}

Status VmService::checkDisks(const VmSpec& spec) const {
  if (spec.disks.empty()) return {};
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    if (auto ok = checkNewDisk(spec, i, /*importing_ok=*/true); !ok) return ok;
  }
  return {};
}

Result<std::string> VmService::awaitedImages(const VmSpec& spec) const {
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const DiskSpec& disk = spec.disks[i];
    if (disk.image.empty()) continue;
    const std::string where = "disks[" + std::to_string(i) + "]: ";
    auto image = findImageFor(store_, spec.tenant, disk.image);
    if (!image) {
      // A failed import leaves no image: say why.
      const std::string why =
          TaskEngine::lastFailure(store_.tasks(), spec.tenant, "image/" + disk.image);
      return makeError(ErrorCode::kConflict, "vm",
                       where + "image " + disk.image + " was not imported" +
                           (why.empty() ? "" : ": its import failed: " + why));
    }
    if (image->state == ImageState::kImporting) return "image " + disk.image + " (importing)";
    if (image->state != ImageState::kReady) {
      return makeError(
          ErrorCode::kConflict, "vm",
          where + "image " + disk.image + " is " + toString(image->state) + ", not ready");
    }
    // Its size is known now (an image being imported at admission had none).
    if (auto fits = checkImageFits(where, disk, *image); !fits)
      return std::unexpected(fits.error());
  }
  return std::string();
}

Status VmService::awaitDependencies(TaskEngine::Run& run, const VmSpec& spec) {
  return run.waitFor("wait", "waiting for the vm's networks and images",
                     std::chrono::seconds(options_.dependency_timeout_s),
                     [&]() -> Result<std::string> {
                       if (!spec.nics.empty()) {
                         auto networks = networks_.awaitedNetworks(spec.tenant, nicRequests(spec));
                         if (!networks || !networks->empty()) return networks;
                       }
                       return awaitedImages(spec);
                     });
}

Result<TaskRecord> VmService::createVm(VmSpec spec, bool start, const std::string& identity) {
  // Refused now, with a 400, rather than as a VM that fails later.
  if (auto firmware = chooseFirmware(spec); !firmware) return std::unexpected(firmware.error());
  if (spec.accel == "kvm" && !options_.kvm_usable) {
    return makeError(ErrorCode::kInvalidArgument, "vm",
                     "accel kvm was requested but KVM cannot run guests on this host (" +
                         options_.kvm_reason + "); use accel auto or tcg");
  }
  if (auto disks = checkDisks(spec); !disks) return std::unexpected(disks.error());
  if (auto nics = checkNics(spec); !nics) return std::unexpected(nics.error());
  VmRecord vm;
  vm.tenant = spec.tenant;
  vm.name = spec.name;
  vm.uuid = newUuid();
  vm.spec_json = vmSpecToJson(spec);
  vm.state = VmState::kCreating;
  vm.host = options_.host;

  TaskRecord task = TaskEngine::newTask(TaskKind::kVmCreate, vm.tenant, vm.name, identity,
                                        nlohmann::json{{"start", start}}.dump());
  if (auto created = store_.vms().create(vm, task); !created)
    return std::unexpected(created.error());
  publishVm(vm.tenant, vm.name, vm.state, "created");
  return tasks_.dispatch(task.id);
}

Status VmService::checkNotCopying(const VmRecord& vm, const std::string& only_volume) {
  if (!only_volume.empty()) return volumes_.checkNotCopying(vm.tenant, {only_volume});
  auto spec = storedSpec(vm);
  if (!spec) return {};  // a vm without a readable spec has no disks to speak of
  std::vector<std::string> names;
  for (size_t i = 0; i < spec->disks.size(); ++i) names.push_back(diskVolumeName(*spec, i));
  return volumes_.checkNotCopying(vm.tenant, names);
}

Result<TaskRecord> VmService::deleteVm(const VmRecord& vm, bool force,
                                       const std::string& identity) {
  if (auto free = checkNotBusy(vm); !free) return std::unexpected(free.error());
  if (auto idle = checkNotCopying(vm); !idle) return std::unexpected(idle.error());
  bool stopped =
      vm.state == VmState::kShutoff || vm.state == VmState::kCrashed || vm.state == VmState::kError;
  if (!stopped && !force) {
    return makeError(ErrorCode::kConflict, "vm",
                     "vm " + vmId(vm.tenant, vm.name) + " is " + toString(vm.state) +
                         "; stop it first, or delete with force=true to power it off");
  }
  return queueTask(TaskEngine::newTask(TaskKind::kVmDelete, vm.tenant, vm.name, identity,
                                       nlohmann::json{{"force", force}}.dump()),
                   VmState::kDeleting);
}

Result<TaskRecord> VmService::action(const VmRecord& vm, std::string_view action,
                                     const std::string& identity) {
  const auto kind = actionKind(action);
  if (!kind) {
    return makeError(ErrorCode::kNotFound, "vm", "no such action " + std::string(action));
  }
  if (auto free = checkNotBusy(vm); !free) return std::unexpected(free.error());
  if (auto idle = checkNotCopying(vm); !idle) return std::unexpected(idle.error());
  auto needs = [&](std::initializer_list<VmState> states) -> Status {
    for (auto s : states) {
      if (vm.state == s) return {};
    }
    return makeError(ErrorCode::kConflict, "vm",
                     "cannot " + std::string(action) + " vm " + vmId(vm.tenant, vm.name) +
                         ": it is " + toString(vm.state));
  };
  Status allowed;
  switch (*kind) {
    case TaskKind::kVmReboot: allowed = needs({VmState::kRunning}); break;
    case TaskKind::kVmPause: allowed = needs({VmState::kRunning, VmState::kPaused}); break;
    case TaskKind::kVmResume: allowed = needs({VmState::kPaused, VmState::kRunning}); break;
    default: break;  // start, stop, force-stop: libvirt answers for the state
  }
  if (!allowed) return std::unexpected(allowed.error());

  return queueTask(TaskEngine::newTask(*kind, vm.tenant, vm.name, identity, "{}"), std::nullopt);
}

Result<TaskRecord> VmService::queueTask(TaskRecord task,
                                        std::optional<VmState> vm_state_while_running) {
  if (auto created = store_.tasks().createIfIdle(task); !created) {
    return std::unexpected(created.error());
  }
  if (vm_state_while_running) {
    auto vm = store_.vms().get(task.tenant, task.target);
    if (vm) setState(*vm, *vm_state_while_running, toString(task.kind));
  }
  return tasks_.dispatch(task.id);
}

void VmService::publishVm(const std::string& tenant, const std::string& name, VmState state,
                          std::string_view reason) {
  publishVmEvent(events_, tenant, name, toString(state), reason);
}

void VmService::publishDeleted(const std::string& tenant, const std::string& name,
                               std::string_view reason) {
  publishVmEvent(events_, tenant, name, "deleted", reason);
}

Status VmService::runTask(TaskEngine::Run& run) {
  const TaskRecord& task = run.task();
  auto vm = store_.vms().get(task.tenant, task.target);
  if (!vm) return std::unexpected(vm.error());
  const nlohmann::json params = TaskEngine::params(task);
  switch (task.kind) {
    case TaskKind::kVmCreate: return runCreate(run, *vm, params.value("start", true));
    case TaskKind::kVmDelete: return runDelete(run, *vm, params.value("force", false));
    case TaskKind::kVmDiskAdd:
      return runAddDisk(run, *vm, params.value("disk", nlohmann::json::object()));
    case TaskKind::kVmDiskRemove: return runRemoveDisk(run, *vm, params.value("volume", ""));
    case TaskKind::kVmNicAdd: return runAddNic(run, *vm, params);
    case TaskKind::kVmResize:
      return runResize(run, *vm, params.value("vcpus", 0), params.value("memory_mib", int64_t{0}));
    case TaskKind::kVmNicRemove: return runRemoveNic(run, *vm, params);
    case TaskKind::kVmStart:
    case TaskKind::kVmStop:
    case TaskKind::kVmForceStop:
    case TaskKind::kVmReboot:
    case TaskKind::kVmPause:
    case TaskKind::kVmResume: return runAction(run, *vm, task.kind);
    default: break;  // another family's kind: not ours
  }
  return makeError(ErrorCode::kInternal, "vm", "unknown task kind " + toString(task.kind));
}

// Interrupted too often: a half-made VM is rolled back; other operations stop where they are
// (their steps left the VM in a state libvirt reports truthfully).
void VmService::giveUp(TaskEngine::Run& run) {
  const TaskRecord& task = run.task();
  auto vm = store_.vms().get(task.tenant, task.target);
  if (!vm) return;
  if (task.kind != TaskKind::kVmCreate) {
    refreshState(vm->tenant, vm->name, "gave up");
    return;
  }
  const std::string domain = domainNameOf(vm->tenant, vm->name);
  (void)run.step("rollback", task.progress, "rolling back", [&]() -> Status {
    if (auto destroyed = hypervisor_.destroy(domain); !destroyed) return destroyed;
    if (auto undefined = hypervisor_.undefine(domain); !undefined) return undefined;
    if (auto unplugged = networks_.unplugVm(vm->uuid); !unplugged) return unplugged;
    if (nvramOnRbd()) {
      if (auto removed = removeNvram(*vm); !removed) return removed;
    }
    if (auto spec = storedSpec(*vm)) {
      if (auto released = giveBackDisks(*spec, /*deleting=*/false); !released) return released;
    }
    return store_.vms().remove(vm->tenant, vm->name);
  });
}

Status VmService::runCreate(TaskEngine::Run& run, const VmRecord& vm, bool start) {
  const std::string domain = domainNameOf(vm.tenant, vm.name);
  auto forget = [&]() {
    if (auto deleted = store_.vms().remove(vm.tenant, vm.name); !deleted) {
      kLog.error("cannot forget a vm whose creation failed",
                 {{"vm", vmId(vm.tenant, vm.name)}, {"error", deleted.error().describe()}});
      return;
    }
    publishDeleted(vm.tenant, vm.name, "create failed");
  };
  auto spec = storedSpec(vm);
  if (!spec) return std::unexpected(spec.error());
  // Networks and images named by the spec may still be being made: the steps wait for them.
  // A stop meanwhile leaves the task for the next start; a failed wait fails the create
  // below like any step (a resumed create may have taken its disks in an earlier run).
  Status result = awaitDependencies(run, *spec);
  if (!result && TaskEngine::Run::isShutdown(result.error())) return result;
  if (result && !spec->disks.empty()) {
    result = run.step(
        "disks", 20, "preparing disks", [&]() { return takeDisks(*spec); },
        [&]() { return giveBackDisks(*spec, /*deleting=*/false); });
  }
  if (result && !spec->nics.empty()) {
    result = run.step(
        "nics", 25, "plugging the NICs",
        [&]() { return networks_.plugVm(vm.tenant, vm.uuid, vm.name, nicRequests(*spec)); },
        [&]() { return networks_.unplugVm(vm.uuid); });
  }
  if (result && nvramOnRbd()) {
    auto firmware = chooseFirmware(*spec);
    if (!firmware) return std::unexpected(firmware.error());
    if (*firmware) {
      result = run.step(
          "nvram", 28, "making the NVRAM on RBD",
          [&]() { return makeNvram(vm, (*firmware)->nvram_template); },
          [&]() { return volumes_.driver().remove(nvramId(vm)); });
    }
  }
  if (result && spec->cloud_init) {
    result = run.step(
        "seed", 30, "building the cloud-init seed",
        [&]() -> Status {
          std::error_code ec;
          std::filesystem::create_directories(options_.seed_dir, ec);
          SeedContent seed;
          seed.instance_id = vm.uuid;
          seed.hostname = vm.name;
          seed.user_data = spec->cloud_init->user_data;
          seed.meta_data = spec->cloud_init->meta_data;
          seed.network_config = spec->cloud_init->network_config;
          return buildSeedIso(seed, seedPath(vm));
        },
        [&]() -> Status {
          ::unlink(seedPath(vm).c_str());
          return {};
        });
  }
  if (result)
    result = run.step(
        "define", 40, "defining domain",
        [&]() -> Status {
          // Never overwrite a domain that is not this VM (a foreign cluster's, or one made by
          // hand).
          auto existing = hypervisor_.lookup(domain);
          if (existing) {
            bool ours = existing->uuid == vm.uuid && existing->metadata &&
                        existing->metadata->cluster == options_.cluster;
            if (!ours) {
              return makeError(ErrorCode::kConflict, "vm",
                               "a libvirt domain named " + domain +
                                   " already exists and is not this vm (uuid " + existing->uuid +
                                   ")");
            }
          } else if (existing.error().code != ErrorCode::kNotFound) {
            return std::unexpected(existing.error());
          }
          auto xml = renderXml(vm);
          if (!xml) return std::unexpected(xml.error());
          return hypervisor_.define(*xml);
        },
        [&]() { return hypervisor_.undefine(domain); });
  if (result && start) {
    result = run.step(
        "start", 90, "starting guest", [&]() { return hypervisor_.start(domain); },
        [&]() { return hypervisor_.destroy(domain); });
  }
  if (result) {
    result = run.step("record", 100, "recording state", [&]() -> Status {
      auto info = hypervisor_.lookup(domain);
      if (!info) return std::unexpected(info.error());
      setState(vm, vmStateOf(info->state), "created");
      return {};
    });
  }
  if (!result) {
    // The define or start step may have done its work and failed all the same (libvirt's
    // answer an error, or none in time): no undo covers a step that failed, and a domain of
    // this VM left behind would keep running on its disks, then be adopted by the next
    // reconciliation as a VM nobody asked for. It goes first, before its disks are given back.
    if (auto left = hypervisor_.lookup(domain); left && left->uuid == vm.uuid) {
      (void)hypervisor_.destroy(domain);
      (void)hypervisor_.undefine(domain);
    }
    run.rollback();
    // A step that failed half way has no undo of its own: the disks step may have taken or
    // made some disks (a clone's row recorded, its RBD image not yet), the NIC step plugged
    // the first NIC before the second's address was found taken; giving back is idempotent.
    if (!spec->disks.empty()) (void)giveBackDisks(*spec, /*deleting=*/false);
    (void)networks_.unplugVm(vm.uuid);
    forget();
  }
  return result;
}

Status VmService::takeDisks(const VmSpec& spec) {
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const DiskSpec& disk = spec.disks[i];
    if (disk.image.empty()) {
      if (auto claimed = volumes_.claimForVm(spec.tenant, disk.volume, spec.name); !claimed) {
        return std::unexpected(claimed.error());
      }
      continue;
    }
    auto image = findImageFor(store_, spec.tenant, disk.image);
    if (!image) return std::unexpected(image.error());
    const int64_t size = std::max(disk.size_gib << 30, image->virtual_size);
    auto made =
        volumes_.cloneForVm(spec.tenant, diskVolumeName(spec, i), ImageService::idOf(*image),
                            ImageService::refOf(*image), size, spec.name);
    if (!made) return std::unexpected(made.error());
  }
  return {};
}

Status VmService::giveBackDisks(const VmSpec& spec, bool deleting) {
  for (size_t i = spec.disks.size(); i-- > 0;) {
    const DiskSpec& disk = spec.disks[i];
    // A disk made from an image goes with its VM unless kept; a failed create never keeps one.
    const bool destroy = !disk.image.empty() && !(deleting && disk.keep);
    if (auto released =
            volumes_.releaseFromVm(spec.tenant, diskVolumeName(spec, i), spec.name, destroy);
        !released) {
      return released;
    }
  }
  return {};
}

Status VmService::runDelete(TaskEngine::Run& run, const VmRecord& vm, bool force) {
  const std::string domain = domainNameOf(vm.tenant, vm.name);
  Status result = run.step("stop", 30, "powering off", [&]() -> Status {
    auto info = hypervisor_.lookup(domain);
    if (!info) {
      return info.error().code == ErrorCode::kNotFound ? Status{}
                                                       : Status(std::unexpected(info.error()));
    }
    bool off = info->state == DomainState::kShutoff || info->state == DomainState::kCrashed;
    if (off) return {};
    if (!force) {
      return makeError(ErrorCode::kConflict, "vm",
                       "vm " + vmId(vm.tenant, vm.name) + " is " +
                           toString(vmStateOf(info->state)) + "; delete with force=true");
    }
    return hypervisor_.destroy(domain);
  });
  if (result) {
    result = run.step("undefine", 60, "removing the domain",
                      [&]() { return hypervisor_.undefine(domain); });
  }
  if (result) {
    guests_.forget(vm.uuid);
  }
  if (result) {
    result = run.step("disks", 70, "releasing disks", [&]() -> Status {
      auto spec = storedSpec(vm);
      if (!spec) return std::unexpected(spec.error());
      return giveBackDisks(*spec, /*deleting=*/true);
    });
  }
  if (result) {
    result =
        run.step("nics", 75, "unplugging the NICs", [&]() { return networks_.unplugVm(vm.uuid); });
  }
  if (result && nvramOnRbd()) {
    result = run.step("nvram", 78, "removing the NVRAM", [&]() { return removeNvram(vm); });
  }
  if (result) {
    result = run.step("cleanup", 80, "removing the console log and seed", [&]() -> Status {
      const std::string path = consoleLogPath(vm);
      std::error_code ec;
      for (const auto& suffix : {"", ".0", ".1", ".2", ".3"}) {
        std::filesystem::remove(path + suffix, ec);
      }
      std::filesystem::remove(seedPath(vm), ec);
      return {};
    });
  }
  if (result) {
    result = run.step("forget", 100, "forgetting the vm", [&]() -> Status {
      auto deleted = store_.vms().remove(vm.tenant, vm.name);
      if (!deleted) return deleted;
      publishDeleted(vm.tenant, vm.name, "deleted");
      return {};
    });
  }
  if (!result) {
    refreshState(vm.tenant, vm.name, "delete failed");
    // Past the undefine there is no domain to take the state from: the vm is in error (with
    // the reason), not "deleting" for ever, so that a delete can be asked again.
    auto now = store_.vms().get(vm.tenant, vm.name);
    if (now && now->state == VmState::kDeleting) {
      setState(*now, VmState::kError, "delete failed", result.error().describe());
    }
  }
  return result;
}

Status VmService::runAction(TaskEngine::Run& run, const VmRecord& vm, TaskKind kind) {
  const std::string domain = domainNameOf(vm.tenant, vm.name);
  // The step is named after the action: vm.start's is "start".
  const std::string action = toString(kind).substr(std::string_view("vm.").size());
  Status result = run.step(action, 90, action + " in progress", [&]() -> Status {
    switch (kind) {
      case TaskKind::kVmStart: return hypervisor_.start(domain);
      case TaskKind::kVmStop:
        return hypervisor_.shutdown(domain, options_.shutdown_timeout_s * 1000);
      case TaskKind::kVmForceStop: return hypervisor_.destroy(domain);
      case TaskKind::kVmReboot: return hypervisor_.reboot(domain);
      case TaskKind::kVmPause: return hypervisor_.suspend(domain);
      case TaskKind::kVmResume: return hypervisor_.resume(domain);
      default: return makeError(ErrorCode::kInternal, "vm", toString(kind) + " is not an action");
    }
  });
  refreshState(vm.tenant, vm.name, action);
  return result;
}

void VmService::setState(const VmRecord& vm, VmState state, std::string_view reason,
                         const std::string& last_error) {
  if (auto set = store_.vms().setState(vm.tenant, vm.name, state, last_error); !set) {
    kLog.error("cannot record vm state",
               {{"vm", vmId(vm.tenant, vm.name)}, {"error", set.error().describe()}});
    return;
  }
  publishVm(vm.tenant, vm.name, state, reason);
}

void VmService::refreshState(const std::string& tenant, const std::string& name,
                             std::string_view reason) {
  auto vm = store_.vms().get(tenant, name);
  if (!vm) return;
  auto info = hypervisor_.lookup(domainNameOf(tenant, name));
  if (!info) {
    if (info.error().code != ErrorCode::kNotFound) return;  // libvirt away: keep what we know
    return;                                                 // missing: reconciliation redefines it
  }
  const VmState state = vmStateOf(info->state);
  if (state != vm->state) setState(*vm, state, reason);
}

Result<std::string> VmService::consoleLog(const VmRecord& vm, size_t tail_bytes) const {
  const std::string path = consoleLogPath(vm);
  auto readTail = [](const std::string& file, size_t max, std::string* out) -> bool {
    std::ifstream in(file, std::ios::binary);
    if (!in) return false;
    in.seekg(0, std::ios::end);
    auto size = static_cast<size_t>(in.tellg());
    size_t take = std::min(size, max);
    in.seekg(static_cast<std::streamoff>(size - take));
    out->resize(take);
    in.read(out->data(), static_cast<std::streamsize>(take));
    out->resize(static_cast<size_t>(in.gcount()));
    return true;
  };
  std::string current;
  if (!readTail(path, tail_bytes, &current)) {
    if (errno == ENOENT) return std::string();  // never started: no output yet
    return makeError(ErrorCode::kInternal, "vm",
                     "cannot read console log " + path + ": " + std::strerror(errno));
  }
  if (current.size() < tail_bytes) {
    // virtlogd rotates to <path>.0: the tail may start in the previous file.
    std::string previous;
    if (readTail(path + ".0", tail_bytes - current.size(), &previous)) {
      return previous + current;
    }
  }
  return current;
}

void VmService::onDomainEvent(const DomainEvent& event) {
  std::unique_lock lock(ops_mutex_);
  switch (event.kind) {
    case DomainEventKind::kConnectionLost:
      libvirt_connected_ = false;
      kLog.warn("libvirt connection lost; guests keep running", {{"detail", event.detail}});
      return;
    case DomainEventKind::kConnectionRestored: {
      libvirt_connected_ = true;
      auto report = reconcileLocked();
      kLog.info("libvirt connection restored; reconciled",
                {{"updated", std::to_string(report.updated)},
                 {"adopted", std::to_string(report.adopted)},
                 {"redefined", std::to_string(report.redefined)}});
      return;
    }
    default: break;
  }
  std::string tenant, name;
  if (!splitDomainName(event.domain, &tenant, &name)) return;
  auto vm = store_.vms().get(tenant, name);
  if (!vm) {
    if (event.kind == DomainEventKind::kDefined) reconcileLocked();  // maybe ours, to adopt
    return;
  }
  if (transient(vm->state)) return;  // the running task owns the state
  switch (event.kind) {
    case DomainEventKind::kUndefined:
      kLog.warn("domain undefined behind qiaod's back; redefining it",
                {{"vm", vmId(tenant, name)}});
      reconcileLocked();
      return;
    case DomainEventKind::kRebooted:
      kLog.info("guest rebooted", {{"vm", vmId(tenant, name)}});
      publishVm(tenant, name, vm->state, "rebooted");
      return;
    default: refreshState(tenant, name, event.detail.empty() ? "libvirt event" : event.detail);
  }
}

VmService::ReconcileReport VmService::reconcileNow() {
  ReconcileReport report;
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  bool posted = control_.post([&] {
    auto r = reconcile();
    std::lock_guard lock(mutex);
    report = std::move(r);
    done = true;
    cv.notify_all();
  });
  if (!posted) return report;
  std::unique_lock lock(mutex);
  cv.wait(lock, [&] { return done; });
  return report;
}

VmService::ReconcileReport VmService::reconcile() {
  std::unique_lock lock(ops_mutex_);
  return reconcileLocked();
}

VmService::ReconcileReport VmService::reconcileLocked() {
  ReconcileReport report;
  auto domains = hypervisor_.listDomains();
  libvirt_connected_ = domains.has_value() || domains.error().code != ErrorCode::kUnavailable;
  if (!domains) {
    report.notes.push_back("libvirt: " + domains.error().describe());
    kLog.warn("reconciliation skipped: libvirt unavailable",
              {{"error", domains.error().describe()}});
    return report;
  }
  // VMs whose task is still to run own their state; reconciliation leaves them alone.
  std::set<std::pair<std::string, std::string>> busy;
  if (auto unfinished = store_.tasks().unfinished()) {
    for (const auto& t : *unfinished) busy.emplace(t.tenant, t.target);
  }
  std::set<std::string> domain_names;
  for (const auto& d : *domains) {
    domain_names.insert(d.name);
    if (!d.metadata) continue;
    const auto& md = *d.metadata;
    if (md.cluster != options_.cluster) {
      ++report.foreign;
      kLog.debug("domain belongs to another cluster; left alone",
                 {{"domain", d.name}, {"cluster", md.cluster}});
      continue;
    }
    ++report.seen;
    auto vm = store_.vms().get(md.tenant, md.name);
    if (!vm) {
      if (vm.error().code != ErrorCode::kNotFound) continue;
      VmRecord adopted;
      adopted.tenant = md.tenant;
      adopted.name = md.name;
      adopted.uuid = d.uuid;
      adopted.spec_json = md.spec_json;
      adopted.state = vmStateOf(d.state);
      adopted.host = options_.host;
      if (auto up = store_.vms().upsert(adopted); !up) {
        report.notes.push_back("cannot adopt " + d.name + ": " + up.error().describe());
        continue;
      }
      ++report.adopted;
      report.notes.push_back("adopted " + d.name);
      kLog.warn("adopted a domain of this cluster that the store did not know",
                {{"vm", vmId(md.tenant, md.name)}, {"uuid", d.uuid}});
      publishVm(md.tenant, md.name, adopted.state, "adopted");
      continue;
    }
    if (!onThisHost(*vm)) {
      report.notes.push_back("domain " + d.name + " is, for the cluster, on host " + vm->host +
                             "; left alone");
      continue;
    }
    if (vm->uuid != d.uuid) {
      report.notes.push_back("domain " + d.name + " has uuid " + d.uuid + " but the store has " +
                             vm->uuid + "; left alone");
      continue;
    }
    if (busy.contains({vm->tenant, vm->name})) continue;
    const VmState state = vmStateOf(d.state);
    if (state != vm->state) {
      setState(*vm, state, "reconciled");
      ++report.updated;
    }
  }
  auto vms = store_.vms().all();
  if (!vms) return report;
  for (const auto& vm : *vms) {
    if (!onThisHost(vm) || busy.contains({vm.tenant, vm.name})) continue;
    const std::string domain = domainNameOf(vm.tenant, vm.name);
    if (domain_names.contains(domain)) continue;
    if (vm.state == VmState::kDeleting) {
      // Its delete task finished the domain but not the row: finish the job.
      (void)store_.vms().remove(vm.tenant, vm.name);
      continue;
    }
    auto xml = renderXml(vm);
    Status defined = xml ? hypervisor_.define(*xml) : Status(std::unexpected(xml.error()));
    if (!defined) {
      report.notes.push_back("cannot redefine " + domain + ": " + defined.error().describe());
      setState(vm, VmState::kError, "redefine failed", defined.error().describe());
      continue;
    }
    ++report.redefined;
    report.notes.push_back("redefined " + domain);
    kLog.warn("vm was missing from libvirt; redefined from its spec",
              {{"vm", vmId(vm.tenant, vm.name)}});
    setState(vm, VmState::kShutoff, "redefined");
  }
  return report;
}

}  // namespace qiao
