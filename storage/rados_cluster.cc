#include "storage/rados_cluster.h"

#include <rados/librados.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string_view>

#include "base/files.h"
#include "base/log.h"
#include "storage/rados_handles.h"

namespace qiao {
namespace {

const Logger kLog("ceph");

// "[v2:127.0.0.1:0/123,v1:127.0.0.1:0/123]" -> "127.0.0.1:0/123"
std::string clientAddressOf(std::string addrs) {
  std::erase(addrs, '[');
  std::erase(addrs, ']');
  addrs = addrs.substr(0, addrs.find(','));
  if (auto colon = addrs.find(':');
      addrs.starts_with("v1:") || addrs.starts_with("v2:") || addrs.starts_with("any:")) {
    addrs = addrs.substr(colon + 1);
  }
  return addrs;
}

}  // namespace

Error cephError(int rc, const std::string& what, const std::string& subsystem) {
  const int e = rc < 0 ? -rc : rc;
  std::string message = what + ": " + std::strerror(e);
  ErrorCode code = ErrorCode::kInternal;
  switch (e) {
    case ENOENT: code = ErrorCode::kNotFound; break;
    case EEXIST:
    case EBUSY:
    case ENOTEMPTY: code = ErrorCode::kConflict; break;
    case ETIMEDOUT: code = ErrorCode::kTimeout; break;
    case ENOTCONN:
    case ESHUTDOWN:  // EBLOCKLISTED: this client was fenced
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH: code = ErrorCode::kUnavailable; break;
    case EPERM:
    case EACCES: message += " (the cephx user's capabilities do not allow it)"; break;
    default: break;
  }
  return Error{code, subsystem, std::move(message), {}};
}

std::string RadosObject::describe() const {
  return "RADOS object " + pool + "/" + (ns.empty() ? "" : ns + "/") + name;
}

// A notify sent in the background: what it needs until librados completes it.
struct PendingNotify {
  IoCtx io;
  rados_completion_t completion = nullptr;
  char* reply = nullptr;
  size_t reply_len = 0;
  std::string object;
  PendingNotify() = default;
  PendingNotify(const PendingNotify&) = delete;
  PendingNotify& operator=(const PendingNotify&) = delete;
  ~PendingNotify() {
    if (completion != nullptr) {
      rados_aio_wait_for_complete(completion);
      rados_aio_release(completion);
    }
    rados_buffer_free(reply);
  }
};

struct LibradosCluster::Impl {
  std::mutex mutex;
  rados_t cluster = nullptr;
  std::mutex notifies_mutex;
  std::list<std::unique_ptr<PendingNotify>> notifies;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    notifies.clear();  // each waits for its completion: before the connection goes
    if (cluster != nullptr) rados_shutdown(cluster);
  }

  // Forgets the notifies librados completed. notifies_mutex held.
  void reapNotifiesLocked() {
    for (auto it = notifies.begin(); it != notifies.end();) {
      if (!rados_aio_is_complete((*it)->completion)) {
        ++it;
        continue;
      }
      const int rc = rados_aio_get_return_value((*it)->completion);
      if (rc < 0 && rc != -ETIMEDOUT) {
        kLog.warn("a change was not announced",
                  {{"object", (*it)->object}, {"error", cephError(rc, "notify").message}});
      }
      it = notifies.erase(it);
    }
  }

  // Runs a monitor command (JSON); its output and status text.
  Result<std::string> monCommand(const nlohmann::json& command, std::string* status = nullptr) {
    const std::string text = command.dump();
    const char* cmd[] = {text.c_str()};
    char* out = nullptr;
    size_t out_len = 0;
    char* outs = nullptr;
    size_t outs_len = 0;
    int rc = rados_mon_command(cluster, cmd, 1, "", 0, &out, &out_len, &outs, &outs_len);
    std::string result(out ? out : "", out_len);
    std::string said(outs ? outs : "", outs_len);
    rados_buffer_free(out);
    rados_buffer_free(outs);
    if (status) *status = said;
    if (rc < 0) {
      return std::unexpected(cephError(rc, command.value("prefix", std::string("monitor command")) +
                                               (said.empty() ? std::string() : " (" + said + ")")));
    }
    return result;
  }
};

LibradosCluster::LibradosCluster(CephClientOptions options)
    : options_(std::move(options)), impl_(std::make_shared<Impl>()) {}

LibradosCluster::~LibradosCluster() = default;

