// LibvirtHypervisor: Hypervisor on the libvirt C API (node/vm/qmp holds the other users of libvirt:
// its event loop and the QMP passthrough).
//
// One connection, shared by the worker threads (libvirt connections are thread-safe), owned
// here and replaced by a background reconnect loop when libvirtd goes away. libvirt's default
// event loop runs on one process-wide thread; lifecycle, reboot and close callbacks arrive
// there and are handed to the event handler as DomainEvents.
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "base/handle.h"
#include "base/log.h"
#include "node/vm/domain.h"
#include "node/vm/qmp/libvirt_event_loop.h"
#include "node/vm/hypervisor.h"

namespace qiao {
namespace {

const Logger kLog("libvirt");

using ConnPtr = CPtr<virConnect, virConnectClose>;
using DomPtr = CPtr<virDomain, virDomainFree>;

std::string versionText(unsigned long v) {
  return std::to_string(v / 1000000) + "." + std::to_string((v / 1000) % 1000) + "." +
         std::to_string(v % 1000);
}

DomainState mapState(int state) {
  switch (state) {
    case VIR_DOMAIN_RUNNING: return DomainState::kRunning;
    case VIR_DOMAIN_BLOCKED: return DomainState::kBlocked;
    case VIR_DOMAIN_PAUSED: return DomainState::kPaused;
    case VIR_DOMAIN_SHUTDOWN: return DomainState::kShutdown;
    case VIR_DOMAIN_SHUTOFF: return DomainState::kShutoff;
    case VIR_DOMAIN_CRASHED: return DomainState::kCrashed;
    case VIR_DOMAIN_PMSUSPENDED: return DomainState::kPmSuspended;
    default: return DomainState::kNoState;
  }
}

// The one mapping of libvirt errors to Qiao's, at the edge.
Error lastError(const std::string& what) {
  virErrorPtr err = virGetLastError();
  ErrorCode code = ErrorCode::kInternal;
  std::string message = err && err->message ? err->message : "unknown libvirt error";
  if (err != nullptr) {
    switch (err->code) {
      case VIR_ERR_NO_DOMAIN:
      case VIR_ERR_NO_DOMAIN_METADATA:
        code = ErrorCode::kNotFound;
        break;
      case VIR_ERR_OPERATION_INVALID:
      case VIR_ERR_OPERATION_DENIED:
        code = ErrorCode::kConflict;
        break;
      case VIR_ERR_OPERATION_TIMEOUT:
        code = ErrorCode::kTimeout;
        break;
      case VIR_ERR_XML_ERROR:
      case VIR_ERR_XML_DETAIL:
      case VIR_ERR_INVALID_ARG:
      case VIR_ERR_CONFIG_UNSUPPORTED:
        code = ErrorCode::kInvalidArgument;
        break;
      case VIR_ERR_SYSTEM_ERROR:
      case VIR_ERR_RPC:
      case VIR_ERR_NO_CONNECT:
      case VIR_ERR_INVALID_CONN:
      case VIR_ERR_AUTH_FAILED:
        code = ErrorCode::kUnavailable;
        break;
      default:
        break;
    }
  }
  virResetLastError();
  return Error{code, "libvirt", what + ": " + message, ""};
}

// The statistics groups Qiao reads (groups a driver does not have are left out, not refused).
constexpr unsigned int kStatsGroups = VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_CPU_TOTAL |
                                      VIR_DOMAIN_STATS_BALLOON | VIR_DOMAIN_STATS_VCPU |
                                      VIR_DOMAIN_STATS_INTERFACE | VIR_DOMAIN_STATS_BLOCK;

// A record's typed parameters, out of libvirt's types, then read by parseDomainStats.
DomainStats statsOf(const virDomainStatsRecord& record) {
  std::vector<DomainStatField> fields;
  fields.reserve(static_cast<size_t>(std::max(record.nparams, 0)));
  for (int p = 0; p < record.nparams; ++p) {
    const virTypedParameter& param = record.params[p];
    DomainStatField f;
    f.name = param.field;
    switch (param.type) {
      case VIR_TYPED_PARAM_INT:
        f.negative = param.value.i < 0;
        f.number = f.negative ? 0 : static_cast<uint64_t>(param.value.i);
        break;
      case VIR_TYPED_PARAM_UINT: f.number = param.value.ui; break;
      case VIR_TYPED_PARAM_LLONG:
        f.negative = param.value.l < 0;
        f.number = f.negative ? 0 : static_cast<uint64_t>(param.value.l);
        break;
      case VIR_TYPED_PARAM_ULLONG: f.number = param.value.ul; break;
      case VIR_TYPED_PARAM_DOUBLE:
        f.negative = param.value.d < 0;
        f.number = f.negative ? 0 : static_cast<uint64_t>(param.value.d);
        break;
      case VIR_TYPED_PARAM_BOOLEAN: f.number = param.value.b != 0 ? 1 : 0; break;
      case VIR_TYPED_PARAM_STRING:
        if (param.value.s != nullptr) f.text = param.value.s;
        break;
      default: continue;
    }
    fields.push_back(std::move(f));
  }
  const char* name = virDomainGetName(record.dom);
  return parseDomainStats(name != nullptr ? name : "", fields);
}

class LibvirtHypervisor final : public Hypervisor {
 public:
  explicit LibvirtHypervisor(LibvirtOptions options) : options_(std::move(options)) {
    ensureLibvirtEventLoop();
    if (!connect()) {
      kLog.warn("libvirt is not reachable; retrying in the background", {{"uri", options_.uri}});
      connected_before_ = true;  // so that the first success is announced as a restore
    }
    reconnector_ = std::thread(withLogScope([this] { reconnectLoop(); }));
  }

