// The tenants' security groups in the store.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "node/state/records.h"

namespace qiao {

class Database;

class SecurityGroupRepository {
 public:
  explicit SecurityGroupRepository(Database& db) : db_(db) {}

  // kConflict when it exists.
  Status create(const SecurityGroupRecord& group);
  Result<SecurityGroupRecord> get(const std::string& tenant, const std::string& name);
  Result<std::vector<SecurityGroupRecord>> list(const std::vector<std::string>& tenants,
                                                const std::string& name = {});
  Status setRules(const std::string& tenant, const std::string& name,
                  const std::string& rules_json);
  // kConflict when a port of the tenant names it, or it is gone.
  Status remove(const std::string& tenant, const std::string& name);

 private:
  Database& db_;
};

}  // namespace qiao