Result<void*> LibradosCluster::handle() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->cluster != nullptr) return impl_->cluster;
  rados_t cluster = nullptr;
  const std::string name = "client." + options_.user;
  if (int rc = rados_create2(&cluster, "ceph", name.c_str(), 0); rc < 0) {
    return std::unexpected(cephError(rc, "cannot create a Ceph client"));
  }
  auto fail = [&](int rc, const std::string& what) -> Result<void*> {
    rados_shutdown(cluster);
    Error error = cephError(rc, what);
    if (error.code == ErrorCode::kInternal || error.code == ErrorCode::kTimeout) {
      error.code = ErrorCode::kUnavailable;
    }
    return std::unexpected(error);
  };
  if (int rc = rados_conf_read_file(cluster, options_.conf.c_str()); rc < 0) {
    return fail(rc, "cannot read " + options_.conf);
  }
  const std::string timeout = std::to_string(options_.op_timeout_s);
  const std::pair<const char*, std::string> settings[] = {
      {"keyring", options_.keyring},     {"rados_mon_op_timeout", timeout},
      {"rados_osd_op_timeout", timeout}, {"client_mount_timeout", timeout},
      {"rbd_default_clone_format", "2"}, {"log_to_stderr", "false"},
      {"err_to_stderr", "false"},
  };
  for (const auto& [key, value] : settings) {
    if (value.empty()) continue;
    if (int rc = rados_conf_set(cluster, key, value.c_str()); rc < 0) {
      return fail(rc, std::string("cannot set Ceph option ") + key);
    }
  }
  if (int rc = rados_connect(cluster); rc < 0) {
    return fail(rc, "cannot connect to the Ceph cluster of " + options_.conf + " as " + name);
  }
  impl_->cluster = cluster;
  kLog.info("connected to Ceph", {{"conf", options_.conf}, {"user", name}});
  // The client of the previous run is fenced, and ours recorded for the next.
  if (!options_.instance_file.empty()) {
    char* addrs = nullptr;
    if (rados_getaddrs(cluster, &addrs) >= 0 && addrs != nullptr) {
      const std::string mine = clientAddressOf(addrs);
      std::free(addrs);
      std::string previous = readTextFile(options_.instance_file);
      previous = previous.substr(0, previous.find('\n'));
      if (!previous.empty() && previous != mine) {
        int rc = rados_blocklist_add(cluster, const_cast<char*>(previous.c_str()), 3600);
        kLog.info("fenced the Ceph client of the previous run",
                  {{"client", previous}, {"result", rc < 0 ? std::strerror(-rc) : "blocklisted"}});
      }
      (void)writeFileAtomic(options_.instance_file, mine + "\n", 0644);
    }
  }
  return impl_->cluster;
}

Status LibradosCluster::ping() {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  return {};
}

Result<uint64_t> LibradosCluster::instanceId() {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  return rados_get_instance_id(static_cast<rados_t>(*h));
}

Result<std::string> LibradosCluster::clientAddress() {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  char* addrs = nullptr;
  if (int rc = rados_getaddrs(static_cast<rados_t>(*h), &addrs); rc < 0 || addrs == nullptr) {
    return std::unexpected(cephError(rc < 0 ? rc : -ENOTCONN, "cannot read the client address"));
  }
  std::string out = clientAddressOf(addrs);
  std::free(addrs);
  return out;
}

Status LibradosCluster::blocklistAdd(const std::string& address, std::chrono::seconds expire) {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  int rc = rados_blocklist_add(static_cast<rados_t>(*h), const_cast<char*>(address.c_str()),
                               static_cast<uint32_t>(expire.count()));
  if (rc < 0) return std::unexpected(cephError(rc, "cannot blocklist " + address));
  return {};
}

Status LibradosCluster::blocklistRemove(const std::string& address) {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  std::string status;
  auto done = impl_->monCommand(
      {{"prefix", "osd blocklist"}, {"blocklistop", "rm"}, {"addr", address}}, &status);
  if (!done) return std::unexpected(done.error());
  // The monitors answer 0 with "... isn't blocklisted" for an address they do not hold.
  if (status.find("isn't blocklisted") != std::string::npos) {
    return makeError(ErrorCode::kNotFound, "ceph", address + " is not blocklisted");
  }
  return {};
}

