#include "tests/doubles/memory_ceph.h"

namespace qiao {

class MemoryCeph::Client final : public RadosCluster {
 public:
  Client(MemoryCeph& ceph, uint64_t id, const std::string& ip)
      : ceph_(ceph),
        name_("client." + std::to_string(id)),
        ip_(ip),
        address_(ip + ":0/" + std::to_string(id * 7919)) {}

  Status ping() override {
    std::lock_guard lock(ceph_.mutex_);
    return usable();
  }
  Result<std::string> clientAddress() override {
    std::lock_guard lock(ceph_.mutex_);
    if (auto ok = usable(); !ok) return std::unexpected(ok.error());
    return address_;
  }
  // As on Ceph, the fenced client's watches break at once.
  Status blocklistAdd(const std::string& address, std::chrono::seconds expire) override {
    std::vector<std::shared_ptr<Watcher>> broken;
    {
      std::lock_guard lock(ceph_.mutex_);
      if (auto ok = usable(); !ok) return ok;
      ceph_.blocklist_[address] = "+" + std::to_string(expire.count()) + "s";
      broken = ceph_.breakWatches(
          [&](const Watcher& w) { return w.address == address || w.ip + ":0/0" == address; });
    }
    for (const auto& w : broken) w->on_event({WatchEvent::Kind::kBroken, ""});
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
    ceph_.objects_.try_emplace(objectKey(object));
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

  Result<uint64_t> omapWrite(const RadosObject& object, const OmapWrite& w) override {
    std::lock_guard lock(ceph_.mutex_);
    if (auto ok = usable(); !ok) return std::unexpected(ok.error());
    const std::string key = objectKey(object);
    auto it = ceph_.objects_.find(key);
    const bool exists = it != ceph_.objects_.end();
    auto refuse = [&](const std::string& why) {
      return std::unexpected(makeError(ErrorCode::kConflict, "ceph",
                                       "write to " + object.describe() + " refused: " + why));
    };
    if (w.create && (w.must_exist || w.version)) {
      return std::unexpected(
          makeError(ErrorCode::kInvalidArgument, "ceph",
                    "a write to " + object.describe() +
                        " cannot both create the object and require it to exist"));
    }
    if (w.create && exists) return refuse("the object exists");
    if ((w.must_exist || w.version) && !exists) {
      return std::unexpected(makeError(ErrorCode::kNotFound, "ceph",
                                       object.describe() + ": No such file or directory"));
    }
    if (w.version && it->second.version != *w.version) {
      return refuse("its version is " + std::to_string(it->second.version) + ", not " +
                    std::to_string(*w.version));
    }
    for (const auto& guard : w.guards) {
      std::string stored;
      if (exists) {
        auto entry = it->second.omap.find(guard.key);
        if (entry != it->second.omap.end()) stored = entry->second;
      }
      if (stored != guard.value) return refuse("entry " + guard.key + " has changed");
    }
    if (w.epoch && exists) {
      auto e = it->second.epochs.find(w.epoch->xattr);
      if (e != it->second.epochs.end() && e->second > w.epoch->epoch) {
        return refuse(w.epoch->xattr + " " + std::to_string(e->second) + " is newer than " +
                      std::to_string(w.epoch->epoch));
      }
    }
    for (const auto& [k, v] : w.set) {
      if (v.empty()) {
        return std::unexpected(
            makeError(ErrorCode::kInternal, "ceph", "empty value for entry " + k));
      }
    }
    Object& o = ceph_.objects_[key];
    for (const auto& [k, v] : w.set) o.omap[k] = v;
    for (const auto& k : w.remove) o.omap.erase(k);
    if (w.epoch) o.epochs[w.epoch->xattr] = w.epoch->epoch;
    return ++o.version;
  }

  Result<OmapPage> omapRead(const RadosObject& object, const std::string& after,
                            const std::string& prefix, size_t max) override {
    std::lock_guard lock(ceph_.mutex_);
    auto o = existing(object);
    if (!o) return std::unexpected(o.error());
    OmapPage page;
    page.version = (*o)->version;
    auto it = after.empty() ? (*o)->omap.lower_bound(prefix) : (*o)->omap.upper_bound(after);
    for (; it != (*o)->omap.end(); ++it) {
      if (!it->first.starts_with(prefix)) {
        if (it->first > prefix) break;
        continue;
      }
      if (page.entries.size() == max) {
        page.more = true;
        break;
      }
      page.entries.insert(*it);
    }
    return page;
  }

  Result<OmapPage> omapGet(const RadosObject& object,
                           const std::vector<std::string>& keys) override {
    std::lock_guard lock(ceph_.mutex_);
    auto o = existing(object);
    if (!o) return std::unexpected(o.error());
    OmapPage page;
    page.version = (*o)->version;
    for (const auto& k : keys) {
      auto it = (*o)->omap.find(k);
      if (it != (*o)->omap.end()) page.entries.insert(*it);
    }
    return page;
  }

  Result<uint64_t> epochOf(const RadosObject& object, const std::string& xattr) override {
    std::lock_guard lock(ceph_.mutex_);
    auto o = existing(object);
    if (!o) return std::unexpected(o.error());
    auto it = (*o)->epochs.find(xattr);
    return it == (*o)->epochs.end() ? 0 : it->second;
  }

  // As on Ceph, the object's watches break.
  Status removeObject(const RadosObject& object) override {
    std::vector<std::shared_ptr<Watcher>> broken;
    {
      std::lock_guard lock(ceph_.mutex_);
      if (auto ok = usable(); !ok) return ok;
      const std::string key = objectKey(object);
      if (ceph_.objects_.erase(key) > 0) {
        broken = ceph_.breakWatches([&](const Watcher& w) { return w.object == key; });
      }
    }
    for (const auto& w : broken) w->on_event({WatchEvent::Kind::kBroken, ""});
    return {};
  }

  Result<std::vector<std::string>> listObjects(const std::string& pool,
                                               const std::string& ns) override {
    std::lock_guard lock(ceph_.mutex_);
    if (auto ok = usable(); !ok) return std::unexpected(ok.error());
    const std::string prefix = pool + "\n" + ns + "\n";
    std::vector<std::string> names;
    for (auto it = ceph_.objects_.lower_bound(prefix);
         it != ceph_.objects_.end() && it->first.starts_with(prefix); ++it) {
      names.push_back(it->first.substr(prefix.size()));
    }
    return names;
  }

  Result<std::unique_ptr<RadosWatch>> watch(
      const RadosObject& object, std::function<void(const WatchEvent&)> on_event) override {
    std::lock_guard lock(ceph_.mutex_);
    if (auto ok = usable(); !ok) return std::unexpected(ok.error());
    const std::string key = objectKey(object);
    ceph_.objects_.try_emplace(key);
    auto watcher =
        std::make_shared<Watcher>(Watcher{key, ip_, address_, std::move(on_event), false});
    const uint64_t id = ++ceph_.next_watch_;
    ceph_.watchers_[id] = watcher;
    return std::unique_ptr<RadosWatch>(std::make_unique<Watch>(ceph_, id, watcher));
  }

  Status notify(const RadosObject& object, const std::string& payload,
                std::chrono::milliseconds) override {
    std::vector<std::shared_ptr<Watcher>> targets;
    {
      std::lock_guard lock(ceph_.mutex_);
      if (auto ok = existing(object); !ok) return std::unexpected(ok.error());  // as on Ceph
      const std::string key = objectKey(object);
      for (const auto& [id, w] : ceph_.watchers_) {
        if (w->object == key && !w->broken && !ceph_.cut_off_.count(w->ip)) targets.push_back(w);
      }
    }
    for (const auto& w : targets) w->on_event({WatchEvent::Kind::kNotify, payload});
    return {};
  }
  Result<std::string> authGetOrCreate(const std::string& entity,
                                      const std::map<std::string, std::string>& caps) override {
    std::lock_guard lock(ceph_.mutex_);
    if (auto ok = usable(); !ok) return std::unexpected(ok.error());
    auto it = ceph_.users_.find(entity);
    if (it != ceph_.users_.end()) {
      if (it->second.caps != caps) {
        return makeError(ErrorCode::kConflict, "ceph",
                         "auth get-or-create: key for " + entity + " exists but caps do not match");
      }
      return it->second.key;
    }
    std::string key = "AQ" + std::to_string(ceph_.next_id_++) + "memorykey==";
    ceph_.users_[entity] = {key, caps};
    return key;
  }
  Status authRemove(const std::string& entity) override {
    std::lock_guard lock(ceph_.mutex_);
    if (auto ok = usable(); !ok) return ok;
    ceph_.users_.erase(entity);
    return {};
  }

 private:
  class Watch final : public RadosWatch {
   public:
    Watch(MemoryCeph& ceph, uint64_t id, std::shared_ptr<Watcher> watcher)
        : ceph_(ceph), id_(id), watcher_(std::move(watcher)) {}
    ~Watch() override {
      std::lock_guard lock(ceph_.mutex_);
      ceph_.watchers_.erase(id_);
    }
    Status check() override {
      std::lock_guard lock(ceph_.mutex_);
      if (watcher_->broken) {
        return makeError(ErrorCode::kUnavailable, "ceph", "the watch on the object broke");
      }
      return {};
    }

   private:
    MemoryCeph& ceph_;
    uint64_t id_;
    std::shared_ptr<Watcher> watcher_;
  };

  // ceph_.mutex_ held: the object, when Ceph is usable and it exists.
  Result<Object*> existing(const RadosObject& object) {
    if (auto ok = usable(); !ok) return std::unexpected(ok.error());
    auto it = ceph_.objects_.find(objectKey(object));
    if (it == ceph_.objects_.end()) {
      return std::unexpected(makeError(ErrorCode::kNotFound, "ceph",
                                       object.describe() + ": No such file or directory"));
    }
    return &it->second;
  }
  static std::string objectKey(const RadosObject& o) {
    return o.pool + "\n" + o.ns + "\n" + o.name;
  }

  // ceph_.mutex_ held.
  Status usable() const {
    if (!ceph_.reachable_ || ceph_.cut_off_.count(ip_)) {
      return makeError(ErrorCode::kUnavailable, "ceph", "cannot reach the Ceph monitors");
    }
    if (ceph_.blocklist_.count(address_) || ceph_.blocklist_.count(ip_ + ":0/0")) {
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
  std::string name_, ip_, address_;
};

std::unique_ptr<RadosCluster> MemoryCeph::client(const std::string& ip) {
  std::lock_guard lock(mutex_);
  return std::make_unique<Client>(*this, ++next_id_, ip);
}

std::optional<std::map<std::string, std::string>> MemoryCeph::userCaps(const std::string& entity) {
  std::lock_guard lock(mutex_);
  auto it = users_.find(entity);
  if (it == users_.end()) return std::nullopt;
  return it->second.caps;
}

void MemoryCeph::setReachable(bool reachable) {
  std::vector<std::shared_ptr<Watcher>> broken;
  {
    std::lock_guard lock(mutex_);
    reachable_ = reachable;
    if (!reachable) broken = breakWatches([](const Watcher&) { return true; });
  }
  for (const auto& w : broken) w->on_event({WatchEvent::Kind::kBroken, ""});
}

void MemoryCeph::setReachable(const std::string& ip, bool reachable) {
  std::vector<std::shared_ptr<Watcher>> broken;
  {
    std::lock_guard lock(mutex_);
    if (reachable) {
      cut_off_.erase(ip);
    } else {
      cut_off_.insert(ip);
      broken = breakWatches([&](const Watcher& w) { return w.ip == ip; });
    }
  }
  for (const auto& w : broken) w->on_event({WatchEvent::Kind::kBroken, ""});
}

std::vector<std::shared_ptr<MemoryCeph::Watcher>> MemoryCeph::breakWatches(
    const std::function<bool(const Watcher&)>& which) {
  std::vector<std::shared_ptr<Watcher>> broken;
  for (auto& [id, w] : watchers_) {
    if (!w->broken && which(*w)) {
      w->broken = true;
      broken.push_back(w);
    }
  }
  return broken;
}

}  // namespace qiao
