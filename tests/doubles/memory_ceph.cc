#include "tests/doubles/memory_ceph.h"

namespace qiao {

class MemoryCeph::Client final : public RadosCluster {
 public:
  Client(MemoryCeph& ceph, uint64_t id)
      : ceph_(ceph),
        name_("client." + std::to_string(id)),
        address_("127.0.0.1:0/" + std::to_string(id * 7919)) {}

  Status ping() override {
    std::lock_guard lock(ceph_.mutex_);
    return usable();
  }
  Result<std::string> clientAddress() override {
    std::lock_guard lock(ceph_.mutex_);
    if (auto ok = usable(); !ok) return std::unexpected(ok.error());
    return address_;
  }
  Status blocklistAdd(const std::string& address, std::chrono::seconds expire) override {
    std::lock_guard lock(ceph_.mutex_);
    if (auto ok = usable(); !ok) return ok;
    ceph_.blocklist_[address] = "+" + std::to_string(expire.count()) + "s";
    return {};
  }
  Status blocklistRemove(const std::string& address) override {
    std::lock_guard lock(ceph_.mutex_);
    if (auto ok = usable(); !ok) return ok;
    if (ceph_.blocklist_.erase(address) == 0) {
      return makeError(ErrorCode::kNotFound, "ceph", address + " is not blocklisted");
    }
    return {};
  }
  Result<std::vector<BlocklistEntry>> blocklist() override {
    std::lock_guard lock(ceph_.mutex_);
    if (auto ok = usable(); !ok) return std::unexpected(ok.error());
    std::vector<BlocklistEntry> out;
    for (const auto& [address, until] : ceph_.blocklist_) out.push_back({address, until});
    return out;
  }
  Status lock(const RadosObject& object, const std::string& lock_name, const std::string& cookie,
              const std::string&, std::chrono::seconds duration) override {
    std::lock_guard lock(ceph_.mutex_);
    if (auto ok = usable(); !ok) return ok;
    const std::string key = keyOf(object, lock_name);
    auto held = current(key);
    if (held && !(held->holder.client == name_ && held->holder.cookie == cookie)) {
      return makeError(ErrorCode::kConflict, "ceph",
                       "lock " + lock_name + " on " + object.describe() + " is held by " +
                           held->holder.client + " (" + held->holder.address + ")");
    }
    Lock& l = ceph_.locks_[key];
    l.holder = {name_, cookie, address_};
    l.expires.reset();
    if (duration.count() > 0) l.expires = ceph_.clock_.now() + duration;
    return {};
  }
  Status unlock(const RadosObject& object, const std::string& lock_name,
                const std::string& cookie) override {
    std::lock_guard lock(ceph_.mutex_);
    if (auto ok = usable(); !ok) return ok;
    const std::string key = keyOf(object, lock_name);
    auto held = current(key);
    if (!held || held->holder.client != name_ || held->holder.cookie != cookie) {
      return makeError(ErrorCode::kNotFound, "ceph",
                       "cannot unlock " + lock_name + " on " + object.describe() +
                           ": No such file or directory");
    }
    ceph_.locks_.erase(key);
    return {};
  }
  Status breakLock(const RadosObject& object, const std::string& lock_name,
                   const LockHolder& holder) override {
    std::lock_guard lock(ceph_.mutex_);
    if (auto ok = usable(); !ok) return ok;
    const std::string key = keyOf(object, lock_name);
    auto held = current(key);
    if (!held || held->holder.client != holder.client || held->holder.cookie != holder.cookie) {
      return makeError(ErrorCode::kNotFound, "ceph",
                       "cannot break " + holder.client + "'s lock " + lock_name + " on " +
                           object.describe() + ": No such file or directory");
    }
    ceph_.locks_.erase(key);
    return {};
  }
  Result<std::vector<LockHolder>> lockers(const RadosObject& object,
                                          const std::string& lock_name) override {
    std::lock_guard lock(ceph_.mutex_);
    if (auto ok = usable(); !ok) return std::unexpected(ok.error());
    auto held = current(keyOf(object, lock_name));
    if (!held) return std::vector<LockHolder>{};
    return std::vector<LockHolder>{held->holder};
  }

 private:
  // ceph_.mutex_ held.
  Status usable() const {
    if (!ceph_.reachable_) {
      return makeError(ErrorCode::kUnavailable, "ceph", "cannot reach the Ceph monitors");
    }
    if (ceph_.blocklist_.count(address_)) {
      return makeError(ErrorCode::kUnavailable, "ceph",
                       "this client is blocklisted: Cannot send after transport endpoint "
                       "shutdown");
    }
    return {};
  }
  static std::string keyOf(const RadosObject& o, const std::string& lock_name) {
    return o.pool + "/" + o.ns + "/" + o.name + "\n" + lock_name;
  }
  // The lock under `key` unless it has expired (an expired one is gone, as the OSD treats it).
  std::optional<Lock> current(const std::string& key) {
    auto it = ceph_.locks_.find(key);
    if (it == ceph_.locks_.end()) return std::nullopt;
    if (it->second.expires && ceph_.clock_.now() >= *it->second.expires) {
      ceph_.locks_.erase(it);
      return std::nullopt;
    }
    return it->second;
  }

  MemoryCeph& ceph_;
  std::string name_, address_;
};

std::unique_ptr<RadosCluster> MemoryCeph::client() {
  std::lock_guard lock(mutex_);
  return std::make_unique<Client>(*this, ++next_id_);
}

void MemoryCeph::setReachable(bool reachable) {
  std::lock_guard lock(mutex_);
  reachable_ = reachable;
}

}  // namespace qiao
