// FaultPlan: which calls of a failure-injecting double fail, and how. A test arms a fault on
// one operation - its nth call from now, or every call - with the error the real component
// would give; the double asks the plan at each call. A fault strikes before the real call (the
// operation never happens) or after it (it happened, but the caller hears an error, as after
// a timeout), so that both kinds of half-done work can be driven into the code under test.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "base/error.h"

namespace qiao::testing {

enum class FaultTiming {
  kBefore,  // the call fails without reaching the real component
  kAfter,   // the real call is made, then the error is returned instead of its result
};

template <typename Op>
class FaultPlan {
 public:
  // The nth call of `op` from now (1: the next one) fails with `error`; later calls succeed.
  void failNth(Op op, int nth, Error error, FaultTiming timing = FaultTiming::kBefore) {
    std::lock_guard lock(mu_);
    armed_[op] = Armed{calls_[op] + nth, false, std::move(error), timing};
  }
  // Every call of `op` from now fails, until clear().
  void failEvery(Op op, Error error, FaultTiming timing = FaultTiming::kBefore) {
    std::lock_guard lock(mu_);
    armed_[op] = Armed{0, true, std::move(error), timing};
  }
  void clear() {
    std::lock_guard lock(mu_);
    armed_.clear();
  }
  // Calls of `op` so far (failed ones included).
  int calls(Op op) const {
    std::lock_guard lock(mu_);
    auto it = calls_.find(op);
    return it == calls_.end() ? 0 : it->second;
  }
  // Failures injected into `op` so far.
  int injected(Op op) const {
    std::lock_guard lock(mu_);
    auto it = injected_.find(op);
    return it == injected_.end() ? 0 : it->second;
  }

  struct Fault {
    Error error;
    FaultTiming timing;
  };
  // Counts one call of `op`: the fault it meets, if any.
  std::optional<Fault> onCall(Op op) {
    std::lock_guard lock(mu_);
    const int call = ++calls_[op];
    auto it = armed_.find(op);
    if (it == armed_.end()) return std::nullopt;
    const Armed& armed = it->second;
    if (!armed.every && armed.at_call != call) return std::nullopt;
    Fault fault{armed.error, armed.timing};
    if (!armed.every) armed_.erase(it);
    ++injected_[op];
    return fault;
  }

  // Runs a call of `op` through the plan: `real` unless a fault strikes before it, the fault's
  // error instead of its result when one strikes after it.
  template <typename R, typename F>
  R run(Op op, F&& real) {
    auto fault = onCall(op);
    if (fault && fault->timing == FaultTiming::kBefore) return std::unexpected(fault->error);
    R result = std::forward<F>(real)();
    if (fault) return std::unexpected(fault->error);
    return result;
  }

 private:
  struct Armed {
    int at_call = 0;  // the call count at which it strikes (not `every`)
    bool every = false;
    Error error;
    FaultTiming timing = FaultTiming::kBefore;
  };
  mutable std::mutex mu_;
  std::map<Op, int> calls_;
  std::map<Op, int> injected_;
  std::map<Op, Armed> armed_;
};

}  // namespace qiao::testing
