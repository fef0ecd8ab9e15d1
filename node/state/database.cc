#include "node/state/database.h"

#include <sqlite3.h>

namespace qiao {

Database::~Database() { sqlite3_close_v2(db_); }

Error Database::error(const std::string& what) const {
  int code = sqlite3_extended_errcode(db_);
  ErrorCode mapped = ErrorCode::kInternal;
  if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED) {
    mapped = ErrorCode::kUnavailable;
  } else if (code == SQLITE_CONSTRAINT_PRIMARYKEY || code == SQLITE_CONSTRAINT_UNIQUE) {
    mapped = ErrorCode::kConflict;
  }
  return Error{mapped, "store", what + ": " + sqlite3_errmsg(db_), ""};
}

std::string Database::errorMessage() const { return sqlite3_errmsg(db_); }

int Database::changes() const { return sqlite3_changes(db_); }

Status Database::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err ? err : "unknown error";
    sqlite3_free(err);
    Error e = error(sql);
    e.message = std::string(sql).substr(0, 40) + ": " + message;
    return std::unexpected(e);
  }
  return {};
}

Statement::Statement(Database& db, const std::string& sql) {
  sqlite3_prepare_v2(db.handle(), sql.c_str(), static_cast<int>(sql.size()), &stmt_, nullptr);
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind(const std::string& v) {
  sqlite3_bind_text(stmt_, ++index_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::bind(int64_t v) {
  sqlite3_bind_int64(stmt_, ++index_, v);
  return *this;
}

Statement& Statement::bindAll(const std::vector<std::string>& values) {
  for (const auto& v : values) bind(v);
  return *this;
}

Statement::Step Statement::step() {
  // A statement that did not prepare steps to an error (sqlite3_step(nullptr) is SQLITE_MISUSE)
  // and the connection's error says why.
  switch (sqlite3_step(stmt_)) {
    case SQLITE_ROW: return Step::kRow;
    case SQLITE_DONE: return Step::kDone;
    default: return Step::kError;
  }
}

std::string Statement::text(int col) const {
  const auto* p = sqlite3_column_text(stmt_, col);
  return p ? std::string(reinterpret_cast<const char*>(p),
                         static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
           : std::string();
}

int64_t Statement::integer(int col) const { return sqlite3_column_int64(stmt_, col); }

std::string placeholders(size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += i ? ",?" : "?";
  return out;
}

}  // namespace qiao
