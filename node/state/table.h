// Table: the one description of a table's columns, and of how each field of its record binds
// and reads, from which the repositories generate their SELECT, INSERT and UPDATE column lists
// and bind their values. A column is named once; its place in a statement follows from the
// description, never from a hand-kept string beside the binds.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/error.h"
#include "node/state/database.h"
#include "node/state/states.h"

namespace qiao {

// How a value of a field type goes into SQL and comes back: text, integers, booleans (0/1)
// and the named enums (their one name).
template <typename T>
struct SqlValue;

template <>
struct SqlValue<std::string> {
  static void bind(Statement& q, const std::string& v) { q.bind(v); }
  static std::string read(const Statement& q, int c) { return q.text(c); }
};

template <>
struct SqlValue<int64_t> {
  static void bind(Statement& q, int64_t v) { q.bind(v); }
  static int64_t read(const Statement& q, int c) { return q.integer(c); }
};

template <>
struct SqlValue<int> {
  static void bind(Statement& q, int v) { q.bind(int64_t{v}); }
  static int read(const Statement& q, int c) { return static_cast<int>(q.integer(c)); }
};

template <>
struct SqlValue<bool> {
  static void bind(Statement& q, bool v) { q.bind(int64_t{v ? 1 : 0}); }
  static bool read(const Statement& q, int c) { return q.integer(c) != 0; }
};

template <NamedEnum E>
struct SqlValue<E> {
  static void bind(Statement& q, E v) { q.bind(toString(v)); }
  // Only qiaod writes these columns, with the names above; a row with another name (a broken
  // database, or a newer qiaod's) is read as unreadableValue<E>() rather than stopping every
  // list.
  static E read(const Statement& q, int c) {
    return parseEnum<E>(q.text(c)).value_or(unreadableValue<E>());
  }
};

// How a value of a field type goes into the JSON of a cluster record (node/state/mirror.h) and
// comes back: the JSON type of the value, the enums by their one name. A value of the wrong
// type throws nlohmann::json's type_error, which Table::fromJson turns into an error.
template <typename T>
struct JsonValue {
  static nlohmann::json write(const T& v) { return v; }
  static T read(const nlohmann::json& j) { return j.get<T>(); }
};

template <NamedEnum E>
struct JsonValue<E> {
  static nlohmann::json write(E v) { return std::string(toString(v)); }
  static E read(const nlohmann::json& j) {
    return parseEnum<E>(j.get<std::string>()).value_or(unreadableValue<E>());
  }
};

template <typename R>
struct Column {
  // Who gives the value: the record (bound), or SQLite (the time of the insert; the time of the
  // insert and of every update; a number it generates, such as an AUTOINCREMENT key).
  enum class Fill { kBound, kCreatedAt, kUpdatedAt, kGenerated };

  std::string name;
  Fill fill = Fill::kBound;
  std::function<void(Statement&, const R&)> bind;
  std::function<void(const Statement&, int, R&)> read;
  std::function<void(nlohmann::json&, const R&)> to_json;
  std::function<void(const nlohmann::json&, R&)> from_json;
};

// A field of the record stored as it is.
template <typename R, typename T>
Column<R> field(std::string name, T R::*member,
                typename Column<R>::Fill fill = Column<R>::Fill::kBound) {
  const std::string key = name;
  return {
      std::move(name),
      fill,
      [member](Statement& q, const R& r) { SqlValue<T>::bind(q, r.*member); },
      [member](const Statement& q, int c, R& r) { r.*member = SqlValue<T>::read(q, c); },
      [member, key](nlohmann::json& j, const R& r) { j[key] = JsonValue<T>::write(r.*member); },
      [member, key](const nlohmann::json& j, R& r) { r.*member = JsonValue<T>::read(j.at(key)); }};
}

// A value of the record that is not one plain field (a nested field, a list kept as JSON):
// `get` gives it for SQL, `set` puts it back.
template <typename R, typename T>
Column<R> mapped(std::string name, std::function<T(const R&)> get, std::function<void(R&, T)> set) {
  const std::string key = name;
  return {std::move(name),
          Column<R>::Fill::kBound,
          [get](Statement& q, const R& r) { SqlValue<T>::bind(q, get(r)); },
          [set](const Statement& q, int c, R& r) { set(r, SqlValue<T>::read(q, c)); },
          [get, key](nlohmann::json& j, const R& r) { j[key] = JsonValue<T>::write(get(r)); },
          [set, key](const nlohmann::json& j, R& r) { set(r, JsonValue<T>::read(j.at(key))); }};
}

template <typename R>
Column<R> createdAt(std::string R::*member) {
  return field(std::string("created_at"), member, Column<R>::Fill::kCreatedAt);
}

template <typename R>
Column<R> updatedAt(std::string R::*member) {
  return field(std::string("updated_at"), member, Column<R>::Fill::kUpdatedAt);
}

template <typename R>
class Table {
 public:
  using Fill = typename Column<R>::Fill;

