// Mirror: a kind of record that is the cluster's (VMs today; DESIGN.md "Cluster"), kept in the
// node's SQLite and, on a cluster member, in the cluster's table of that kind in RADOS
// (cluster/record_table.h). On a member RADOS is the truth and SQLite its cache: every change is
// first one guarded read-modify-write of the record in RADOS (two members never lose each
// other's update), then the same record written to SQLite; the Replicator
// (node/state/replicator.h) brings the changes of other members into SQLite. A standalone node
// makes the same change in one SQLite transaction. Either way a change is written once, as a
// function of the record as it is, so the repositories have one code path for both.
//
// Reads stay SQLite's (its indexes, filters and paging): on a member they see the cluster's
// records as of the last change announced or swept.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "cluster/record_table.h"
#include "node/state/database.h"
#include "node/state/table.h"

namespace qiao {

// What the Replicator keeps current: one mirrored kind.
class Replicated {
 public:
  virtual ~Replicated() = default;
  // The RADOS object of the cluster's table (what to watch).
  virtual const RadosObject& sharedObject() const = 0;
  // Makes SQLite's rows of this kind those of the cluster's table, all of them.
  virtual Status refresh() = 0;
  // The same for the one record `key` (what a notify names).
  virtual Status refreshKey(const std::string& key) = 0;
  // Called (on the Replicator's thread, no lock held) after a refresh changed the cache: what
  // this host derives from the records of other members (its flows) is brought in line.
  void onChange(std::function<void()> listener) { listener_ = std::move(listener); }

 protected:
  void changed() const {
    if (listener_) listener_();
  }

 private:
  std::function<void()> listener_;
};

template <typename R>
class Mirror final : public Replicated {
 public:
  // How a record is found: its key columns in SQLite, its key in the cluster's table, and a
  // record with the key columns set from such a key (nullopt: not a key of this kind).
  struct Key {
    std::vector<std::string> columns;
    std::function<std::string(const R&)> of;
    std::function<std::optional<R>(const std::string&)> probe;
  };
  // Given the record as it is (nullopt: absent), makes it what it becomes (nullopt: removed),
  // or fails to change nothing. It may run more than once (a guarded write that lost a race
  // is made again on what the other writer left), so it only looks at its argument.
  using Change = std::function<Status(std::optional<R>&)>;
  // More of the same change in the local database, run in its transaction with the database
  // locked (the task that a new VM is made by); its failure undoes the change.
  using Local = std::function<Status()>;

  Mirror(Database& db, const Table<R>& table, Key key, Clock& clock = systemClock())
      : db_(db), table_(table), key_(std::move(key)), clock_(clock) {}

  // Makes this a member's mirror of `shared` (before any change is made through it). The
  // first time this store is a member's (the table `published` has no row of this kind), the
  // local records `mine` selects (those of a node that kept them alone) are put into the
  // cluster's table, where it lacks them, before the first refresh, which would otherwise drop
  // them from the cache. Only that once: a later start must not put back a copy of a record
  // that the cluster removed meanwhile.
  void share(std::unique_ptr<RecordTable> shared, std::function<bool(const R&)> mine = {}) {
    shared_ = std::move(shared);
    unpublished_ = std::move(mine);
  }
  bool shared() const { return shared_ != nullptr; }
  const RadosObject& sharedObject() const override { return shared_->object(); }

  // Changes the record whose key columns `probe` has. Returns what it became.
  Result<std::optional<R>> update(const R& probe, const Change& change, const Local& also = {}) {
    if (!shared_) return updateLocal(probe, change, also);
    const std::string key = key_.of(probe);
    std::shared_lock share_lock(share_mutex_);
    std::lock_guard key_lock(keyMutex(key));
    std::optional<R> before;
    auto written = shared_->update(
        key, [&](const std::optional<std::string>& text) -> Result<std::optional<std::string>> {
          before.reset();
          if (text) {
            auto decoded = table_.fromJson(*text);
            if (!decoded) return std::unexpected(decoded.error());
            before = std::move(*decoded);
          }
          std::optional<R> next = before;
          if (auto changed = change(next); !changed) return std::unexpected(changed.error());
          if (!next) return std::optional<std::string>{};
          stamp(*next, before);
          return table_.toJson(*next);
        });
    if (!written) return std::unexpected(written.error());
    std::optional<R> next;
    if (*written) {
      auto decoded = table_.fromJson(**written);
      if (!decoded) return std::unexpected(decoded.error());
      next = std::move(*decoded);
    }
    std::lock_guard lock(db_.mutex());
    Transaction tx(db_);
    Status local = tx.status();
    if (local) local = applyLocked(probe, next, !before);
    if (local && also) local = also();
    if (local) local = tx.commit();
    if (!local) {
      // The cluster's record is what SQLite failed to follow: put back what it was (a refresh
      // would bring the cache in line, but the caller's change as a whole failed).
      (void)shared_->update(
          key, [&](const std::optional<std::string>&) -> Result<std::optional<std::string>> {
            if (!before) return std::optional<std::string>{};
            return table_.toJson(*before);
          });
      return std::unexpected(local.error());
    }
    return next;
  }

