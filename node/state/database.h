// Database: the one SQLite connection of a Store, its mutex, and the small tools every
// repository uses over it (prepared statements, transactions, errors mapped once). Internal to
// node/state: nothing outside the repositories speaks SQL.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "base/error.h"

struct sqlite3;
struct sqlite3_stmt;

namespace qiao {

// The time SQLite stamps rows with: ISO 8601 in UTC, with milliseconds.
inline constexpr const char* kSqlNow = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

class Database {
 public:
  // Takes ownership of an open connection.
  explicit Database(sqlite3* db) : db_(db) {}
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Held by every repository call: one connection, every call short.
  std::mutex& mutex() { return mutex_; }
  sqlite3* handle() { return db_; }
  Status exec(const char* sql);
  // The last error of the connection, mapped once: busy or locked is kUnavailable, a primary
  // key or unique constraint kConflict, anything else kInternal.
  Error error(const std::string& what) const;
  // SQLite's own words for the last error (which constraint failed).
  std::string errorMessage() const;
  // Rows the last INSERT, UPDATE or DELETE changed.
  int changes() const;

 private:
  std::mutex mutex_;
  sqlite3* db_;
};

// A prepared statement with positional binding; finalized on destruction.
class Statement {
 public:
  enum class Step { kRow, kDone, kError };

  Statement(Database& db, const std::string& sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(const std::string& value);
  Statement& bind(int64_t value);
  Statement& bindAll(const std::vector<std::string>& values);
  Step step();
  std::string text(int column) const;
  int64_t integer(int column) const;

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int index_ = 0;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back unless committed. The caller holds the mutex.
class Transaction {
 public:
  explicit Transaction(Database& db) : db_(db), status_(db.exec("BEGIN IMMEDIATE")) {}
  ~Transaction() {
    if (status_ && !committed_) (void)db_.exec("ROLLBACK");
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  const Status& status() const { return status_; }
  Status commit() {
    auto s = db_.exec("COMMIT");
    committed_ = s.has_value();
    return s;
  }

 private:
  Database& db_;
  Status status_;
  bool committed_ = false;
};

// "?,?,?" for an IN list of n values.
std::string placeholders(size_t n);

// Every row of `q`, each made a record by `read`; kInternal-or-worse naming `what` when the
// query fails.
template <typename Record, typename Read>
Result<std::vector<Record>> readAll(Database& db, Statement& q, Read read, const char* what) {
  std::vector<Record> out;
  Statement::Step step;
  while ((step = q.step()) == Statement::Step::kRow) out.push_back(read(q));
  if (step != Statement::Step::kDone) return std::unexpected(db.error(what));
  return out;
}

}  // namespace qiao
