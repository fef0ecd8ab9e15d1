#include "node/state/security_group_repository.h"

#include "node/state/database.h"
#include "node/state/queries.h"
#include "node/state/table.h"

namespace qiao {
namespace {

const Table<SecurityGroupRecord> kGroups{"security_groups",
                                         {
                                             field("tenant", &SecurityGroupRecord::tenant),
                                             field("name", &SecurityGroupRecord::name),
                                             field("uuid", &SecurityGroupRecord::uuid),
                                             field("rules_json", &SecurityGroupRecord::rules_json),
                                             createdAt(&SecurityGroupRecord::created_at),
                                             updatedAt(&SecurityGroupRecord::updated_at),
                                         }};

}  // namespace

Status SecurityGroupRepository::create(const SecurityGroupRecord& group) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, kGroups.insert());
  kGroups.bindInsert(q, group);
  if (q.step() != Statement::Step::kDone) {
    Error e = db_.error("insert security group");
    if (e.code == ErrorCode::kConflict) {
      e.message = "security group " + group.tenant + "/" + group.name + " already exists";
    }
    return std::unexpected(e);
  }
  return {};
}

Result<std::vector<SecurityGroupRecord>> SecurityGroupRepository::list(
    const std::vector<std::string>& tenants, const std::string& name) {
  return selectByTenant(db_, kGroups, tenants, name);
}

Result<SecurityGroupRecord> SecurityGroupRepository::get(const std::string& tenant,
                                                         const std::string& name) {
  return theOne<SecurityGroupRecord>("security group", tenant, name,
                                     [&] { return list({tenant}, name); });
}

Status SecurityGroupRepository::setRules(const std::string& tenant, const std::string& name,
                                         const std::string& rules_json) {
  static const auto kSet = kGroups.set({"rules_json"});
  SecurityGroupRecord values;
  values.rules_json = rules_json;
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "UPDATE security_groups SET " + kSet.sql() + " WHERE tenant = ? AND name = ?");
  kSet.bind(q, values);
  q.bind(tenant).bind(name);
  if (q.step() != Statement::Step::kDone) {
    return std::unexpected(db_.error("update security group"));
  }
  if (db_.changes() == 0) {
    return makeError(ErrorCode::kNotFound, "store", "no security group " + tenant + "/" + name);
  }
  return {};
}

Status SecurityGroupRepository::remove(const std::string& tenant, const std::string& name) {
  std::lock_guard lock(db_.mutex());
  // Not while a port of the tenant names it (names are DNS labels: "\"name\"" is exact).
  Statement q(db_,
              "DELETE FROM security_groups WHERE tenant = ? AND name = ? AND NOT EXISTS "
              "(SELECT 1 FROM ports WHERE tenant = ? AND instr(security_groups, ?) > 0)");
  q.bind(tenant).bind(name).bind(tenant).bind("\"" + name + "\"");
  if (q.step() != Statement::Step::kDone) {
    return std::unexpected(db_.error("delete security group"));
  }
  if (db_.changes() == 0) {
    return makeError(ErrorCode::kConflict, "store",
                     "security group " + tenant + "/" + name + " is gone or in use");
  }
  return {};
}

}  // namespace qiao
