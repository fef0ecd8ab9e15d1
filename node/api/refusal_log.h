// RefusalLog: how the audit log stays small when strangers knock. Calls refused to a caller
// this node does not know (no certificate, a foreign or unbound identity, a request it could
// not read) are counted per source address: the first of an interval is written in full, the
// others only counted, and when the interval ends one summary entry carries the count. A
// stranger can so cause at most two entries per interval and address, and addresses beyond
// `max_sources` share one bucket ("other"). Time is given by the caller (tests need no sleep).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace qiao {

class RefusalLog {
 public:
  using Clock = std::chrono::steady_clock;

  struct Summary {
    std::string source;
    int64_t count = 0;   // refusals not written in full
    int first_status = 0;
    int64_t seconds = 0;  // since the entry written in full
  };

  RefusalLog(std::chrono::seconds interval, size_t max_sources)
      : interval_(interval), max_sources_(max_sources) {}

  // A refusal from `source`: true when it is to be written in full (the first of its
  // interval), false when it was only counted.
  bool record(const std::string& source, int status, Clock::time_point now);
  // The summaries of the intervals that have ended (all of them with `all`, at shutdown);
  // their sources start afresh.
  std::vector<Summary> due(Clock::time_point now, bool all);

  static constexpr const char* kOtherSources = "other";

 private:
  struct Bucket {
    Clock::time_point started;
    int64_t count = 0;
    int first_status = 0;
  };
  std::chrono::seconds interval_;
  size_t max_sources_;
  std::mutex mutex_;
  std::map<std::string, Bucket> buckets_;
};

// The address of "1.2.3.4:5678" or "[::1]:5678" (the port left out: a stranger has many).
std::string sourceAddress(const std::string& remote);

}  // namespace qiao