Result<std::vector<BlocklistEntry>> LibradosCluster::blocklist() {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  auto out = impl_->monCommand({{"prefix", "osd blocklist ls"}, {"format", "json"}});
  if (!out) return std::unexpected(out.error());
  // One JSON array of addresses, then (Ceph 16 and later) one of ranges ("IP/BITS").
  std::vector<BlocklistEntry> entries;
  std::istringstream in(*out);
  while (in >> std::ws && in.peek() != EOF) {
    nlohmann::json list;
    try {
      in >> list;
    } catch (const nlohmann::json::exception&) {
      list = nullptr;
    }
    if (!list.is_array()) {
      return makeError(ErrorCode::kInternal, "ceph",
                       "osd blocklist ls: unexpected answer: " + out->substr(0, 200));
    }
    for (const auto& e : list) {
      if (!e.is_object()) continue;
      std::string address = e.value("addr", std::string());
      if (address.empty()) address = e.value("range", std::string());
      entries.push_back({address, e.value("until", std::string())});
    }
  }
  return entries;
}

namespace {

Status openIo(rados_t cluster, const RadosObject& object, IoCtx* io) {
  if (int rc = rados_ioctx_create(cluster, object.pool.c_str(), &io->io); rc < 0) {
    return std::unexpected(cephError(rc, "cannot open pool " + object.pool));
  }
  rados_ioctx_set_namespace(io->io, object.ns.c_str());
  return {};
}

}  // namespace

Status LibradosCluster::lock(const RadosObject& object, const std::string& lock_name,
                             const std::string& cookie, const std::string& description,
                             std::chrono::seconds duration) {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  IoCtx io;
  if (auto opened = openIo(static_cast<rados_t>(*h), object, &io); !opened) return opened;
  timeval tv{static_cast<time_t>(duration.count()), 0};
  int rc = rados_lock_exclusive(io.io, object.name.c_str(), lock_name.c_str(), cookie.c_str(),
                                description.c_str(), duration.count() > 0 ? &tv : nullptr,
                                LIBRADOS_LOCK_FLAG_MAY_RENEW);
  if (rc == -EBUSY || rc == -EEXIST) {
    std::string holder = "another client";
    if (auto held = lockers(object, lock_name); held && !held->empty()) {
      holder = held->front().client + " (" + held->front().address + ")";
    }
    return makeError(ErrorCode::kConflict, "ceph",
                     "lock " + lock_name + " on " + object.describe() + " is held by " + holder);
  }
  if (rc < 0) {
    return std::unexpected(cephError(rc, "cannot lock " + lock_name + " on " + object.describe()));
  }
  return {};
}

Status LibradosCluster::unlock(const RadosObject& object, const std::string& lock_name,
                               const std::string& cookie) {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  IoCtx io;
  if (auto opened = openIo(static_cast<rados_t>(*h), object, &io); !opened) return opened;
  int rc = rados_unlock(io.io, object.name.c_str(), lock_name.c_str(), cookie.c_str());
  if (rc < 0) {
    return std::unexpected(
        cephError(rc, "cannot unlock " + lock_name + " on " + object.describe()));
  }
  return {};
}

Status LibradosCluster::breakLock(const RadosObject& object, const std::string& lock_name,
                                  const LockHolder& holder) {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  IoCtx io;
  if (auto opened = openIo(static_cast<rados_t>(*h), object, &io); !opened) return opened;
  int rc = rados_break_lock(io.io, object.name.c_str(), lock_name.c_str(), holder.client.c_str(),
                            holder.cookie.c_str());
  if (rc < 0) {
    return std::unexpected(cephError(
        rc, "cannot break " + holder.client + "'s lock " + lock_name + " on " + object.describe()));
  }
  return {};
}

Result<std::vector<LockHolder>> LibradosCluster::lockers(const RadosObject& object,
                                                         const std::string& lock_name) {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  IoCtx io;
  if (auto opened = openIo(static_cast<rados_t>(*h), object, &io); !opened) {
    return std::unexpected(opened.error());
  }
  size_t sizes[4] = {256, 1024, 1024, 1024};  // tag, clients, cookies, addresses
  while (true) {
    std::string tag(sizes[0], '\0'), clients(sizes[1], '\0'), cookies(sizes[2], '\0'),
        addrs(sizes[3], '\0');
    int exclusive = 0;
    size_t tag_len = sizes[0], clients_len = sizes[1], cookies_len = sizes[2], addrs_len = sizes[3];
    ssize_t n = rados_list_lockers(io.io, object.name.c_str(), lock_name.c_str(), &exclusive,
                                   tag.data(), &tag_len, clients.data(), &clients_len,
                                   cookies.data(), &cookies_len, addrs.data(), &addrs_len);
    if (n == -ERANGE) {
      sizes[0] = std::max(sizes[0], tag_len) * 2;
      sizes[1] = std::max(sizes[1], clients_len) * 2;
      sizes[2] = std::max(sizes[2], cookies_len) * 2;
      sizes[3] = std::max(sizes[3], addrs_len) * 2;
      continue;
    }
    if (n == -ENOENT) return std::vector<LockHolder>{};  // no such object: nobody holds it
    if (n < 0) {
      return std::unexpected(
          cephError(static_cast<int>(n),
                    "cannot list the holders of " + lock_name + " on " + object.describe()));
    }
    // Each list is n NUL-terminated strings.
    std::vector<LockHolder> out(static_cast<size_t>(n));
    const char* c = clients.data();
    const char* k = cookies.data();
    const char* a = addrs.data();
    for (auto& holder : out) {
      holder.client = c;
      holder.cookie = k;
      holder.address = clientAddressOf(a);
      c += holder.client.size() + 1;
      k += holder.cookie.size() + 1;
      a += std::strlen(a) + 1;
    }
    return out;
  }
}

