#include "cluster/leader.h"

#include <charconv>

#include "base/log.h"
#include "cluster/record_table.h"

namespace qiao {
namespace {

const Logger kLog("cluster");
constexpr char kLeaseName[] = "leader";
constexpr int kAttempts = 8;

// The leader object's "epoch" entry as a number: kInternal when it is not one (the object was
// changed by something else than Qiao).
Result<uint64_t> parseEpoch(const std::string& text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    return makeError(ErrorCode::kInternal, "cluster",
                     "the leader object's epoch is not a number: \"" + text + "\"");
  }
  return value;
}

}  // namespace

LeaderElection::LeaderElection(RadosCluster& rados, ClusterPool pool, std::string member,
                               std::string cookie, LeaseTiming timing, Clock& clock)
    : rados_(rados),
      pool_(std::move(pool)),
      member_(std::move(member)),
      clock_(clock),
      lease_(rados, pool_.leader(), kLeaseName, std::move(cookie), "qiao leader " + member_, timing,
             clock) {}

void LeaderElection::step() {
  const bool was_leading = epoch().has_value();
  const bool held = lease_.step();
  if (!held) {
    std::lock_guard lock(mutex_);
    if (epoch_) {
      kLog.warn("no longer the leader", {{"epoch", std::to_string(*epoch_)}});
      epoch_.reset();
    }
    return;
  }
  if (was_leading) return;
  auto epoch = beginEpoch();
  if (!epoch) {
    kLog.warn("took the leader lease but could not start an epoch",
              {{"error", epoch.error().message}});
    lease_.release();
    return;
  }
  for (std::string_view kind : kRecordKinds) {
    RecordTable table(rados_, pool_.table(kind));
    if (auto stamped = table.stamp(*epoch); !stamped) {
      kLog.warn("could not stamp the epoch on a table",
                {{"table", kind}, {"error", stamped.error().message}});
      lease_.release();
      return;
    }
  }
  if (!lease_.held()) return;  // the stamping outlasted the lease: try again next round
  std::lock_guard lock(mutex_);
  epoch_ = *epoch;
  kLog.info("this member is the leader", {{"epoch", std::to_string(*epoch)}});
}

Result<uint64_t> LeaderElection::beginEpoch() {
  const RadosObject object = pool_.leader();
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto page = rados_.omapGet(object, {"epoch"});
    if (!page) return std::unexpected(page.error());
    std::string old_text;
    uint64_t old_epoch = 0;
    if (auto it = page->entries.find("epoch"); it != page->entries.end()) {
      old_text = it->second;
      auto parsed = parseEpoch(old_text);
      if (!parsed) return std::unexpected(parsed.error());
      old_epoch = *parsed;
    }
    const uint64_t next = old_epoch + 1;
    OmapWrite write;
    write.guards.push_back({"epoch", old_text});
    write.epoch = EpochGuard{kEpochXattr, next};
    write.set = {
        {"epoch", std::to_string(next)}, {"member", member_}, {"since", utcText(clock_.wallNow())}};
    auto written = rados_.omapWrite(object, write);
    if (written) return next;
    if (written.error().code != ErrorCode::kConflict) return std::unexpected(written.error());
  }
  return makeError(ErrorCode::kConflict, "cluster", "the leader object kept changing");
}

std::optional<uint64_t> LeaderElection::epoch() const {
  std::lock_guard lock(mutex_);
  if (epoch_ && !lease_.held()) return std::nullopt;
  return epoch_;
}

Result<LeaderInfo> LeaderElection::current() {
  auto page = rados_.omapGet(pool_.leader(), {"epoch", "member", "since"});
  if (!page) {
    if (page.error().code == ErrorCode::kNotFound) return LeaderInfo{};
    return std::unexpected(page.error());
  }
  LeaderInfo info;
  if (auto it = page->entries.find("epoch"); it != page->entries.end()) {
    auto parsed = parseEpoch(it->second);
    if (!parsed) return std::unexpected(parsed.error());
    info.epoch = *parsed;
  }
  if (auto it = page->entries.find("member"); it != page->entries.end()) info.member = it->second;
  if (auto it = page->entries.find("since"); it != page->entries.end()) info.since = it->second;
  return info;
}

void LeaderElection::resign() {
  {
    std::lock_guard lock(mutex_);
    epoch_.reset();
  }
  lease_.release();
}

}  // namespace qiao
