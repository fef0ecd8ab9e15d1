// Slots: what callers hold at once under caps (uploads per tenant, event streams per
// identity). A slot is taken only when the caller's check of the counts allows it, and given
// back when the handle it comes with goes. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace qiao {

class Slots {
 public:
  struct Counts {
    int mine = 0;   // slots `key` holds
    int total = 0;  // slots all keys hold
  };
  // A slot for `key` when `allowed(counts before taking it)`, else null; `seen` gets the
  // counts it was judged on. The handle gives the slot back when the last copy goes.
  std::shared_ptr<void> take(const std::string& key, const std::function<bool(Counts)>& allowed,
                             Counts* seen);
  // Slots `key` holds now.
  int held(const std::string& key);

 private:
  void give(const std::string& key);
  std::mutex mu_;
  int total_ = 0;
  std::map<std::string, int> by_key_;
};

}  // namespace qiao
