// Clock: time as the code that keeps leases, deadlines and retries sees it. The daemon uses
// systemClock(); unit tests use a ManualClock and move time themselves, so lease and timeout
// logic is tested without a sleep.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

namespace qiao {

class Clock {
 public:
  using Steady = std::chrono::steady_clock::time_point;
  using Wall = std::chrono::system_clock::time_point;
  virtual ~Clock() = default;
  // Monotonic time, for durations and deadlines.
  virtual Steady now() const = 0;
  // Calendar time, for what is shown or stored.
  virtual Wall wallNow() const = 0;
  // Blocks until `deadline` (a ManualClock: until a test moves time past it).
  virtual void sleepUntil(Steady deadline) = 0;
  void sleepFor(std::chrono::steady_clock::duration d) { sleepUntil(now() + d); }
};

// "2026-12-07T12:34:56Z": calendar time as the API, the records and the logs show it (UTC,
// whole seconds).
std::string utcText(Clock::Wall t);
// "2026-12-07T12:34:56.789Z": the same to the millisecond, as the store stamps its records.
std::string utcTextMillis(Clock::Wall t);

// The real clocks. One per process; it holds no state.
Clock& systemClock();

// A clock that moves only when told. sleepUntil returns once advance() reached the deadline,
// so a thread under test can wait on it while the test moves time.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Wall wall_start = Wall{} + std::chrono::hours(24 * 365 * 56))
      : wall_start_(wall_start) {}
  Steady now() const override;
  Wall wallNow() const override;
  void sleepUntil(Steady deadline) override;
  void advance(std::chrono::steady_clock::duration d);

 private:
  mutable std::mutex mutex_;
  std::condition_variable moved_;
  std::chrono::steady_clock::duration elapsed_{0};
  Wall wall_start_;
};

}  // namespace qiao
