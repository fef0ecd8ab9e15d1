#include "node/state/security_group_repository.h"

#include "node/state/database.h"
#include "node/state/mirror.h"
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

SecurityGroupRecord probe(const std::string& tenant, const std::string& name) {
  SecurityGroupRecord g;
  g.tenant = tenant;
  g.name = name;
  return g;
}

}  // namespace

SecurityGroupRepository::SecurityGroupRepository(Database& db)
    : db_(db),
      mirror_(std::make_unique<Mirror<SecurityGroupRecord>>(
          db, kGroups, tenantNameKey<SecurityGroupRecord>())) {}

SecurityGroupRepository::~SecurityGroupRepository() = default;

void SecurityGroupRepository::share(std::unique_ptr<RecordTable> table) {
  mirror_->share(std::move(table), [](const SecurityGroupRecord&) { return true; });
}

Replicated& SecurityGroupRepository::replica() { return *mirror_; }

Status SecurityGroupRepository::create(const SecurityGroupRecord& group) {
  auto made = mirror_->update(group, [&](std::optional<SecurityGroupRecord>& current) -> Status {
    if (current) {
      return makeError(ErrorCode::kConflict, "store",
                       "security group " + group.tenant + "/" + group.name + " already exists");
    }
    current = group;
    return {};
  });
  if (!made) return std::unexpected(made.error());
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
  auto set =
      mirror_->update(probe(tenant, name), [&](std::optional<SecurityGroupRecord>& g) -> Status {
        if (!g) {
          return makeError(ErrorCode::kNotFound, "store",
                           "no security group " + tenant + "/" + name);
        }
        g->rules_json = rules_json;
        return {};
      });
  if (!set) return std::unexpected(set.error());
  return {};
}

Status SecurityGroupRepository::remove(const std::string& tenant, const std::string& name) {
  bool was = false;
  auto gone = mirror_->update(
      probe(tenant, name),
      [&](std::optional<SecurityGroupRecord>& g) -> Status {
        was = g.has_value();
        g.reset();
        return {};
      },
      [&]() -> Status {
        // Not while a port of the tenant names it (names are DNS labels: "\"name\"" is exact).
        Statement q(db_,
                    "SELECT 1 FROM ports WHERE tenant = ? AND instr(security_groups, ?) > 0 "
                    "LIMIT 1");
        q.bind(tenant).bind("\"" + name + "\"");
        auto step = q.step();
        if (step == Statement::Step::kDone && was) return {};
        if (step != Statement::Step::kDone && step != Statement::Step::kRow) {
          return std::unexpected(db_.error("find ports"));
        }
        return makeError(ErrorCode::kConflict, "store",
                         "security group " + tenant + "/" + name + " is gone or in use");
      });
  if (!gone) return std::unexpected(gone.error());
  return {};
}

}  // namespace qiao