  ~LibvirtHypervisor() override { stop(); }

  void stop() override {
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;
      stopped_ = true;
    }
    cv_.notify_all();
    if (reconnector_.joinable()) reconnector_.join();
    ConnPtr conn;
    {
      std::lock_guard lock(mutex_);
      conn = std::move(conn_);
    }
    if (conn) unregister(conn.get());
  }

  Subscription subscribe(std::function<void(const DomainEvent&)> handler) override {
    const uint64_t id = events_.subscribe(std::move(handler));
    return Subscription([this, id] { events_.unsubscribe(id); });
  }

  Status migrate(const std::string& name, const MigrateOptions&) override {
    return makeError(ErrorCode::kUnimplemented, "libvirt",
                     "live migration of " + name + " comes with the cluster");
  }

  Result<HypervisorInfo> info() override {
    auto conn = connection();
    if (!conn) return std::unexpected(conn.error());
    HypervisorInfo info;
    info.uri = options_.uri;
    if (char* host = virConnectGetHostname(conn->get())) {
      info.hostname = host;
      free(host);
    }
    unsigned long lib = 0, hv = 0;
    if (virConnectGetLibVersion(conn->get(), &lib) == 0) info.libvirt_version = versionText(lib);
    if (virConnectGetVersion(conn->get(), &hv) == 0) info.qemu_version = versionText(hv);
    virResetLastError();
    return info;
  }

  Result<std::vector<DomainInfo>> listDomains() override {
    auto conn = connection();
    if (!conn) return std::unexpected(conn.error());
    virDomainPtr* domains = nullptr;
    int n = virConnectListAllDomains(conn->get(), &domains, 0);
    if (n < 0) return std::unexpected(failed("list domains"));
    std::vector<DomPtr> owned;
    for (int i = 0; i < n; ++i) owned.emplace_back(domains[i]);
    free(domains);
    std::vector<DomainInfo> out;
    for (auto& dom : owned) {
      auto info = describe(dom.get());
      if (info) out.push_back(std::move(*info));  // a domain gone meanwhile is skipped
    }
    return out;
  }

  Result<DomainInfo> lookup(const std::string& name) override {
    auto dom = find(name);
    if (!dom) return std::unexpected(dom.error());
    return describe(dom->get());
  }

  Status define(const std::string& xml) override {
    auto conn = connection();
    if (!conn) return std::unexpected(conn.error());
    DomPtr dom(virDomainDefineXML(conn->get(), xml.c_str()));
    if (!dom) return std::unexpected(failed("define domain"));
    return {};
  }

