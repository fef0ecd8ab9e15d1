#include "base/clock.h"

#include <cstdio>
#include <ctime>
#include <thread>

namespace qiao {
namespace {

class SystemClock final : public Clock {
 public:
  Steady now() const override { return std::chrono::steady_clock::now(); }
  Wall wallNow() const override { return std::chrono::system_clock::now(); }
  void sleepUntil(Steady deadline) override { std::this_thread::sleep_until(deadline); }
};

}  // namespace

std::string utcText(Clock::Wall t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string utcTextMillis(Clock::Wall t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  std::string text = utcText(Clock::Wall(std::chrono::duration_cast<Clock::Wall::duration>(
      std::chrono::duration_cast<std::chrono::seconds>(ms))));
  char millis[8];
  std::snprintf(millis, sizeof millis, ".%03dZ",
                static_cast<int>(((ms.count() % 1000) + 1000) % 1000));
  text.pop_back();  // the Z
  return text + millis;
}

Clock& systemClock() {
  static SystemClock clock;
  return clock;
}

Clock::Steady ManualClock::now() const {
  std::lock_guard lock(mutex_);
  return Steady{} + elapsed_;
}

Clock::Wall ManualClock::wallNow() const {
  std::lock_guard lock(mutex_);
  return wall_start_ + std::chrono::duration_cast<Wall::duration>(elapsed_);
}

void ManualClock::sleepUntil(Steady deadline) {
  std::unique_lock lock(mutex_);
  moved_.wait(lock, [&] { return Steady{} + elapsed_ >= deadline; });
}

void ManualClock::advance(std::chrono::steady_clock::duration d) {
  {
    std::lock_guard lock(mutex_);
    elapsed_ += d;
  }
  moved_.notify_all();
}

}  // namespace qiao