  // Some columns of the table, assigned from a record in an UPDATE (with updated_at stamped
  // when the table has it).
  class Assignment {
   public:
    // "a = ?, b = ?, updated_at = <now>"
    const std::string& sql() const { return sql_; }
    void bind(Statement& q, const R& r) const {
      for (const Column<R>* c : columns_) c->bind(q, r);
    }

   private:
    friend class Table;
    std::string sql_;
    std::vector<const Column<R>*> columns_;
  };

  Table(std::string name, std::vector<Column<R>> columns)
      : name_(std::move(name)), columns_(std::move(columns)) {}

  const std::string& name() const { return name_; }

  // "SELECT <every column> FROM <table>"
  size_t size() const { return columns_.size(); }  // the columns select() reads
  std::string select() const {
    std::string out = "SELECT ";
    for (size_t i = 0; i < columns_.size(); ++i) out += (i ? ", " : "") + columns_[i].name;
    return out + " FROM " + name_;
  }

  // "<verb> INTO <table>(<columns>) VALUES (?, ..., <now>)": every column but the generated
  // ones; `verb` is INSERT or INSERT OR REPLACE.
  std::string insert(std::string_view verb = "INSERT") const {
    std::string names, values;
    for (const auto& c : columns_) {
      if (c.fill == Fill::kGenerated) continue;
      names += (names.empty() ? "" : ", ") + c.name;
      values += values.empty() ? "" : ", ";
      values += c.fill == Fill::kBound ? "?" : kSqlNow;
    }
    return std::string(verb) + " INTO " + name_ + "(" + names + ") VALUES (" + values + ")";
  }

  // insert() that, when a row with the same `keys` exists, takes over every other column of
  // the new row but its creation time.
  std::string upsert(std::initializer_list<std::string_view> keys) const {
    std::string conflict, set;
    for (std::string_view k : keys) conflict += (conflict.empty() ? "" : ", ") + std::string(k);
    for (const auto& c : columns_) {
      if (c.fill == Fill::kGenerated || c.fill == Fill::kCreatedAt || isOneOf(c.name, keys)) {
        continue;
      }
      set += (set.empty() ? "" : ", ") + c.name + " = excluded." + c.name;
    }
    return insert() + " ON CONFLICT(" + conflict + ") DO UPDATE SET " + set;
  }

  // Binds the values insert() and upsert() leave to the record.
  void bindInsert(Statement& q, const R& r) const {
    for (const auto& c : columns_) {
      if (c.fill == Fill::kBound) c.bind(q, r);
    }
  }

  // The columns `names` (each a bound column of this table: a programming error otherwise).
  Assignment set(std::initializer_list<std::string_view> names) const {
    Assignment a;
    for (std::string_view n : names) {
      const Column<R>* c = find(n);
      if (c == nullptr || c->fill != Fill::kBound) {
        std::fprintf(stderr, "table %s has no column %.*s to set\n", name_.c_str(),
                     static_cast<int>(n.size()), n.data());
        std::abort();
      }
      a.sql_ += (a.sql_.empty() ? "" : ", ") + c->name + " = ?";
      a.columns_.push_back(c);
    }
    for (const auto& c : columns_) {
      if (c.fill == Fill::kUpdatedAt) a.sql_ += ", " + c.name + " = " + kSqlNow;
    }
    return a;
  }

