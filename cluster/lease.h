// Lease: a RADOS object lock held for a duration and renewed well before it lapses: how a host
// proves it is alive (its lease on its own host object) and how the leader holds its office (the
// lease on the leader object). The primary OSD's clock decides when an unrenewed lock expires;
// the holder's own deadline is conservative: it counts from *before* each successful renewal was
// sent, so the holder stops acting as holder before the OSD lets anyone else take the lock
// (HOST-STACK.md "Ceph as the cluster's coordinator"). Time comes from a Clock, so the logic is
// tested without a sleep (tests/unit/cluster/lease_test.cc).
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>

#include "base/clock.h"
#include "base/error.h"
#include "storage/rados_cluster.h"

namespace qiao {

struct LeaseTiming {
  // How long the OSD keeps the lock after each renewal.
  std::chrono::seconds duration{10};
  // How often the holder renews (a third of the duration: two renewals may fail in a row).
  std::chrono::milliseconds renew_every{3000};
  // How often a member that does not hold the lease tries to take it (and a holder retries a
  // renewal that failed).
  std::chrono::milliseconds retry_every{1000};
  // The holder gives the lease up this long before its deadline (clock rate differences).
  std::chrono::milliseconds margin{250};

  static LeaseTiming forDuration(std::chrono::seconds duration);
  // kInvalidArgument unless 2 s <= duration <= 300 s and renew_every < duration / 2.
  Status validate() const;
};

class Lease {
 public:
  Lease(RadosCluster& rados, RadosObject object, std::string lock_name, std::string cookie,
        std::string description, LeaseTiming timing, Clock& clock);

  // One attempt to take or renew the lease now; returns whether it is held afterwards. While
  // held, an attempt that fails for another reason than a conflict (Ceph unreachable) keeps
  // the lease until its deadline; a conflict (another holder) loses it at once.
  bool step();
  // Held, and the deadline not passed.
  bool held() const;
  // Until when the holder may act as holder (meaningful while held()).
  Clock::Steady deadline() const;
  // When step() should run next: the next renewal while held, the next attempt otherwise
  // (never later than the deadline).
  Clock::Steady nextStep() const;
  // Gives the lease up (unlocks; idempotent).
  void release();
  // Why the last attempt failed, when it did.
  std::optional<Error> lastError() const;

  const RadosObject& object() const { return object_; }
  const LeaseTiming& timing() const { return timing_; }

 private:
  RadosCluster& rados_;
  const RadosObject object_;
  const std::string lock_name_, cookie_, description_;
  const LeaseTiming timing_;
  Clock& clock_;
  mutable std::mutex mutex_;
  bool held_ = false;
  Clock::Steady deadline_{};
  std::optional<Clock::Steady> last_attempt_;  // none yet: the first step is due now
  std::optional<Error> last_error_;
};

}  // namespace qiao
