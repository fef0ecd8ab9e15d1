#include "cluster/lease.h"

#include <algorithm>

namespace qiao {

LeaseTiming LeaseTiming::forDuration(std::chrono::seconds duration) {
  LeaseTiming t;
  t.duration = duration;
  t.renew_every = std::chrono::duration_cast<std::chrono::milliseconds>(duration) / 3;
  t.retry_every =
      std::min<std::chrono::milliseconds>(std::chrono::milliseconds(1000), t.renew_every);
  return t;
}

Status LeaseTiming::validate() const {
  if (duration < std::chrono::seconds(2) || duration > std::chrono::seconds(300)) {
    return makeError(
        ErrorCode::kInvalidArgument, "cluster",
        "lease duration must be 2 to 300 seconds, not " + std::to_string(duration.count()));
  }
  if (renew_every * 2 >= duration || renew_every.count() <= 0) {
    return makeError(ErrorCode::kInvalidArgument, "cluster",
                     "a lease must be renewed more often than every half of its duration");
  }
  return {};
}

Lease::Lease(RadosCluster& rados, RadosObject object, std::string lock_name, std::string cookie,
             std::string description, LeaseTiming timing, Clock& clock)
    : rados_(rados),
      object_(std::move(object)),
      lock_name_(std::move(lock_name)),
      cookie_(std::move(cookie)),
      description_(std::move(description)),
      timing_(timing),
      clock_(clock) {}

bool Lease::step() {
  const Clock::Steady sent = clock_.now();
  Status locked = rados_.lock(object_, lock_name_, cookie_, description_, timing_.duration);
  std::lock_guard lock(mutex_);
  last_attempt_ = sent;
  if (locked) {
    held_ = true;
    deadline_ = sent + timing_.duration - timing_.margin;
    last_error_.reset();
    return true;
  }
  last_error_ = locked.error();
  if (locked.error().code == ErrorCode::kConflict) held_ = false;
  if (held_ && clock_.now() >= deadline_) held_ = false;
  return held_;
}

bool Lease::held() const {
  std::lock_guard lock(mutex_);
  return held_ && clock_.now() < deadline_;
}

Clock::Steady Lease::deadline() const {
  std::lock_guard lock(mutex_);
  return deadline_;
}

Clock::Steady Lease::nextStep() const {
  std::lock_guard lock(mutex_);
  if (!last_attempt_) return clock_.now();
  if (!held_) return *last_attempt_ + timing_.retry_every;
  // A failed renewal is retried at the retry pace, a good one at the renewal pace.
  const auto pace = last_error_ ? timing_.retry_every : timing_.renew_every;
  return std::min(*last_attempt_ + pace, deadline_);
}

void Lease::release() {
  bool was_held;
  {
    std::lock_guard lock(mutex_);
    was_held = held_;
    held_ = false;
  }
  if (was_held) (void)rados_.unlock(object_, lock_name_, cookie_);
}

std::optional<Error> Lease::lastError() const {
  std::lock_guard lock(mutex_);
  return last_error_;
}

}  // namespace qiao
