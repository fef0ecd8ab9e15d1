#include "cluster/cluster_member.h"

#include <algorithm>

#include "base/log.h"

namespace qiao {
namespace {

const Logger kLog("cluster");

}  // namespace

ClusterMember::ClusterMember(RadosCluster& rados, ClusterMemberOptions options, Clock& clock)
    : rados_(rados),
      options_(std::move(options)),
      clock_(clock),
      membership_(rados, options_.pool, clock),
      host_lease_(rados, options_.pool.hostLease(options_.self.name), Membership::kLeaseName,
                  options_.cookie, "qiao host " + options_.self.name, options_.timing, clock),
      leader_(rados, options_.pool, options_.self.name, options_.cookie, options_.timing, clock) {}

ClusterMember::~ClusterMember() { stop(); }

void ClusterMember::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread(withLogScope([this] { run(); }));
}

void ClusterMember::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  leader_.resign();
}

bool ClusterMember::registered() const {
  std::lock_guard lock(mutex_);
  return registered_;
}

void ClusterMember::step() {
  bool registered;
  {
    std::lock_guard lock(mutex_);
    registered = registered_;
  }
  if (!registered) {
    auto self = membership_.registerSelf(options_.self);
    if (!self) {
      std::lock_guard lock(mutex_);
      if (last_problem_ != self.error().message) {
        kLog.warn("cannot register this host in the cluster yet",
                  {{"host", options_.self.name}, {"error", self.error().message}});
        last_problem_ = self.error().message;
      }
      return;
    }
    kLog.info("host registered in the cluster",
              {{"host", options_.self.name}, {"state", toString(self->state)}});
    std::lock_guard lock(mutex_);
    registered_ = true;
    last_problem_.reset();
  }
  // Each lease at its own pace: the host lease every renew_every, the leader's attempts (by a
  // member that does not lead) every retry_every.
  bool alive = host_lease_.held();
  if (clock_.now() >= host_lease_.nextStep()) {
    if (!alive) breakStaleLease();
    alive = host_lease_.step();
    if (alive && !host_lease_.lastError()) (void)membership_.noteRenewal(options_.self.name);
  }
  if (alive != was_alive_) {
    if (alive) {
      kLog.info("host lease held", {{"host", options_.self.name}});
      markReady();
    } else {
      auto why = host_lease_.lastError();
      kLog.error("host lease lost",
                 {{"host", options_.self.name}, {"error", why ? why->message : "it lapsed"}});
    }
    was_alive_ = alive;
  }
  if (alive) {
    if (clock_.now() >= leader_.nextStep()) leader_.step();
  } else if (leader_.epoch()) {
    leader_.resign();
  }
}

void ClusterMember::markReady() {
  // A joining host is ready once it holds its lease (the join flow checked it before it wrote
  // the record); other states are an admin's or the leader's to change.
  auto status = membership_.get(options_.self.name);
  if (!status || status->record.state != HostState::kJoining) return;
  if (auto ready = membership_.setState(options_.self.name, HostState::kReady, std::nullopt,
                                        HostState::kJoining);
      !ready) {
    kLog.warn("could not mark this host ready", {{"error", ready.error().message}});
    return;
  }
  kLog.info("host is ready", {{"host", options_.self.name}});
}

void ClusterMember::breakStaleLease() {
  // Our own earlier run's lock, its client blocklisted at connect: break it rather than wait
  // for it to lapse. A holder that is not blocklisted is a live qiaod of the same name: leave
  // it (the step that follows reports the conflict).
  auto holders = rados_.lockers(host_lease_.object(), Membership::kLeaseName);
  if (!holders || holders->empty()) return;
  auto mine = rados_.clientAddress();
  auto blocked = rados_.blocklist();
  if (!mine || !blocked) return;
  for (const auto& holder : *holders) {
    if (holder.address == *mine) continue;
    const bool fenced = std::ranges::any_of(
        *blocked, [&](const BlocklistEntry& e) { return e.address == holder.address; });
    if (!fenced) continue;
    if (rados_.breakLock(host_lease_.object(), Membership::kLeaseName, holder)) {
      kLog.info("broke the host lease of this host's previous run",
                {{"host", options_.self.name}, {"client", holder.client}});
    }
  }
}

Clock::Steady ClusterMember::nextStep() const {
  if (!registered()) return clock_.now() + options_.timing.retry_every;
  // A host without its lease runs for nothing else: it retries its lease at the retry pace.
  if (!alive()) return host_lease_.nextStep();
  return std::min(host_lease_.nextStep(), leader_.nextStep());
}

void ClusterMember::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    step();
    const auto wait = nextStep() - clock_.now();
    lock.lock();
    wake_.wait_for(
        lock, std::max<std::chrono::steady_clock::duration>(wait, std::chrono::milliseconds(50)),
        [this] { return stopping_; });
  }
}

}  // namespace qiao