// ---- Objects with omap, epochs, watch/notify ------------------------------------------------
//
// What the OSDs do, checked on the test stack's Ceph 16.2.15 (the conformance suite of
// tests/unit/storage/rados_conformance.cc holds both this and MemoryCeph to it):
// - rados_write_op_cmpxattr compares the value given with the stored one as byte strings, the
//   given value on the left: LIBRADOS_CMPXATTR_OP_GTE passes when given >= stored (stored "5":
//   GTE "7" and GTE "5" pass, GTE "3" fails with ECANCELED; LTE the other way round).
//   (librados.h says rados_write_op_omap_cmp is the other way round.) An object without the xattr
//   compares as "": GTE anything passes, LTE anything but "" fails. On an object that does not
//   exist the compare fails with ENOENT, even after a rados_write_op_create in the same op.
// - rados_write_op_omap_cmp on a missing object fails with ENOENT; after an exclusive create in
//   the same op it runs, a missing key comparing as "". The failed compare's prval holds
//   -ECANCELED, the others' 0. rados_write_op_omap_rm_keys on a missing object: ENOENT.
// - assert_version: ERANGE when the object is newer than asserted, EOVERFLOW when older,
//   ENOENT when missing. A refused op leaves the object's version as it was.
// - An op whose last step is a cmpxattr that passed answers 1, not 0.
// - One omap read returns at most osd_max_omap_entries_per_request (1024) entries, "more" set.
// - A watch and a notify on a missing object answer ENOENT. Removing a watched object, or
//   blocklisting the watcher's client, breaks the watch at once: its error callback gets
//   ENOTCONN, rados_watch_check answers it, and unwatch answers ESHUTDOWN when blocklisted.
namespace {

// An epoch as stored in its xattr: 20 digits (every uint64_t), zero-padded, so that Ceph's
// string comparison orders epochs as numbers ("00..09" < "00..10"), and "" (no xattr) is below
// them all: the guard `ours GTE stored` lets a missing xattr pass.
std::string encodeEpoch(uint64_t epoch) {
  char text[24];
  std::snprintf(text, sizeof(text), "%020llu", static_cast<unsigned long long>(epoch));
  return text;
}

std::optional<uint64_t> decodeEpoch(std::string_view text) {
  uint64_t epoch = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), epoch);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return epoch;
}

// Keys (and values) as librados takes them; the strings must outlive it.
struct CStrings {
  std::vector<const char*> data;
  std::vector<size_t> sizes;
  void add(const std::string& s) {
    data.push_back(s.data());
    sizes.push_back(s.size());
  }
};

// A watch on one object, over an IoCtx of its own. The connection (LibradosCluster::Impl) is
// kept alive by it. It must not be destroyed from its own callback (unwatching waits for the
// callbacks in flight).
class LibradosWatch final : public RadosWatch {
 public:
  LibradosWatch(std::shared_ptr<void> connection, rados_t cluster, RadosObject object,
                std::function<void(const WatchEvent&)> on_event)
      : connection_(std::move(connection)),
        cluster_(cluster),
        object_(std::move(object)),
        on_event_(std::move(on_event)) {}
  LibradosWatch(const LibradosWatch&) = delete;
  LibradosWatch& operator=(const LibradosWatch&) = delete;

  ~LibradosWatch() override {
    if (registered_) {
      // A broken watch answers an error here (ESHUTDOWN once blocklisted): nothing to undo.
      rados_unwatch2(io_.io, cookie_);
      rados_watch_flush(cluster_);  // no callback runs on this object after it returns
    }
  }

