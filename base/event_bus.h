// In-process publish/subscribe: Broadcaster<E> for one kind of event (the hypervisor's domain
// events), and EventBus for the events the API streams on GET /v1/events (VM state changes,
// task updates). Publishing never blocks on a slow subscriber: each listener must only hand
// the event over (the API server posts it to its io thread).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace qiao {

// Listeners of one kind of event: publish hands each event to every listener, in subscription
// order, on the publisher's thread. A listener must only hand the event over (it runs under
// the broadcaster's lock: it must not subscribe or unsubscribe from inside).
template <typename E>
class Broadcaster {
 public:
  using Listener = std::function<void(const E&)>;

  uint64_t subscribe(Listener listener) {
    std::lock_guard lock(mutex_);
    listeners_.emplace(next_id_, std::move(listener));
    return next_id_++;
  }
  void unsubscribe(uint64_t id) {
    std::lock_guard lock(mutex_);
    listeners_.erase(id);
  }
  void publish(const E& event) const {
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

// A subscription that ends with its owner.
class Subscription {
 public:
  Subscription() = default;
  explicit Subscription(std::function<void()> end) : end_(std::move(end)) {}
  Subscription(Subscription&& other) noexcept : end_(std::exchange(other.end_, nullptr)) {}
  Subscription& operator=(Subscription&& other) noexcept {
    if (this != &other) {
      reset();
      end_ = std::exchange(other.end_, nullptr);
    }
    return *this;
  }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() { reset(); }
  void reset() {
    if (end_) std::exchange(end_, nullptr)();
  }

 private:
  std::function<void()> end_;
};

struct Event {
  std::string type;    // "vm" | "task"
  std::string tenant;  // for filtering by the subscriber's tenants
  std::string json;    // the event's data: one JSON object
};

using EventBus = Broadcaster<Event>;

}  // namespace qiao
