// QuotaService: what a tenant may have (VMs, vCPUs, memory, volume GiB, images, networks,
// uploads at once), as an admin set it or else the node's defaults, and what it has, counted
// from the store. The API checks a change against it before recording anything, holding
// guard() across the check and the record so that two creates cannot both take the last of
// a quota. -1 means no limit.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "base/error.h"
#include "node/quotas/quota_spec.h"
#include "node/state/store.h"

namespace qiao {

// One figure per kQuotaKeys entry (absent: 0 in a delta or a usage, the default in limits).
using QuotaFigures = std::map<std::string, int64_t>;

class QuotaService {
 public:
  QuotaService(Store& store, QuotaFigures defaults);

  // The tenant's limits: what an admin set, else the defaults.
  Result<QuotaFigures> limits(const std::string& tenant);
  // What the tenant has: its VMs (vCPUs and memory at the maximums they may grow to), the
  // GiB of its volumes (image disks included), its own images and networks. Uploads in
  // progress are the API's to count (`uploads` is 0 here).
  Result<QuotaFigures> usage(const std::string& tenant);
  // Sets the given limits (parseQuotaChanges: a number, -1 for none, nullopt for the default
  // again); others stay. kInvalidArgument, as checkQuotaChanges, names an unknown quota or a
  // bad value.
  Status set(const std::string& tenant, const QuotaChanges& changes);
  // kConflict, naming the quota and the figures, when `delta` on top of the tenant's usage
  // passes one of its limits.
  Status check(const std::string& tenant, const QuotaFigures& delta);
  // The tenants an admin set quotas for.
  Result<std::vector<std::string>> tenantsWithQuotas() { return store_.quotas().tenants(); }

  std::unique_lock<std::mutex> guard() { return std::unique_lock(mu_); }

 private:
  Store& store_;
  QuotaFigures defaults_;
  std::mutex mu_;
};

// GiB, rounded up.
int64_t gibOf(int64_t bytes);

}  // namespace qiao
