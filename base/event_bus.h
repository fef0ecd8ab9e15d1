// EventBus: in-process publish/subscribe of the events the API streams on GET /v1/events
// (VM state changes, task updates). Publishing never blocks on a slow subscriber: each
// listener must only hand the event over (the API server posts it to its io thread).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace qiao {

struct Event {
  std::string type;    // "vm" | "task"
  std::string tenant;  // for filtering by the subscriber's tenants
  std::string json;    // the event's data: one JSON object
};

class EventBus {
 public:
  using Listener = std::function<void(const Event&)>;

  uint64_t subscribe(Listener listener) {
    std::lock_guard lock(mutex_);
    listeners_.emplace(next_id_, std::move(listener));
    return next_id_++;
  }
  void unsubscribe(uint64_t id) {
    std::lock_guard lock(mutex_);
    listeners_.erase(id);
  }
  void publish(const Event& event) const {
    std::lock_guard lock(mutex_);
    for (const auto& [id, listener] : listeners_) listener(event);
  }
  size_t subscribers() const {
    std::lock_guard lock(mutex_);
    return listeners_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::map<uint64_t, Listener> listeners_;
  uint64_t next_id_ = 1;
};

}  // namespace qiao