  Status start() {
    if (auto opened = openIo(cluster_, object_, &io_); !opened) return opened;
    // A watch needs the object: it is made (empty) when missing. Removed between the two
    // steps, it is made again.
    for (int attempt = 0;; ++attempt) {
      WriteOp create;
      rados_write_op_create(create.op, LIBRADOS_CREATE_IDEMPOTENT, nullptr);
      int rc = rados_write_op_operate(create.op, io_.io, object_.name.c_str(), nullptr,
                                      LIBRADOS_OPERATION_NOFLAG);
      if (rc >= 0) {
        rc = rados_watch2(io_.io, object_.name.c_str(), &cookie_, &LibradosWatch::onNotify,
                          &LibradosWatch::onError, this);
      }
      if (rc == -ENOENT && attempt < 3) continue;
      if (rc < 0) return std::unexpected(cephError(rc, "cannot watch " + object_.describe()));
      registered_ = true;
      return {};
    }
  }

  Status check() override {
    int rc = error_.load();
    if (rc == 0) rc = rados_watch_check(io_.io, cookie_);  // ms since confirmed, or the error
    if (rc >= 0) return {};
    return makeError(ErrorCode::kUnavailable, "ceph",
                     "the watch on " + object_.describe() + " broke: " + std::strerror(-rc));
  }

 private:
  static void onNotify(void* arg, uint64_t notify_id, uint64_t cookie, uint64_t /*notifier*/,
                       void* data, size_t length) {
    auto* self = static_cast<LibradosWatch*>(arg);
    std::string payload;
    if (data != nullptr) payload.assign(static_cast<const char*>(data), length);
    self->on_event_({WatchEvent::Kind::kNotify, std::move(payload)});
    // Acked once handled: the notifier's notify() returns after the handlers ran.
    rados_notify_ack(self->io_.io, self->object_.name.c_str(), notify_id, cookie, nullptr, 0);
  }
  static void onError(void* arg, uint64_t /*cookie*/, int err) {
    auto* self = static_cast<LibradosWatch*>(arg);
    int none = 0;
    if (!self->error_.compare_exchange_strong(none, err < 0 ? err : -ENOTCONN)) return;
    kLog.info("watch broke",
              {{"object", self->object_.describe()}, {"error", std::strerror(-err)}});
    self->on_event_({WatchEvent::Kind::kBroken, ""});
  }

  std::shared_ptr<void> connection_;
  rados_t cluster_;
  RadosObject object_;
  std::function<void(const WatchEvent&)> on_event_;
  IoCtx io_;
  uint64_t cookie_ = 0;
  bool registered_ = false;
  std::atomic<int> error_{0};
};

std::unexpected<Error> refused(const RadosObject& object, const std::string& why) {
  return makeError(ErrorCode::kConflict, "ceph",
                   "write to " + object.describe() + " refused: " + why);
}

}  // namespace