  // The cluster's record of the key `probe` has, read from RADOS (a member's mirror only).
  Result<std::optional<R>> sharedGet(const R& probe) {
    auto text = shared_->get(key_.of(probe));
    if (!text) return std::unexpected(text.error());
    if (!*text) return std::optional<R>{};
    auto decoded = table_.fromJson(**text);
    if (!decoded) return std::unexpected(decoded.error());
    return std::optional<R>(std::move(*decoded));
  }

  Status refresh() override {
    if (unpublished_) {
      if (auto published = publish(unpublished_); !published) return published;
      unpublished_ = nullptr;
    }
    std::unique_lock share_lock(share_mutex_);
    auto snapshot = shared_->readAll();
    if (!snapshot) return std::unexpected(snapshot.error());
    std::map<std::string, R> wanted;
    for (const auto& [key, text] : snapshot->entries) {
      auto record = table_.fromJson(text);
      if (!record || !key_.probe(key)) continue;  // not ours to read: left out of the cache
      wanted.emplace(key, std::move(*record));
    }
    bool any = false;
    {
      std::lock_guard lock(db_.mutex());
      Transaction tx(db_);
      if (!tx.status()) return tx.status();
      std::vector<R> rows;
      {
        Statement q(db_, table_.select());
        auto all = readAll<R>(
            db_, q, [&](const Statement& row) { return table_.read(row); }, "read mirrored");
        if (!all) return std::unexpected(all.error());
        rows = std::move(*all);
      }
      for (const R& row : rows) {
        auto it = wanted.find(key_.of(row));
        if (it == wanted.end()) {
          if (auto gone = applyLocked(row, std::nullopt); !gone) return gone;
          any = true;
        } else {
          if (table_.toJson(row) != table_.toJson(it->second)) {
            if (auto put = applyLocked(row, it->second); !put) return put;
            any = true;
          }
          wanted.erase(it);
        }
      }
      for (const auto& [key, record] : wanted) {
        if (auto put = applyLocked(record, record); !put) return put;
        any = true;
      }
      if (auto done = tx.commit(); !done) return done;
    }
    if (any) changed();
    return {};
  }

  Status refreshKey(const std::string& key) override {
    auto probe = key_.probe(key);
    if (!probe) return {};
    std::shared_lock share_lock(share_mutex_);
    std::lock_guard key_lock(keyMutex(key));
    auto read = sharedGet(*probe);
    if (!read) return std::unexpected(read.error());
    const std::optional<R>& record = *read;
    {
      std::lock_guard lock(db_.mutex());
      // A notify of this member's own change finds the cache as it is: nothing to follow.
      auto cached = cachedLocked(*probe);
      if (!cached) return std::unexpected(cached.error());
      if (cached->has_value() == record.has_value() &&
          (!*cached || table_.toJson(**cached) == table_.toJson(*record))) {
        return {};
      }
      if (auto put = applyLocked(*probe, record); !put) return put;
    }
    changed();
    return {};
  }

 private:
  // Puts the local records `mine` selects that the cluster's table lacks into it.
  Status publish(const std::function<bool(const R&)>& mine) {
    std::vector<R> rows;
    {
      std::lock_guard lock(db_.mutex());
      Statement once(db_, "SELECT 1 FROM published WHERE kind = ?");
      once.bind(table_.name());
      auto step = once.step();
      if (step == Statement::Step::kRow) return {};
      if (step != Statement::Step::kDone) return std::unexpected(db_.error("read published"));
      Statement q(db_, table_.select());
      auto all = readAll<R>(
          db_, q, [&](const Statement& row) { return table_.read(row); }, "read mirrored");
      if (!all) return std::unexpected(all.error());
      rows = std::move(*all);
    }
    std::unique_lock share_lock(share_mutex_);
    for (const R& row : rows) {
      if (!mine(row)) continue;
      auto put = shared_->update(
          key_.of(row),
          [&](const std::optional<std::string>& text) -> Result<std::optional<std::string>> {
            if (text) return text;
            return table_.toJson(row);
          });
      if (!put) return std::unexpected(put.error());
    }
    std::lock_guard lock(db_.mutex());
    Statement done(db_, "INSERT OR IGNORE INTO published(kind, at) VALUES (?, ?)");
    done.bind(table_.name()).bind(utcTextMillis(clock_.wallNow()));
    if (done.step() != Statement::Step::kDone) return std::unexpected(db_.error("note published"));
    return {};
  }

