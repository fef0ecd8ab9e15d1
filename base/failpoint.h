// Failpoints: named places where a test can make qiaod die at once (SIGKILL to itself), to
// prove that every operation finishes or rolls back after a crash at any step. Names look
// like "vm.create/define:after".
//
// A Failpoints object is one node's set, not the process's: NodeServices owns one and gives it
// to the TaskEngine (which hits "<kind>/<step>:before|after|undo"), so that two simulated
// hosts in one test process are armed separately. The daemon arms its set from the
// environment variable QIAO_FAILPOINT (a comma-separated list of names; a production daemon
// never has it set) and dies when one is hit; a test may arm names later and give an action
// of its own instead of the SIGKILL.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace qiao {

class Failpoints {
 public:
  using Action = std::function<void(std::string_view name)>;

  // `armed` names; `action` runs when one is hit (null: log it and SIGKILL the process).
  explicit Failpoints(std::vector<std::string> armed = {}, Action action = nullptr);
  Failpoints(const Failpoints&) = delete;
  Failpoints& operator=(const Failpoints&) = delete;

  // The names in QIAO_FAILPOINT (none when it is not set).
  static std::vector<std::string> fromEnvironment();
  // A set with nothing armed, for components built without a node (tests, tools).
  static const Failpoints& none();

  void arm(std::string name);
  void disarm(std::string_view name);
  // Runs the action when `name` is armed. Cheap when nothing is armed.
  void hit(std::string_view name) const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> armed_;
  std::atomic<bool> any_{false};
  Action action_;
};

}  // namespace qiao
