// FakeTaps: the host's tap devices as a set of names, for unit tests of what plugs ports (the
// Fabric, and the services above it): ops() are the TapOps the Fabric takes; a test removes a
// name to play a tap deleted behind the Fabric's back.
#pragma once

#include <mutex>
#include <set>
#include <string>

#include "network/fabric.h"

namespace qiao::testing {

class FakeTaps {
 public:
  // Bound to this object, which must outlive the Fabric given them.
  TapOps ops() {
    return {[this](const std::string& name) { return contains(name); },
            [this](const std::string& name, int) -> Status {
              insert(name);
              return {};
            },
            [this](const std::string& name) -> Status {
              erase(name);
              return {};
            }};
  }
  bool contains(const std::string& name) const {
    std::lock_guard lock(mu_);
    return names_.contains(name);
  }
  bool empty() const {
    std::lock_guard lock(mu_);
    return names_.empty();
  }
  void insert(const std::string& name) {
    std::lock_guard lock(mu_);
    names_.insert(name);
  }
  void erase(const std::string& name) {
    std::lock_guard lock(mu_);
    names_.erase(name);
  }

 private:
  mutable std::mutex mu_;  // the Fabric's check loop calls from its own thread
  std::set<std::string> names_;
};

}  // namespace qiao::testing
