#include "node/state/volume_repository.h"

#include <algorithm>

#include "node/state/database.h"
#include "node/state/mirror.h"
#include "node/state/queries.h"
#include "node/state/table.h"
#include "node/state/task_repository.h"

namespace qiao {
namespace {

// A limit of the volume's QoS, a column of its own.
Column<VolumeRecord> qos(std::string name, int64_t VolumeQos::*member) {
  return mapped<VolumeRecord, int64_t>(
      std::move(name), [member](const VolumeRecord& v) { return v.qos.*member; },
      [member](VolumeRecord& v, int64_t value) { v.qos.*member = value; });
}

const Table<VolumeRecord> kVolumes{
    "volumes",
    {
        field("tenant", &VolumeRecord::tenant),
        field("name", &VolumeRecord::name),
        field("uuid", &VolumeRecord::uuid),
        field("backend", &VolumeRecord::backend),
        field("object", &VolumeRecord::object),
        field("size_bytes", &VolumeRecord::size_bytes),
        field("state", &VolumeRecord::state),
        field("attached_vm", &VolumeRecord::attached_vm),
        field("image", &VolumeRecord::image),
        qos("qos_iops", &VolumeQos::iops),
        qos("qos_bytes_per_sec", &VolumeQos::bytes_per_sec),
        field("last_error", &VolumeRecord::last_error),
        createdAt(&VolumeRecord::created_at),
        updatedAt(&VolumeRecord::updated_at),
        qos("qos_read_iops", &VolumeQos::read_iops),
        qos("qos_write_iops", &VolumeQos::write_iops),
        qos("qos_read_bytes_per_sec", &VolumeQos::read_bytes_per_sec),
        qos("qos_write_bytes_per_sec", &VolumeQos::write_bytes_per_sec),
        field("pool", &VolumeRecord::pool),
    }};

VolumeRecord probe(const std::string& tenant, const std::string& name) {
  VolumeRecord volume;
  volume.tenant = tenant;
  volume.name = name;
  return volume;
}

}  // namespace

VolumeRepository::VolumeRepository(Database& db, TaskRepository& tasks)
    : db_(db),
      tasks_(tasks),
      mirror_(std::make_unique<Mirror<VolumeRecord>>(db, kVolumes, tenantNameKey<VolumeRecord>())) {
}

VolumeRepository::~VolumeRepository() = default;

void VolumeRepository::share(std::unique_ptr<RecordTable> table) {
  // A node that ran alone brings every volume it has (none names a host: a member's are RBD's).
  mirror_->share(std::move(table), [](const VolumeRecord&) { return true; });
}

Replicated& VolumeRepository::replica() { return *mirror_; }

Status VolumeRepository::create(const VolumeRecord& volume, const TaskRecord* task) {
  Mirror<VolumeRecord>::Local also;
  if (task != nullptr) also = [&] { return tasks_.insertLocked(*task); };
  auto made = mirror_->update(
      volume,
      [&](std::optional<VolumeRecord>& current) -> Status {
        if (current) {
          return makeError(ErrorCode::kConflict, "store",
                           "volume " + volume.tenant + "/" + volume.name + " already exists");
        }
        current = volume;
        return {};
      },
      also);
  if (!made) return std::unexpected(made.error());
  return {};
}

Result<VolumeRecord> VolumeRepository::get(const std::string& tenant, const std::string& name) {
  return theOne<VolumeRecord>("volume", tenant, name, [&] { return list({tenant}, name); });
}

Result<std::vector<VolumeRecord>> VolumeRepository::list(const std::vector<std::string>& tenants,
                                                         const std::string& name) {
  return selectByTenant(db_, kVolumes, tenants, name);
}

Status VolumeRepository::update(const VolumeRecord& volume) {
  auto updated = modify(volume.tenant, volume.name, [&](VolumeRecord& v) {
    v.size_bytes = volume.size_bytes;
    v.state = volume.state;
    v.attached_vm = volume.attached_vm;
    v.qos = volume.qos;
    v.last_error = volume.last_error;
  });
  if (!updated) return std::unexpected(updated.error());
  return {};
}

Result<VolumeRecord> VolumeRepository::modify(const std::string& tenant, const std::string& name,
                                              const std::function<void(VolumeRecord&)>& edit) {
  auto made = mirror_->update(probe(tenant, name), [&](std::optional<VolumeRecord>& v) -> Status {
    if (!v) return makeError(ErrorCode::kNotFound, "store", "no volume " + tenant + "/" + name);
    edit(*v);
    return {};
  });
  if (!made) return std::unexpected(made.error());
  return **made;
}

Status VolumeRepository::transition(const std::string& tenant, const std::string& name,
                                    const std::vector<VolumeState>& from_states,
                                    const std::string& from_vm, VolumeState to_state,
                                    const std::string& to_vm) {
  auto moved = mirror_->update(probe(tenant, name), [&](std::optional<VolumeRecord>& v) -> Status {
    if (!v || v->attached_vm != from_vm ||
        std::find(from_states.begin(), from_states.end(), v->state) == from_states.end()) {
      return makeError(ErrorCode::kConflict, "store",
                       "volume " + tenant + "/" + name + " changed meanwhile");
    }
    v->state = to_state;
    v->attached_vm = to_vm;
    v->last_error.clear();
    return {};
  });
  if (!moved) return std::unexpected(moved.error());
  return {};
}

Status VolumeRepository::remove(const std::string& tenant, const std::string& name) {
  auto gone = mirror_->update(probe(tenant, name), [](std::optional<VolumeRecord>& v) -> Status {
    v.reset();
    return {};
  });
  if (!gone) return std::unexpected(gone.error());
  return {};
}

}  // namespace qiao
