#include "node/vm/qmp/qmp_channel.h"

#include <exception>
#include <vector>

#include "base/log.h"

namespace qiao {
namespace {
const Logger kLog("qmp");
}  // namespace

QmpSubscription QmpSubscribers::add(std::string event_name, QmpEventHandler handler) {
  auto entry = std::make_shared<Entry>();
  entry->event_name = std::move(event_name);
  entry->handler = std::move(handler);
  uint64_t id = 0;
  {
    std::lock_guard lock(mu_);
    id = next_id_++;
    entries_.emplace(id, std::move(entry));
  }
  std::weak_ptr<QmpSubscribers> weak = weak_from_this();
  return QmpSubscription([weak, id] {
    if (auto self = weak.lock()) self->remove(id);
  });
}

void QmpSubscribers::remove(uint64_t id) {
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    entry = std::move(it->second);
    entries_.erase(it);
  }
  if (dispatching_.load() == std::this_thread::get_id()) {
    // From a handler (this one or another of this channel): the dispatching thread holds the
    // running entry's call_mu, so waiting for it would deadlock; dispatch() checks `active`
    // under call_mu before every call, and this thread is the only dispatcher.
    entry->active = false;
    return;
  }
  std::lock_guard call(entry->call_mu);  // waits for a call in progress
  entry->active = false;
}

void QmpSubscribers::dispatch(const QmpEvent& event) {
  std::vector<std::shared_ptr<Entry>> targets;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, entry] : entries_) {
      if (entry->event_name.empty() || entry->event_name == event.name) targets.push_back(entry);
    }
  }
  dispatching_.store(std::this_thread::get_id());
  for (const auto& entry : targets) {
    std::lock_guard call(entry->call_mu);
    if (!entry->active) continue;
    try {
      entry->handler(event);
    } catch (const std::exception& e) {
      // A handler's bug must not take the channel's reader (and every reply) down with it.
      kLog.error("a QMP event handler threw", {{"event", event.name}, {"what", e.what()}});
    } catch (...) {
      kLog.error("a QMP event handler threw", {{"event", event.name}});
    }
  }
  dispatching_.store(std::thread::id());
}

size_t QmpSubscribers::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

}  // namespace qiao
