#include "node/state/replicator.h"

#include "base/log.h"

namespace qiao {
namespace {

const Logger kLog("cluster");
constexpr std::chrono::seconds kRetry{1};

}  // namespace

Replicator::Replicator(RadosCluster& rados, std::vector<Replicated*> kinds, Clock& clock,
                       std::chrono::seconds sweep)
    : rados_(rados), clock_(clock), sweep_(sweep), next_sweep_(clock.now() + sweep) {
  for (Replicated* replica : kinds) {
    auto kind = std::make_unique<Kind>();
    kind->replica = replica;
    kinds_.push_back(std::move(kind));
  }
}

Replicator::~Replicator() { stop(); }

Status Replicator::syncNow() {
  step();
  std::lock_guard lock(mutex_);
  for (const auto& kind : kinds_) {
    if (kind->stale) {
      return makeError(ErrorCode::kUnavailable, "cluster",
                       "the cluster's " + kind->replica->sharedObject().describe() +
                           " could not be read: the node serves its last copy until it can");
    }
  }
  return {};
}

void Replicator::step() {
  const bool sweep = clock_.now() >= next_sweep_;
  if (sweep) next_sweep_ = clock_.now() + sweep_;
  for (auto& kind : kinds_) {
    // A watch first, so that nothing changed between the read below and the watch goes unheard.
    if (!kind->watch || !kind->watch->check()) {
      kind->watch.reset();
      Kind* k = kind.get();
      auto watch = rados_.watch(k->replica->sharedObject(), [this, k](const WatchEvent& event) {
        {
          std::lock_guard lock(mutex_);
          if (event.kind == WatchEvent::Kind::kNotify) {
            k->keys.insert(event.payload);
          } else {
            k->stale = true;
          }
        }
        wake_.notify_all();
      });
      std::lock_guard lock(mutex_);
      if (watch) {
        kind->watch = std::move(*watch);
      }
      kind->stale = true;  // whatever happened while it was not watched
    }
    bool whole;
    std::set<std::string> keys;
    {
      std::lock_guard lock(mutex_);
      if (sweep) kind->stale = true;
      whole = kind->stale;
      kind->stale = false;
      keys.swap(kind->keys);
    }
    Status done;
    if (whole) {
      done = kind->replica->refresh();
    } else {
      for (const auto& key : keys) {
        done = kind->replica->refreshKey(key);
        if (!done) break;
      }
    }
    if (!done) {
      kLog.warn(
          "could not bring the cluster's records into the cache",
          {{"object", kind->replica->sharedObject().describe()}, {"error", done.error().message}});
      std::lock_guard lock(mutex_);
      kind->stale = true;
    }
  }
}

void Replicator::start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { run(); });
}

void Replicator::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& kind : kinds_) kind->watch.reset();
}

void Replicator::run() {
  for (;;) {
    step();
    std::unique_lock lock(mutex_);
    bool pending = false;
    for (const auto& kind : kinds_) pending = pending || kind->stale || !kind->keys.empty();
    // At the next notify (or broken watch), else within a second (a sweep that may be due; what
    // failed, such as Ceph out of reach, again).
    wake_.wait_for(lock, kRetry, [&] {
      if (stopping_) return true;
      for (const auto& kind : kinds_) {
        if (!kind->keys.empty() || (!pending && kind->stale)) return true;
      }
      return false;
    });
    if (stopping_) return;
  }
}

}  // namespace qiao
