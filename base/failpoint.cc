#include "base/failpoint.h"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <utility>

#include "base/log.h"

namespace qiao {

Failpoints::Failpoints(std::vector<std::string> armed, Action action)
    : armed_(std::move(armed)), any_(!armed_.empty()), action_(std::move(action)) {}

std::vector<std::string> Failpoints::fromEnvironment() {
  std::vector<std::string> names;
  const char* env = std::getenv("QIAO_FAILPOINT");
  if (env == nullptr) return names;
  std::string_view rest(env);
  while (!rest.empty()) {
    auto comma = rest.find(',');
    auto item = rest.substr(0, comma);
    if (!item.empty()) names.emplace_back(item);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return names;
}

const Failpoints& Failpoints::none() {
  static const Failpoints nothing_armed;
  return nothing_armed;
}

void Failpoints::arm(std::string name) {
  std::lock_guard lock(mutex_);
  armed_.push_back(std::move(name));
  any_ = true;
}

void Failpoints::disarm(std::string_view name) {
  std::lock_guard lock(mutex_);
  std::erase(armed_, name);
  any_ = !armed_.empty();
}

void Failpoints::hit(std::string_view name) const {
  if (!any_.load(std::memory_order_relaxed)) return;
  {
    std::lock_guard lock(mutex_);
    if (std::find(armed_.begin(), armed_.end(), name) == armed_.end()) return;
  }
  if (action_) {
    action_(name);
    return;
  }
  Logger("failpoint").warn("failpoint hit: killing qiaod", {{"failpoint", name}});
  std::raise(SIGKILL);
}

}  // namespace qiao