  Status start(const std::string& name) override {
    auto dom = find(name);
    if (!dom) return std::unexpected(dom.error());
    int active = virDomainIsActive(dom->get());
    if (active == 1) return {};
    if (virDomainCreate(dom->get()) < 0) return std::unexpected(failed("start " + name));
    return {};
  }

  Status shutdown(const std::string& name, int timeout_ms) override {
    auto dom = find(name);
    if (!dom) return std::unexpected(dom.error());
    if (virDomainIsActive(dom->get()) == 0) return {};
    if (virDomainShutdown(dom->get()) < 0) {
      Error e = failed("shutdown " + name);
      if (virDomainIsActive(dom->get()) == 0) return {};
      return std::unexpected(e);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      int state = 0, reason = 0;
      if (virDomainGetState(dom->get(), &state, &reason, 0) == 0 && state == VIR_DOMAIN_SHUTOFF) {
        return {};
      }
      virResetLastError();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return makeError(ErrorCode::kTimeout, "libvirt",
                     "vm " + name + " did not power off within " +
                         std::to_string(timeout_ms / 1000) +
                         " s after an ACPI shutdown; it keeps running (use force-stop)");
  }

  Status destroy(const std::string& name) override {
    auto dom = find(name);
    if (!dom) {
      return dom.error().code == ErrorCode::kNotFound ? Status{}
                                                      : Status(std::unexpected(dom.error()));
    }
    if (virDomainIsActive(dom->get()) == 0) return {};
    if (virDomainDestroy(dom->get()) < 0) {
      Error e = failed("force-stop " + name);
      if (virDomainIsActive(dom->get()) == 0) return {};
      return std::unexpected(e);
    }
    return {};
  }

  Status reboot(const std::string& name) override {
    auto dom = find(name);
    if (!dom) return std::unexpected(dom.error());
    if (virDomainReboot(dom->get(), 0) < 0) return std::unexpected(failed("reboot " + name));
    return {};
  }

  Status suspend(const std::string& name) override {
    auto dom = find(name);
    if (!dom) return std::unexpected(dom.error());
    int state = 0, reason = 0;
    if (virDomainGetState(dom->get(), &state, &reason, 0) == 0 && state == VIR_DOMAIN_PAUSED) {
      return {};
    }
    if (virDomainSuspend(dom->get()) < 0) return std::unexpected(failed("pause " + name));
    return {};
  }

  Status resume(const std::string& name) override {
    auto dom = find(name);
    if (!dom) return std::unexpected(dom.error());
    int state = 0, reason = 0;
    if (virDomainGetState(dom->get(), &state, &reason, 0) == 0 && state == VIR_DOMAIN_RUNNING) {
      return {};
    }
    if (virDomainResume(dom->get()) < 0) return std::unexpected(failed("resume " + name));
    return {};
  }

  Status undefine(const std::string& name) override {
    auto dom = find(name);
    if (!dom) {
      return dom.error().code == ErrorCode::kNotFound ? Status{}
                                                      : Status(std::unexpected(dom.error()));
    }
    if (virDomainIsPersistent(dom->get()) == 0) return {};
    unsigned int flags = VIR_DOMAIN_UNDEFINE_NVRAM | VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                         VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                         VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA;
    if (virDomainUndefineFlags(dom->get(), flags) == 0) return {};
    virResetLastError();
    // Drivers that do not know a flag (the test driver) take the plain call.
    if (virDomainUndefine(dom->get()) < 0) return std::unexpected(failed("undefine " + name));
    return {};
  }

  Status attachDevice(const std::string& name, const std::string& xml) override {
    auto dom = find(name);
    if (!dom) return std::unexpected(dom.error());
    if (virDomainAttachDeviceFlags(dom->get(), xml.c_str(), VIR_DOMAIN_AFFECT_LIVE) < 0) {
      return std::unexpected(failed("attach a device to " + name));
    }
    return {};
  }

  Status detachDevice(const std::string& name, const std::string& xml) override {
    auto dom = find(name);
    if (!dom) return std::unexpected(dom.error());
    if (virDomainDetachDeviceFlags(dom->get(), xml.c_str(), VIR_DOMAIN_AFFECT_LIVE) < 0) {
      return std::unexpected(failed("detach a device from " + name));
    }
    return {};
  }

  Status setVcpus(const std::string& name, int vcpus) override {
    auto dom = find(name);
    if (!dom) return std::unexpected(dom.error());
    if (virDomainSetVcpusFlags(dom->get(), static_cast<unsigned>(vcpus), VIR_DOMAIN_AFFECT_LIVE) ==
        0) {
      return {};
    }
    Error error = failed("set the vCPUs of " + name);
    if (error.code != ErrorCode::kTimeout) return std::unexpected(error);
    // libvirt waits 5 s for the guest to let a vCPU go; a slow guest (TCG) may take longer:
    // wait for it up to 30 s more before saying so.
    for (int i = 0; i < 300; ++i) {
      if (virDomainGetVcpusFlags(dom->get(), VIR_DOMAIN_AFFECT_LIVE) == vcpus) return {};
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    error.message = "the guest of " + name + " did not let its vCPUs go within 35 s (is its OS "
                    "up, and does it handle ACPI CPU hot-unplug?): " + error.message;
    return std::unexpected(error);
  }

  Status setMemory(const std::string& name, uint64_t kib) override {
    auto dom = find(name);
    if (!dom) return std::unexpected(dom.error());
    if (virDomainSetMemoryFlags(dom->get(), kib, VIR_DOMAIN_AFFECT_LIVE) < 0) {
      return std::unexpected(failed("set the memory of " + name));
    }
    return {};
  }

  Result<std::string> domainXml(const std::string& name) override {
    auto dom = find(name);
    if (!dom) return std::unexpected(dom.error());
    char* xml = virDomainGetXMLDesc(dom->get(), 0);
    if (xml == nullptr) return std::unexpected(failed("domain XML of " + name));
    std::string out(xml);
    free(xml);
    return out;
  }

  Result<std::vector<DomainStats>> stats() override {
    auto conn = connection();
    if (!conn) return std::unexpected(conn.error());
    virDomainStatsRecordPtr* records = nullptr;
    int n = virConnectGetAllDomainStats(conn->get(), kStatsGroups, &records, 0);
    if (n < 0) return std::unexpected(failed("domain stats"));
    std::vector<DomainStats> out;
    for (int i = 0; i < n; ++i) out.push_back(statsOf(*records[i]));
    virDomainStatsRecordListFree(records);
    return out;
  }

  Result<DomainStats> domainStats(const std::string& name) override {
    auto dom = find(name);
    if (!dom) return std::unexpected(dom.error());
    virDomainPtr doms[] = {dom->get(), nullptr};
    virDomainStatsRecordPtr* records = nullptr;
    int n = virDomainListGetStats(doms, kStatsGroups, &records, 0);
    if (n < 0) return std::unexpected(failed("stats of " + name));
    std::optional<DomainStats> out;
    if (n > 0) out = statsOf(*records[0]);
    virDomainStatsRecordListFree(records);
    if (!out) return makeError(ErrorCode::kNotFound, "libvirt", "no stats for domain " + name);
    return std::move(*out);
  }

 private:
  // A reference to the current connection, or kUnavailable while libvirt is away.
  Result<ConnPtr> connection() {
    std::lock_guard lock(mutex_);
    if (stopped_) return makeError(ErrorCode::kUnavailable, "libvirt", "qiaod is stopping");
    if (!conn_) {
      return makeError(ErrorCode::kUnavailable, "libvirt",
                       "libvirt at " + options_.uri + " is not reachable: " + last_connect_error_);
    }
    virConnectRef(conn_.get());
    return ConnPtr(conn_.get());
  }

  Result<DomPtr> find(const std::string& name) {
    auto conn = connection();
    if (!conn) return std::unexpected(conn.error());
    DomPtr dom(virDomainLookupByName(conn->get(), name.c_str()));
    if (!dom) return std::unexpected(failed("domain " + name));
    return dom;
  }

  // Maps the last error, and notices a connection that died under a call.
  Error failed(const std::string& what) {
    Error e = lastError(what);
    if (e.code == ErrorCode::kUnavailable) {
      std::unique_lock lock(mutex_);
      if (conn_ && virConnectIsAlive(conn_.get()) != 1) {
        virResetLastError();
        dropConnectionLocked(lock, "a call failed: " + e.message);
      }
    }
    return e;
  }

  Result<DomainInfo> describe(virDomainPtr dom) {
    DomainInfo info;
    if (const char* name = virDomainGetName(dom)) info.name = name;
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    if (virDomainGetUUIDString(dom, uuid) == 0) info.uuid = uuid;
    int state = 0, reason = 0;
    if (virDomainGetState(dom, &state, &reason, 0) < 0) {
      return std::unexpected(lastError("state of " + info.name));
    }
    info.state = mapState(state);
    info.persistent = virDomainIsPersistent(dom) == 1;
    char* md = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, kQiaoMetadataNs, 0);
    if (md != nullptr) {
      auto parsed = parseQiaoMetadata(md);
      free(md);
      if (parsed) {
        info.metadata = std::move(*parsed);
      } else {
        kLog.warn("domain has Qiao metadata that does not parse; treated as not Qiao's",
                  {{"domain", info.name}, {"error", parsed.error().message}});
      }
    }
    virResetLastError();
    return info;
  }

  void emit(const DomainEvent& event) {
    events_.publish(event);
  }

  static int onLifecycle(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
    auto* self = static_cast<LibvirtHypervisor*>(opaque);
    LogScope scope(self->log_sink_);  // on the process's event-loop thread
    DomainEvent e;
    e.domain = virDomainGetName(dom) ? virDomainGetName(dom) : "";
    switch (event) {
      case VIR_DOMAIN_EVENT_DEFINED: e.kind = DomainEventKind::kDefined; break;
      case VIR_DOMAIN_EVENT_UNDEFINED: e.kind = DomainEventKind::kUndefined; break;
      case VIR_DOMAIN_EVENT_STARTED: e.kind = DomainEventKind::kStarted; break;
      case VIR_DOMAIN_EVENT_SUSPENDED: e.kind = DomainEventKind::kSuspended; break;
      case VIR_DOMAIN_EVENT_RESUMED: e.kind = DomainEventKind::kResumed; break;
      case VIR_DOMAIN_EVENT_SHUTDOWN: e.kind = DomainEventKind::kShutdown; break;
      case VIR_DOMAIN_EVENT_PMSUSPENDED: e.kind = DomainEventKind::kSuspended; break;
      case VIR_DOMAIN_EVENT_CRASHED: e.kind = DomainEventKind::kCrashed; break;
      case VIR_DOMAIN_EVENT_STOPPED:
        e.kind = DomainEventKind::kStopped;
        switch (detail) {
          case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: e.detail = "shutdown"; break;
          case VIR_DOMAIN_EVENT_STOPPED_DESTROYED: e.detail = "destroyed"; break;
          case VIR_DOMAIN_EVENT_STOPPED_CRASHED: e.detail = "crashed"; break;
          case VIR_DOMAIN_EVENT_STOPPED_MIGRATED: e.detail = "migrated"; break;
          case VIR_DOMAIN_EVENT_STOPPED_SAVED: e.detail = "saved"; break;
          case VIR_DOMAIN_EVENT_STOPPED_FAILED: e.detail = "failed"; break;
          default: e.detail = "stopped"; break;
        }
        break;
      default:
        return 0;
    }
    self->emit(e);
    return 0;
  }

  static void onReboot(virConnectPtr, virDomainPtr dom, void* opaque) {
    auto* self = static_cast<LibvirtHypervisor*>(opaque);
    LogScope scope(self->log_sink_);  // on the process's event-loop thread
    DomainEvent e;
    e.kind = DomainEventKind::kRebooted;
    e.domain = virDomainGetName(dom) ? virDomainGetName(dom) : "";
    e.detail = "rebooted";
    self->emit(e);
  }

  static void onClose(virConnectPtr, int reason, void* opaque) {
    auto* self = static_cast<LibvirtHypervisor*>(opaque);
    LogScope scope(self->log_sink_);  // on the process's event-loop thread
    std::unique_lock lock(self->mutex_);
    self->dropConnectionLocked(lock, "connection closed (reason " + std::to_string(reason) + ")");
  }

  // Forgets the connection (the reconnect loop closes it and opens a new one).
  void dropConnectionLocked(std::unique_lock<std::mutex>& lock, const std::string& why) {
    if (!conn_ || stopped_) return;
    dead_.push_back(std::move(conn_));
    last_connect_error_ = why;
    connected_before_ = true;
    lock.unlock();
    kLog.warn("libvirt connection lost", {{"uri", options_.uri}, {"why", why}});
    cv_.notify_all();
    emit({DomainEventKind::kConnectionLost, "", why});
    lock.lock();
  }

  void unregister(virConnectPtr conn) {
    if (lifecycle_id_ >= 0) virConnectDomainEventDeregisterAny(conn, lifecycle_id_);
    if (reboot_id_ >= 0) virConnectDomainEventDeregisterAny(conn, reboot_id_);
    virConnectUnregisterCloseCallback(conn, onClose);
    lifecycle_id_ = reboot_id_ = -1;
    virResetLastError();
  }

  // Opens a connection and registers the callbacks. True on success.
  bool connect() {
    ConnPtr conn(virConnectOpen(options_.uri.c_str()));
    if (!conn) {
      Error e = lastError("connect");
      std::lock_guard lock(mutex_);
      last_connect_error_ = e.message;
      return false;
    }
    // The test driver has no keepalive; that is fine.
    virConnectSetKeepAlive(conn.get(), options_.keepalive_interval_s,
                           static_cast<unsigned int>(options_.keepalive_count));
    virResetLastError();
    lifecycle_id_ = virConnectDomainEventRegisterAny(
        conn.get(), nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
        VIR_DOMAIN_EVENT_CALLBACK(onLifecycle), this, nullptr);
    reboot_id_ = virConnectDomainEventRegisterAny(conn.get(), nullptr, VIR_DOMAIN_EVENT_ID_REBOOT,
                                                  VIR_DOMAIN_EVENT_CALLBACK(onReboot), this,
                                                  nullptr);
    virConnectRegisterCloseCallback(conn.get(), onClose, this, nullptr);
    virResetLastError();
    std::lock_guard lock(mutex_);
    conn_ = std::move(conn);
    return true;
  }

  void reconnectLoop() {
    int backoff_ms = 100;
    std::unique_lock lock(mutex_);
    for (;;) {
      cv_.wait(lock, [this] { return stopped_ || !conn_ || !dead_.empty(); });
      if (stopped_) break;
      // Close what died, outside the lock (virConnectClose may call back).
      auto dead = std::move(dead_);
      dead_.clear();
      lock.unlock();
      for (auto& d : dead) unregister(d.get());
      dead.clear();
      bool ok = false;
      {
        std::lock_guard check(mutex_);
        ok = conn_ != nullptr;
      }
      if (!ok) ok = connect();
      if (ok) {
        if (connected_before_.exchange(false)) {
          kLog.info("libvirt connection restored", {{"uri", options_.uri}});
          emit({DomainEventKind::kConnectionRestored, "", ""});
        }
        backoff_ms = 100;
      } else {
        connected_before_ = true;
        std::unique_lock sleep(mutex_);
        cv_.wait_for(sleep, std::chrono::milliseconds(backoff_ms), [this] { return stopped_; });
        backoff_ms = std::min(backoff_ms * 2, options_.reconnect_max_backoff_ms);
      }
      lock.lock();
    }
  }

  LibvirtOptions options_;
  // The sink of the node that made this (base/log.h), for the lines its callbacks cause.
  LogSink& log_sink_ = LogSink::current();
  std::mutex mutex_;
  std::condition_variable cv_;
  ConnPtr conn_;
  std::vector<ConnPtr> dead_;
  std::string last_connect_error_;
  bool stopped_ = false;
  std::atomic<bool> connected_before_{false};
  int lifecycle_id_ = -1;
  int reboot_id_ = -1;
  std::thread reconnector_;
  Broadcaster<DomainEvent> events_;
};

}  // namespace

std::unique_ptr<Hypervisor> makeLibvirtHypervisor(const LibvirtOptions& options) {
  return std::make_unique<LibvirtHypervisor>(options);
}

}  // namespace qiao
