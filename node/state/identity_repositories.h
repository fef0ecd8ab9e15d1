// Who may call the API, in the store: the bindings of client identities to roles and tenants,
// the certificates the CA issued (and revoked), and the tenants' quotas.
#pragma once

#include <functional>
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

// A cluster member's bindings are the cluster's (the RADOS table "bindings", key the identity;
// node/state/mirror.h): a role granted on one member holds on every member.
class BindingRepository {
 public:
  explicit BindingRepository(Database& db);
  ~BindingRepository();

  // Makes the bindings those of the cluster's table; a store shared for the first time puts its
  // own in it (node/state/mirror.h).
  void share(std::unique_ptr<RecordTable> table);
  Replicated& replica();

  // Creates or replaces the identity's binding.
  Status put(const Binding& binding);
  Result<Binding> get(const std::string& identity);
  Result<std::vector<Binding>> list();
  // kNotFound when the identity has none.
  Status remove(const std::string& identity);

 private:
  Database& db_;
  std::unique_ptr<Mirror<Binding>> mirror_;
};

// Certificates: recorded at issue, revoked by serial or by identity (every one it has).
class CertificateRepository {
 public:
  explicit CertificateRepository(Database& db) : db_(db) {}

  // Records a fresh certificate (issued now, not revoked).
  Status record(const CertificateRecord& cert);
  Result<std::vector<CertificateRecord>> list();
  // How many it revoked now.
  Result<int> revoke(const std::string& serial, const std::string& identity,
                     const std::string& reason);

 private:
  Database& db_;
};

// A tenant's quotas as an admin set them: a JSON object. A cluster member's are the cluster's
// (the RADOS table "quotas", key the tenant; node/state/mirror.h): a limit set through one
// member holds on every member.
class QuotaRepository {
 public:
  explicit QuotaRepository(Database& db);
  ~QuotaRepository();

  // Makes the quotas those of the cluster's table; a store shared for the first time puts its
  // own in it (node/state/mirror.h).
  void share(std::unique_ptr<RecordTable> table);
  Replicated& replica();

  // kNotFound when none was set.
  Result<std::string> get(const std::string& tenant);
  Status put(const std::string& tenant, const std::string& limits_json);
  // Sets the tenant's quotas to what `change` makes of those set now ("" when none): on a
  // member, of the cluster's record, so that two admins changing different limits at once keep
  // both. `change` may run more than once and only looks at its argument.
  Status update(const std::string& tenant,
                const std::function<std::string(const std::string&)>& change);
  Result<std::vector<std::string>> tenants();

 private:
  Database& db_;
  std::unique_ptr<Mirror<QuotaRecord>> mirror_;
};

}  // namespace qiao
