// The tenants' security groups in the store.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "node/state/records.h"

namespace qiao {

class Database;
class RecordTable;
class Replicated;
template <typename R>
class Mirror;

// On a cluster member the groups are the cluster's (the RADOS table "groups", key
// TENANT/NAME; node/state/mirror.h).
class SecurityGroupRepository {
 public:
  explicit SecurityGroupRepository(Database& db);
  ~SecurityGroupRepository();

  void share(std::unique_ptr<RecordTable> table);
  Replicated& replica();

  // kConflict when it exists.
  Status create(const SecurityGroupRecord& group);
  Result<SecurityGroupRecord> get(const std::string& tenant, const std::string& name);
  Result<std::vector<SecurityGroupRecord>> list(const std::vector<std::string>& tenants,
                                                const std::string& name = {});
  Status setRules(const std::string& tenant, const std::string& name,
                  const std::string& rules_json);
  // kConflict when a port of the tenant names it (as this store knows the ports), or it is gone.
  Status remove(const std::string& tenant, const std::string& name);

 private:
  Database& db_;
  std::unique_ptr<Mirror<SecurityGroupRecord>> mirror_;
};

}  // namespace qiao
