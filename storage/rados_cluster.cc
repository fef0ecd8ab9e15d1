#include "storage/rados_cluster.h"

#include <rados/librados.h>
#include <sys/time.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

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

struct LibradosCluster::Impl {
  std::mutex mutex;
  rados_t cluster = nullptr;

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
    : options_(std::move(options)), impl_(std::make_unique<Impl>()) {}

LibradosCluster::~LibradosCluster() {
  if (impl_->cluster != nullptr) rados_shutdown(impl_->cluster);
}

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

}  // namespace qiao

// The object API over librados comes with the cluster store (issue 17, in progress): until
// then these answer kUnimplemented.
namespace qiao {
namespace {
auto notYet(const char* what) {
  return makeError(ErrorCode::kUnimplemented, "ceph", std::string(what) + " is not built yet");
}
}  // namespace
Result<uint64_t> LibradosCluster::omapWrite(const RadosObject&, const OmapWrite&) {
  return (notYet("omapWrite"));
}
Result<OmapPage> LibradosCluster::omapRead(const RadosObject&, const std::string&,
                                           const std::string&, size_t) {
  return (notYet("omapRead"));
}
Result<OmapPage> LibradosCluster::omapGet(const RadosObject&, const std::vector<std::string>&) {
  return (notYet("omapGet"));
}
Result<uint64_t> LibradosCluster::epochOf(const RadosObject&, const std::string&) {
  return (notYet("epochOf"));
}
Status LibradosCluster::removeObject(const RadosObject&) { return notYet("removeObject"); }
Result<std::vector<std::string>> LibradosCluster::listObjects(const std::string&,
                                                              const std::string&) {
  return (notYet("listObjects"));
}
Result<std::unique_ptr<RadosWatch>> LibradosCluster::watch(
    const RadosObject&, std::function<void(const WatchEvent&)>) {
  return (notYet("watch"));
}
Status LibradosCluster::notify(const RadosObject&, const std::string&, std::chrono::milliseconds) {
  return notYet("notify");
}
}  // namespace qiao