  Result<std::optional<R>> updateLocal(const R& probe, const Change& change, const Local& also) {
    std::lock_guard lock(db_.mutex());
    Transaction tx(db_);
    if (!tx.status()) return std::unexpected(tx.status().error());
    auto cached = cachedLocked(probe);
    if (!cached) return std::unexpected(cached.error());
    const std::optional<R> before = std::move(*cached);
    std::optional<R> next = before;
    if (auto changed = change(next); !changed) return std::unexpected(changed.error());
    if (next) stamp(*next, before);
    if (auto put = applyLocked(probe, next, !before); !put) return std::unexpected(put.error());
    if (also) {
      if (auto more = also(); !more) return std::unexpected(more.error());
    }
    if (auto done = tx.commit(); !done) return std::unexpected(done.error());
    return next;
  }

  // The cache's row of the key `probe` has, or nullopt. db_ locked.
  Result<std::optional<R>> cachedLocked(const R& probe) {
    Statement q(db_, table_.select() + table_.where(key_.columns));
    table_.bindWhere(q, key_.columns, probe);
    auto step = q.step();
    if (step == Statement::Step::kRow) return std::optional<R>(table_.read(q));
    if (step != Statement::Step::kDone) return std::unexpected(db_.error("read " + table_.name()));
    return std::optional<R>{};
  }

  // Writes `record` as the row of the key `probe` has, or removes that row. db_ locked. A
  // `fresh` record (one a change makes where there was none) is inserted, so that the table's
  // other unique columns refuse it (kConflict) rather than replace the row that has them; a
  // refresh replaces, since the cluster's record wins over what the cache held.
  Status applyLocked(const R& probe, const std::optional<R>& record, bool fresh = false) {
    if (!record || fresh) {
      // A fresh record's key may still have a row the cache kept (removed in the cluster,
      // not yet refreshed): it goes first.
      Statement q(db_, "DELETE FROM " + table_.name() + table_.where(key_.columns));
      table_.bindWhere(q, key_.columns, probe);
      if (q.step() != Statement::Step::kDone)
        return std::unexpected(db_.error("delete " + table_.name()));
      if (!record) return {};
    }
    Statement q(db_, fresh ? table_.bound("INSERT") : table_.replace());
    table_.bindReplace(q, *record);
    if (q.step() != Statement::Step::kDone)
      return std::unexpected(db_.error("write " + table_.name()));
    return {};
  }

  // The record's times: made now (or when it was first made), changed now.
  void stamp(R& record, const std::optional<R>& before) const {
    const std::string now = utcTextMillis(clock_.wallNow());
    table_.stampTimes(record, before ? table_.createdAt(*before) : now, now);
  }

  Database& db_;
  const Table<R>& table_;
  const Key key_;
  Clock& clock_;
  std::unique_ptr<RecordTable> shared_;
  std::function<bool(const R&)> unpublished_;
  // A change of one record, RADOS then SQLite, is not overtaken by another change of the same
  // record (its key's mutex) nor by a refresh of the whole kind (exclusive); changes of
  // different records run side by side.
  std::mutex& keyMutex(const std::string& key) {
    return key_mutexes_[std::hash<std::string>{}(key) % key_mutexes_.size()];
  }
  std::shared_mutex share_mutex_;
  std::array<std::mutex, 64> key_mutexes_;
};

// A key of two columns, "FIRST/SECOND" (the fields `first` and `second` of the record, whose
// columns are `columns`). Neither part holds a '/' (names are DNS labels, addresses and uuids
// have none); the second is never empty, the first only with `empty_first`.
template <typename R>
typename Mirror<R>::Key pairKey(std::vector<std::string> columns, std::string R::*first,
                                std::string R::*second, bool empty_first = false) {
  return {std::move(columns), [first, second](const R& r) { return r.*first + "/" + r.*second; },
          [first, second, empty_first](const std::string& key) -> std::optional<R> {
            auto slash = key.find('/');
            if (slash == std::string::npos || (slash == 0 && !empty_first) ||
                slash + 1 == key.size() || key.find('/', slash + 1) != std::string::npos) {
              return std::nullopt;
            }
            R r;
            r.*first = key.substr(0, slash);
            r.*second = key.substr(slash + 1);
            return r;
          }};
}

// The key of a kind of record named per tenant: "TENANT/NAME". With `empty_tenant`, "" is a
// tenant too ("/NAME": public images).
template <typename R>
typename Mirror<R>::Key tenantNameKey(bool empty_tenant = false) {
  return pairKey<R>({"tenant", "name"}, &R::tenant, &R::name, empty_tenant);
}

}  // namespace qiao
