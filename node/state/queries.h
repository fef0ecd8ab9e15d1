// Queries that several repositories share: the records of some tenants by name, the one
// record of (tenant, name), and the tenant and state scope of the list filters.
#pragma once

#include <string>
#include <vector>

#include "node/state/database.h"
#include "node/state/table.h"

namespace qiao {

// The records of `table` of some tenants (all when empty) and one name (any when ""), ordered
// by tenant and name.
template <typename Record>
Result<std::vector<Record>> selectByTenant(Database& db, const Table<Record>& table,
                                           const std::vector<std::string>& tenants,
                                           const std::string& name) {
  std::lock_guard lock(db.mutex());
  std::string sql = table.select() + " WHERE 1";
  if (!tenants.empty()) sql += " AND tenant IN (" + placeholders(tenants.size()) + ")";
  if (!name.empty()) sql += " AND name = ?";
  sql += " ORDER BY tenant, name";
  Statement q(db, sql);
  q.bindAll(tenants);
  if (!name.empty()) q.bind(name);
  const std::string what = "list " + table.name();
  return readAll<Record>(
      db, q, [&](const Statement& row) { return table.read(row); }, what.c_str());
}

// The one record of (tenant, name) that `list` selects; kNotFound naming the `kind` when there
// is none. An empty name finds nothing (it would select every record of the tenant).
template <typename Record, typename List>
Result<Record> theOne(const char* kind, const std::string& tenant, const std::string& name,
                      List list) {
  Result<std::vector<Record>> found = std::vector<Record>{};
  if (!name.empty()) found = list();
  if (!found) return std::unexpected(found.error());
  if (found->empty()) {
    return makeError(ErrorCode::kNotFound, "store",
                     std::string("no ") + kind + " " + tenant + "/" + name);
  }
  return found->front();
}

// " AND tenant IN (...) AND state = ?" with the values to bind, for the list queries.
inline void appendScope(const std::vector<std::string>& tenants, const std::string& state,
                        std::string* sql, std::vector<std::string>* args) {
  if (!tenants.empty()) {
    *sql += " AND tenant IN (" + placeholders(tenants.size()) + ")";
    args->insert(args->end(), tenants.begin(), tenants.end());
  }
  if (!state.empty()) {
    *sql += " AND state = ?";
    args->push_back(state);
  }
}

}  // namespace qiao
