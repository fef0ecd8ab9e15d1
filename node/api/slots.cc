#include "node/api/slots.h"

namespace qiao {

std::shared_ptr<void> Slots::take(const std::string& key,
                                  const std::function<bool(Counts)>& allowed, Counts* seen) {
  std::lock_guard lock(mu_);
  auto it = by_key_.find(key);
  *seen = Counts{it == by_key_.end() ? 0 : it->second, total_};
  if (!allowed(*seen)) return nullptr;
  ++by_key_[key];
  ++total_;
  // The handle points at this (never deleted through it): its deleter gives the slot back.
  return std::shared_ptr<void>(static_cast<void*>(this), [this, key](void*) { give(key); });
}

int Slots::held(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = by_key_.find(key);
  return it == by_key_.end() ? 0 : it->second;
}

void Slots::give(const std::string& key) {
  std::lock_guard lock(mu_);
  --total_;
  if (--by_key_[key] <= 0) by_key_.erase(key);
}

}  // namespace qiao
