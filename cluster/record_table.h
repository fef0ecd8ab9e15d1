// RecordTable: one kind of cluster record (hosts, VMs, networks, ...) kept as the omap entries of
// one RADOS object in the cluster pool: the key is the record's name, the value its JSON. Every
// change is one guarded write (the entry's value as it was read, so two writers never lose each
// other's update) and is then announced to the object's watchers. A leader's writes also carry
// its epoch: once a newer leader has stamped the object, an older one cannot change it.
// DESIGN.md "Cluster"; docs/operators/cluster.md "The state in RADOS".
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "base/error.h"
#include "storage/rados_cluster.h"

namespace qiao {

// The xattr of every table object holding the epoch of the newest leader that wrote it.
inline constexpr char kEpochXattr[] = "qiao.epoch";

// Every entry of a table at one version of its object.
struct TableSnapshot {
  std::map<std::string, std::string> entries;
  uint64_t version = 0;
};

class RecordTable {
 public:
  // The change a read-modify-write makes: given the entry as it is (nullopt: absent), the new
  // value, nullopt to remove it, or an error to change nothing.
  using Change =
      std::function<Result<std::optional<std::string>>(const std::optional<std::string>&)>;

  RecordTable(RadosCluster& rados, RadosObject object)
      : rados_(rados), object_(std::move(object)) {}

  const RadosObject& object() const { return object_; }

  // The entry, or nullopt. kUnavailable when Ceph cannot be reached.
  Result<std::optional<std::string>> get(const std::string& key);
  // Every entry (page by page; read again from the start when the object changed meanwhile).
  Result<TableSnapshot> readAll();

  // Reads the entry, applies `change` and writes the result guarded by what was read; when
  // another writer changed the entry in between, reads again and retries (at most 32 times).
  // With `epoch` (a leader's write), kConflict once a newer leader has stamped the table.
  // Returns what was written (nullopt when removed or unchanged-absent).
  Result<std::optional<std::string>> update(const std::string& key, const Change& change,
                                            std::optional<uint64_t> epoch = std::nullopt);
  // Adds the entry: kConflict when it exists.
  Status insert(const std::string& key, const std::string& value,
                std::optional<uint64_t> epoch = std::nullopt);
  // Removes the entry when present (idempotent).
  Status remove(const std::string& key, std::optional<uint64_t> epoch = std::nullopt);
  // A new leader's first write: from now on the table refuses writes of older epochs.
  // kConflict when a newer epoch already stamped it.
  Status stamp(uint64_t epoch);

 private:
  Status refusedEpoch(uint64_t epoch);
  void announce(const std::string& key);

  RadosCluster& rados_;
  RadosObject object_;
};

}  // namespace qiao
