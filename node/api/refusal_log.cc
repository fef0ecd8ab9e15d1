#include "node/api/refusal_log.h"

namespace qiao {

bool RefusalLog::record(const std::string& source, int status, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  std::string key = source;
  if (!buckets_.contains(key) && buckets_.size() >= max_sources_) key = kOtherSources;
  auto [it, fresh] = buckets_.try_emplace(key);
  Bucket& b = it->second;
  if (fresh) {
    b.started = now;
    b.first_status = status;
    return true;  // the first of its interval: written in full
  }
  ++b.count;
  return false;
}

std::vector<RefusalLog::Summary> RefusalLog::due(Clock::time_point now, bool all) {
  std::lock_guard lock(mutex_);
  std::vector<Summary> out;
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    const Bucket& b = it->second;
    if (!all && now - b.started < interval_) {
      ++it;
      continue;
    }
    if (b.count > 0) {
      out.push_back({it->first, b.count, b.first_status,
                     std::chrono::duration_cast<std::chrono::seconds>(now - b.started).count()});
    }
    it = buckets_.erase(it);
  }
  return out;
}

std::string sourceAddress(const std::string& remote) {
  if (remote.starts_with('[')) {
    auto close = remote.find(']');
    return close == std::string::npos ? remote : remote.substr(1, close - 1);
  }
  auto colon = remote.rfind(':');
  return colon == std::string::npos ? remote : remote.substr(0, colon);
}

}  // namespace qiao
