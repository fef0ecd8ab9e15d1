#include "node/state/volume_repository.h"

#include "node/state/database.h"
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

}  // namespace

Status VolumeRepository::create(const VolumeRecord& volume, const TaskRecord* task) {
  std::lock_guard lock(db_.mutex());
  Transaction tx(db_);
  if (!tx.status()) return tx.status();
  {
    Statement q(db_, kVolumes.insert());
    kVolumes.bindInsert(q, volume);
    if (q.step() != Statement::Step::kDone) {
      Error e = db_.error("insert volume");
      if (e.code == ErrorCode::kConflict) {
        e.message = "volume " + volume.tenant + "/" + volume.name + " already exists";
      }
      return std::unexpected(e);
    }
  }
  if (task != nullptr) {
    if (auto inserted = tasks_.insertLocked(*task); !inserted) return inserted;
  }
  return tx.commit();
}

Result<VolumeRecord> VolumeRepository::get(const std::string& tenant, const std::string& name) {
  return theOne<VolumeRecord>("volume", tenant, name, [&] { return list({tenant}, name); });
}

Result<std::vector<VolumeRecord>> VolumeRepository::list(const std::vector<std::string>& tenants,
                                                         const std::string& name) {
  return selectByTenant(db_, kVolumes, tenants, name);
}

Status VolumeRepository::update(const VolumeRecord& volume) {
  static const auto kSet = kVolumes.set(
      {"size_bytes", "state", "attached_vm", "qos_iops", "qos_bytes_per_sec", "qos_read_iops",
       "qos_write_iops", "qos_read_bytes_per_sec", "qos_write_bytes_per_sec", "last_error"});
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "UPDATE volumes SET " + kSet.sql() + " WHERE tenant = ? AND name = ?");
  kSet.bind(q, volume);
  q.bind(volume.tenant).bind(volume.name);
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("update volume"));
  if (db_.changes() == 0) {
    return makeError(ErrorCode::kNotFound, "store",
                     "no volume " + volume.tenant + "/" + volume.name);
  }
  return {};
}

Status VolumeRepository::transition(const std::string& tenant, const std::string& name,
                                    const std::vector<VolumeState>& from_states,
                                    const std::string& from_vm, VolumeState to_state,
                                    const std::string& to_vm) {
  static const auto kSet = kVolumes.set({"state", "attached_vm", "last_error"});
  VolumeRecord values;
  values.state = to_state;
  values.attached_vm = to_vm;
  std::vector<std::string> from;
  for (VolumeState s : from_states) from.push_back(toString(s));
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "UPDATE volumes SET " + kSet.sql() +
                       " WHERE tenant = ? AND name = ? AND attached_vm = ? AND state IN (" +
                       placeholders(from.size()) + ")");
  kSet.bind(q, values);
  q.bind(tenant).bind(name).bind(from_vm).bindAll(from);
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("transition volume"));
  if (db_.changes() == 0) {
    return makeError(ErrorCode::kConflict, "store",
                     "volume " + tenant + "/" + name + " changed meanwhile");
  }
  return {};
}

Status VolumeRepository::remove(const std::string& tenant, const std::string& name) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "DELETE FROM volumes WHERE tenant = ? AND name = ?");
  q.bind(tenant).bind(name);
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("delete volume"));
  return {};
}

}  // namespace qiao