Result<uint64_t> LibradosCluster::omapWrite(const RadosObject& object, const OmapWrite& write) {
  for (const auto& [key, value] : write.set) {
    if (value.empty()) {
      return makeError(ErrorCode::kInternal, "ceph",
                       "empty value for entry " + key + " of " + object.describe());
    }
  }
  if (write.create && (write.must_exist || write.version)) {
    return makeError(ErrorCode::kInvalidArgument, "ceph",
                     "a write to " + object.describe() +
                         " cannot both create the object and require it to exist");
  }
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  IoCtx io;
  if (auto opened = openIo(static_cast<rados_t>(*h), object, &io); !opened) {
    return std::unexpected(opened.error());
  }
  const std::string epoch = write.epoch ? encodeEpoch(write.epoch->epoch) : std::string();
  CStrings set_keys, set_values, remove_keys;
  for (const auto& [key, value] : write.set) {
    set_keys.add(key);
    set_values.add(value);
  }
  for (const auto& key : write.remove) remove_keys.add(key);

  // An existing object is guarded as it is; a missing one (when the write may make it) is made
  // by an exclusive create in the same op, without the epoch compare (ENOENT there, and its
  // epoch is 0) nor the removals (ENOENT, and it has no entries). If another writer makes it
  // meanwhile, the write is guarded again as against an existing object.
  bool creating = write.create;
  for (int attempt = 0; attempt < 8; ++attempt) {
    WriteOp op;
    if (creating) {
      rados_write_op_create(op.op, LIBRADOS_CREATE_EXCLUSIVE, nullptr);
    } else {
      rados_write_op_assert_exists(op.op);
    }
    if (write.version) rados_write_op_assert_version(op.op, *write.version);
    std::vector<int> guard_rc(write.guards.size(), 0);
    for (size_t i = 0; i < write.guards.size(); ++i) {
      const OmapGuard& guard = write.guards[i];
      rados_write_op_omap_cmp2(op.op, guard.key.data(), LIBRADOS_CMPXATTR_OP_EQ, guard.value.data(),
                               guard.key.size(), guard.value.size(), &guard_rc[i]);
    }
    if (write.epoch && !creating) {
      rados_write_op_cmpxattr(op.op, write.epoch->xattr.c_str(), LIBRADOS_CMPXATTR_OP_GTE,
                              epoch.data(), epoch.size());
    }
    if (!write.set.empty()) {
      rados_write_op_omap_set2(op.op, set_keys.data.data(), set_values.data.data(),
                               set_keys.sizes.data(), set_values.sizes.data(),
                               set_keys.data.size());
    }
    if (!write.remove.empty() && !creating) {
      rados_write_op_omap_rm_keys2(op.op, remove_keys.data.data(), remove_keys.sizes.data(),
                                   remove_keys.data.size());
    }
    if (write.epoch) {
      rados_write_op_setxattr(op.op, write.epoch->xattr.c_str(), epoch.data(), epoch.size());
    }
    const int rc = rados_write_op_operate(op.op, io.io, object.name.c_str(), nullptr,
                                          LIBRADOS_OPERATION_NOFLAG);
    if (rc >= 0) return rados_get_last_version(io.io);
    switch (-rc) {
      case ENOENT:
        if (creating || write.must_exist || write.version) break;
        creating = true;
        continue;
      case EEXIST:
        if (write.create) return refused(object, "the object exists");
        creating = false;
        continue;
      case ECANCELED: {
        for (size_t i = 0; i < write.guards.size(); ++i) {
          if (guard_rc[i] < 0)
            return refused(object, "entry " + write.guards[i].key + " has changed");
        }
        if (!write.epoch) break;
        std::string stored = "a newer one";
        if (auto now = epochOf(object, write.epoch->xattr); now) stored = std::to_string(*now);
        return refused(object, write.epoch->xattr + " " + stored + " is newer than " +
                                   std::to_string(write.epoch->epoch));
      }
      case ERANGE:
        return refused(object, "its version is newer than " + std::to_string(*write.version));
      case EOVERFLOW:
        return refused(object, "its version is older than " + std::to_string(*write.version));
      default: break;
    }
    return std::unexpected(cephError(rc, "cannot write to " + object.describe()));
  }
  return refused(object, "it was made and removed again while the write was tried");
}

Result<OmapPage> LibradosCluster::omapRead(const RadosObject& object, const std::string& after,
                                           const std::string& prefix, size_t max) {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  IoCtx io;
  if (auto opened = openIo(static_cast<rados_t>(*h), object, &io); !opened) {
    return std::unexpected(opened.error());
  }
  // An OSD answers at most osd_max_omap_entries_per_request entries a read: the page is read in
  // as many as it takes, each after the first asserting the version the first read. When the
  // object changed in between, the entries read so far are the page (with `more`): they are
  // those of one version.
  OmapPage page;
  std::string start = after;
  for (bool first = true;; first = false) {
    ReadOp op;
    OmapIter iter;
    unsigned char more = 0;
    int prval = 0;
    if (!first) rados_read_op_assert_version(op.op, page.version);
    rados_read_op_omap_get_vals2(op.op, start.c_str(), prefix.c_str(), max - page.entries.size(),
                                 &iter.it, &more, &prval);
    int rc = rados_read_op_operate(op.op, io.io, object.name.c_str(), LIBRADOS_OPERATION_NOFLAG);
    if (!first && (rc == -ERANGE || rc == -EOVERFLOW || rc == -ENOENT)) {
      page.more = true;
      return page;
    }
    if (rc >= 0 && prval < 0) rc = prval;
    if (rc < 0) {
      return std::unexpected(cephError(rc, "cannot read the entries of " + object.describe()));
    }
    if (first) page.version = rados_get_last_version(io.io);
    size_t got = 0;
    char* key = nullptr;
    char* value = nullptr;
    size_t key_len = 0;
    size_t value_len = 0;
    while (rados_omap_get_next2(iter.it, &key, &value, &key_len, &value_len) == 0 &&
           key != nullptr) {
      start.assign(key, key_len);
      page.entries.emplace(start, std::string(value, value_len));
      ++got;
    }
    page.more = more != 0;
    if (!page.more || page.entries.size() >= max || got == 0) return page;
  }
}

