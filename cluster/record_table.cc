#include "cluster/record_table.h"

#include "base/log.h"

namespace qiao {
namespace {

constexpr size_t kPage = 1000;
constexpr int kAttempts = 32;
constexpr std::chrono::milliseconds kNotifyTimeout{2000};
const Logger kLog("cluster");

}  // namespace

Result<std::optional<std::string>> RecordTable::get(const std::string& key) {
  auto page = rados_.omapGet(object_, {key});
  if (!page) {
    if (page.error().code == ErrorCode::kNotFound) return std::optional<std::string>{};
    return std::unexpected(page.error());
  }
  auto it = page->entries.find(key);
  if (it == page->entries.end()) return std::optional<std::string>{};
  return std::optional<std::string>{it->second};
}

Result<TableSnapshot> RecordTable::readAll() {
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    TableSnapshot snapshot;
    std::string after;
    bool first = true, changed = false;
    for (;;) {
      auto page = rados_.omapRead(object_, after, "", kPage);
      if (!page) {
        if (page.error().code == ErrorCode::kNotFound) return TableSnapshot{};
        return std::unexpected(page.error());
      }
      if (first) {
        snapshot.version = page->version;
        first = false;
      } else if (page->version != snapshot.version) {
        changed = true;
        break;
      }
      snapshot.entries.insert(page->entries.begin(), page->entries.end());
      if (!page->more || page->entries.empty()) break;
      after = page->entries.rbegin()->first;
    }
    if (!changed) return snapshot;
  }
  return makeError(ErrorCode::kUnavailable, "cluster",
                   object_.describe() + " kept changing while it was read");
}

Status RecordTable::refusedEpoch(uint64_t epoch) {
  auto stored = rados_.epochOf(object_, kEpochXattr);
  if (stored && *stored > epoch) {
    return makeError(ErrorCode::kConflict, "cluster",
                     "leader epoch " + std::to_string(epoch) + " was superseded by epoch " +
                         std::to_string(*stored) + ": this member is no longer the leader");
  }
  return {};
}

Result<std::optional<std::string>> RecordTable::update(const std::string& key, const Change& change,
                                                       std::optional<uint64_t> epoch) {
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto current = get(key);
    if (!current) return std::unexpected(current.error());
    auto next = change(*current);
    if (!next) return std::unexpected(next.error());
    if (!*next && !*current) return std::optional<std::string>{};
    if (*next && *current && **next == **current) return *next;
    OmapWrite write;
    write.guards.push_back({key, current->value_or("")});
    if (epoch) write.epoch = EpochGuard{kEpochXattr, *epoch};
    if (*next) {
      write.set[key] = **next;
    } else {
      write.remove.push_back(key);
    }
    auto written = rados_.omapWrite(object_, write);
    if (written) {
      announce(key);
      return *next;
    }
    if (written.error().code != ErrorCode::kConflict) return std::unexpected(written.error());
    if (epoch) {
      if (auto refused = refusedEpoch(*epoch); !refused) return std::unexpected(refused.error());
    }
  }
  return makeError(ErrorCode::kConflict, "cluster",
                   "entry " + key + " of " + object_.describe() + " kept changing: gave up after " +
                       std::to_string(kAttempts) + " attempts");
}

Status RecordTable::insert(const std::string& key, const std::string& value,
                           std::optional<uint64_t> epoch) {
  auto done = update(
      key,
      [&](const std::optional<std::string>& current) -> Result<std::optional<std::string>> {
        if (current) {
          return makeError(ErrorCode::kConflict, "cluster", key + " exists already");
        }
        return std::optional<std::string>{value};
      },
      epoch);
  if (!done) return std::unexpected(done.error());
  return {};
}

Status RecordTable::remove(const std::string& key, std::optional<uint64_t> epoch) {
  auto done = update(
      key,
      [](const std::optional<std::string>&) -> Result<std::optional<std::string>> {
        return std::optional<std::string>{};
      },
      epoch);
  if (!done) return std::unexpected(done.error());
  return {};
}

Status RecordTable::stamp(uint64_t epoch) {
  OmapWrite write;
  write.epoch = EpochGuard{kEpochXattr, epoch};
  auto written = rados_.omapWrite(object_, write);
  if (written) return {};
  if (written.error().code == ErrorCode::kConflict) {
    if (auto refused = refusedEpoch(epoch); !refused) return refused;
  }
  return std::unexpected(written.error());
}

void RecordTable::announce(const std::string& key) {
  // Best effort, and the writer does not wait for it: a watcher that misses it re-reads when
  // its watch breaks or on its next sweep.
  rados_.notifyInBackground(object_, key, kNotifyTimeout);
}

}  // namespace qiao