  // "INSERT OR REPLACE INTO <table>(<columns>) VALUES (?, ...)" with every column but the
  // generated ones bound from the record, its times included (a record from the cluster keeps
  // the times it was given there).
  std::string replace() const { return bound("INSERT OR REPLACE"); }
  // The same with another verb: "INSERT" refuses a row whose unique columns another has.
  std::string bound(std::string_view verb) const {
    std::string names, values;
    for (const auto& c : columns_) {
      if (c.fill == Fill::kGenerated) continue;
      names += (names.empty() ? "" : ", ") + c.name;
      values += values.empty() ? "?" : ", ?";
    }
    return std::string(verb) + " INTO " + name_ + "(" + names + ") VALUES (" + values + ")";
  }
  void bindReplace(Statement& q, const R& r) const {
    for (const auto& c : columns_) {
      if (c.fill != Fill::kGenerated) c.bind(q, r);
    }
  }

  // " WHERE a = ? AND b = ?" over the columns `keys`, bound from a record by bindWhere.
  std::string where(const std::vector<std::string>& keys) const {
    std::string sql;
    for (const auto& k : keys) sql += (sql.empty() ? " WHERE " : " AND ") + column(k).name + " = ?";
    return sql;
  }
  void bindWhere(Statement& q, const std::vector<std::string>& keys, const R& r) const {
    for (const auto& k : keys) column(k).bind(q, r);
  }

  // The record as the JSON object of its columns (the generated ones left out: they are the
  // local database's).
  std::string toJson(const R& r) const {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& c : columns_) {
      if (c.fill != Fill::kGenerated) c.to_json(j, r);
    }
    return j.dump();
  }
  // The record of toJson's text. A column the text lacks keeps its default (a record written
  // by an older qiaod); kInternal naming the column when a value has the wrong type.
  Result<R> fromJson(const std::string& text) const {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) {
      return makeError(ErrorCode::kInternal, "store",
                       "a " + name_ + " record is not a JSON object");
    }
    R r;
    for (const auto& c : columns_) {
      if (c.fill == Fill::kGenerated || !j.contains(c.name)) continue;
      try {
        c.from_json(j, r);
      } catch (const nlohmann::json::exception&) {
        return makeError(ErrorCode::kInternal, "store",
                         "a " + name_ + " record has a " + c.name + " of the wrong type");
      }
    }
    return r;
  }

  // When the record was made: its created_at column ("" when the table has none).
  std::string createdAt(const R& r) const {
    for (const auto& c : columns_) {
      if (c.fill != Fill::kCreatedAt) continue;
      nlohmann::json j = nlohmann::json::object();
      c.to_json(j, r);
      return j[c.name].template get<std::string>();
    }
    return "";
  }
  // Sets the record's created_at and updated_at columns (those it has).
  void stampTimes(R& r, const std::string& created, const std::string& updated) const {
    for (const auto& c : columns_) {
      if (c.fill == Fill::kCreatedAt) c.from_json(nlohmann::json{{c.name, created}}, r);
      if (c.fill == Fill::kUpdatedAt) c.from_json(nlohmann::json{{c.name, updated}}, r);
    }
  }

  // The record of the current row of a statement made from select().
  R read(const Statement& q) const {
    R r;
    for (size_t i = 0; i < columns_.size(); ++i) columns_[i].read(q, static_cast<int>(i), r);
    return r;
  }

 private:
  static bool isOneOf(const std::string& name, std::initializer_list<std::string_view> names) {
    for (std::string_view n : names) {
      if (n == name) return true;
    }
    return false;
  }
  const Column<R>& column(std::string_view name) const {
    const Column<R>* c = find(name);
    if (c == nullptr) {
      std::fprintf(stderr, "table %s has no column %.*s\n", name_.c_str(),
                   static_cast<int>(name.size()), name.data());
      std::abort();
    }
    return *c;
  }
  const Column<R>* find(std::string_view name) const {
    for (const auto& c : columns_) {
      if (c.name == name) return &c;
    }
    return nullptr;
  }

  std::string name_;
  std::vector<Column<R>> columns_;
};

}  // namespace qiao