Result<OmapPage> LibradosCluster::omapGet(const RadosObject& object,
                                          const std::vector<std::string>& keys) {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  IoCtx io;
  if (auto opened = openIo(static_cast<rados_t>(*h), object, &io); !opened) {
    return std::unexpected(opened.error());
  }
  CStrings wanted;
  for (const auto& key : keys) wanted.add(key);
  ReadOp op;
  OmapIter iter;
  int prval = 0;
  rados_read_op_assert_exists(op.op);
  if (!keys.empty()) {
    rados_read_op_omap_get_vals_by_keys2(op.op, wanted.data.data(), wanted.data.size(),
                                         wanted.sizes.data(), &iter.it, &prval);
  }
  int rc = rados_read_op_operate(op.op, io.io, object.name.c_str(), LIBRADOS_OPERATION_NOFLAG);
  if (rc >= 0 && prval < 0) rc = prval;
  if (rc < 0) {
    return std::unexpected(cephError(rc, "cannot read the entries of " + object.describe()));
  }
  OmapPage page;
  page.version = rados_get_last_version(io.io);
  char* key = nullptr;
  char* value = nullptr;
  size_t key_len = 0;
  size_t value_len = 0;
  while (iter.it != nullptr &&
         rados_omap_get_next2(iter.it, &key, &value, &key_len, &value_len) == 0 && key != nullptr) {
    page.entries.emplace(std::string(key, key_len), std::string(value, value_len));
  }
  return page;
}

Result<uint64_t> LibradosCluster::epochOf(const RadosObject& object, const std::string& xattr) {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  IoCtx io;
  if (auto opened = openIo(static_cast<rados_t>(*h), object, &io); !opened) {
    return std::unexpected(opened.error());
  }
  char text[64];
  const int rc = rados_getxattr(io.io, object.name.c_str(), xattr.c_str(), text, sizeof(text));
  if (rc == -ENODATA) return 0;
  if (rc < 0 && rc != -ERANGE) {
    return std::unexpected(cephError(rc, "cannot read " + xattr + " of " + object.describe()));
  }
  auto epoch = rc < 0 ? std::nullopt : decodeEpoch({text, static_cast<size_t>(rc)});
  if (!epoch) {
    return makeError(ErrorCode::kInternal, "ceph",
                     "xattr " + xattr + " of " + object.describe() + " is not an epoch");
  }
  return *epoch;
}

Status LibradosCluster::removeObject(const RadosObject& object) {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  IoCtx io;
  if (auto opened = openIo(static_cast<rados_t>(*h), object, &io); !opened) return opened;
  const int rc = rados_remove(io.io, object.name.c_str());
  if (rc < 0 && rc != -ENOENT) {
    return std::unexpected(cephError(rc, "cannot remove " + object.describe()));
  }
  return {};
}

Result<std::vector<std::string>> LibradosCluster::listObjects(const std::string& pool,
                                                              const std::string& ns) {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  IoCtx io;
  const RadosObject where{pool, ns, ""};
  if (auto opened = openIo(static_cast<rados_t>(*h), where, &io); !opened) {
    return std::unexpected(opened.error());
  }
  const std::string what = "pool " + pool + (ns.empty() ? "" : " namespace " + ns);
  ListCtx list;
  if (int rc = rados_nobjects_list_open(io.io, &list.ctx); rc < 0) {
    return std::unexpected(cephError(rc, "cannot list the objects of " + what));
  }
  std::vector<std::string> names;
  while (true) {
    const char* entry = nullptr;
    const char* key = nullptr;
    const char* nspace = nullptr;
    size_t entry_len = 0;
    size_t key_len = 0;
    size_t nspace_len = 0;
    int rc = rados_nobjects_list_next2(list.ctx, &entry, &key, &nspace, &entry_len, &key_len,
                                       &nspace_len);
    if (rc == -ENOENT) break;  // the end
    if (rc < 0) return std::unexpected(cephError(rc, "cannot list the objects of " + what));
    names.emplace_back(entry, entry_len);
  }
  std::sort(names.begin(), names.end());  // PGs answer in hash order
  return names;
}

Result<std::unique_ptr<RadosWatch>> LibradosCluster::watch(
    const RadosObject& object, std::function<void(const WatchEvent&)> on_event) {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  auto watch =
      std::make_unique<LibradosWatch>(impl_, static_cast<rados_t>(*h), object, std::move(on_event));
  if (auto started = watch->start(); !started) return std::unexpected(started.error());
  return std::unique_ptr<RadosWatch>(std::move(watch));
}

Status LibradosCluster::notify(const RadosObject& object, const std::string& payload,
                               std::chrono::milliseconds timeout) {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  IoCtx io;
  if (auto opened = openIo(static_cast<rados_t>(*h), object, &io); !opened) return opened;
  char* reply = nullptr;  // who acked and who did not: set even when some did not
  size_t reply_len = 0;
  const int rc = rados_notify2(
      io.io, object.name.c_str(), payload.data(), static_cast<int>(payload.size()),
      static_cast<uint64_t>(std::max<int64_t>(timeout.count(), 1)), &reply, &reply_len);
  rados_buffer_free(reply);
  if (rc == -ETIMEDOUT) return {};  // a watcher that did not ack re-reads once its watch breaks
  if (rc < 0)
    return std::unexpected(cephError(rc, "cannot notify the watchers of " + object.describe()));
  return {};
}

void RadosCluster::notifyInBackground(const RadosObject& object, const std::string& payload,
                                      std::chrono::milliseconds timeout) {
  if (auto told = notify(object, payload, timeout); !told) {
    kLog.warn("a change was not announced",
              {{"object", object.describe()}, {"error", told.error().message}});
  }
}

void LibradosCluster::notifyInBackground(const RadosObject& object, const std::string& payload,
                                         std::chrono::milliseconds timeout) {
  auto h = handle();
  if (!h) {
    kLog.warn("a change was not announced",
              {{"object", object.describe()}, {"error", h.error().message}});
    return;
  }
  auto pending = std::make_unique<PendingNotify>();
  pending->object = object.describe();
  Status sent = openIo(static_cast<rados_t>(*h), object, &pending->io);
  if (sent && rados_aio_create_completion2(nullptr, nullptr, &pending->completion) < 0) {
    pending->completion = nullptr;
    sent = makeError(ErrorCode::kInternal, "ceph", "cannot make a completion");
  }
  if (sent) {
    const int rc = rados_aio_notify(pending->io.io, object.name.c_str(), pending->completion,
                                    payload.data(), static_cast<int>(payload.size()),
                                    static_cast<uint64_t>(std::max<int64_t>(timeout.count(), 1)),
                                    &pending->reply, &pending->reply_len);
    if (rc < 0) {
      rados_aio_release(pending->completion);
      pending->completion = nullptr;
      sent = std::unexpected(cephError(rc, "cannot notify the watchers of " + object.describe()));
    }
  }
  if (!sent) {
    kLog.warn("a change was not announced",
              {{"object", object.describe()}, {"error", sent.error().message}});
    return;
  }
  std::lock_guard lock(impl_->notifies_mutex);
  impl_->reapNotifiesLocked();
  impl_->notifies.push_back(std::move(pending));
}

Result<std::string> LibradosCluster::authGetOrCreate(
    const std::string& entity, const std::map<std::string, std::string>& caps) {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  nlohmann::json flat = nlohmann::json::array();
  for (const auto& [daemon, cap] : caps) {
    flat.push_back(daemon);
    flat.push_back(cap);
  }
  auto out = impl_->monCommand(
      {{"prefix", "auth get-or-create"}, {"entity", entity}, {"caps", flat}, {"format", "json"}});
  if (!out) {
    Error e = out.error();
    // "key for client.x exists but cap mon does not match"
    if (e.message.find("does not match") != std::string::npos) e.code = ErrorCode::kConflict;
    return std::unexpected(std::move(e));
  }
  auto parsed = nlohmann::json::parse(*out, nullptr, false);
  if (parsed.is_array() && !parsed.empty() && parsed[0].is_object() &&
      parsed[0].value("key", std::string()).size() > 0) {
    return parsed[0]["key"].get<std::string>();
  }
  return makeError(ErrorCode::kInternal, "ceph",
                   "auth get-or-create " + entity + " answered without a key");
}

Status LibradosCluster::authRemove(const std::string& entity) {
  auto h = handle();
  if (!h) return std::unexpected(h.error());
  auto done = impl_->monCommand({{"prefix", "auth rm"}, {"entity", entity}});
  if (!done && done.error().code != ErrorCode::kNotFound) return std::unexpected(done.error());
  return {};
}

}  // namespace qiao
