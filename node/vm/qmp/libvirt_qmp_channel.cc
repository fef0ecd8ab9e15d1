// QMP through libvirt's passthrough. The only file of qiao_qmp that includes libvirt-qemu.
//
// The connection, the domain and the event registrations live in Impl under `mu`; workers
// take their own references (virConnectRef, virDomainRef) for the length of a call, so that a
// reconnection or the destructor can release the channel's references while a call runs.
// Callbacks from libvirt's event loop get a Shared (subscribers and the "connection lost"
// flag) that libvirt frees with its free callback, so they never reach a destroyed Impl.
#include "node/vm/qmp/libvirt_qmp_channel.h"

#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>

#include "base/handle.h"
#include "base/json_input.h"
#include "base/log.h"
#include "base/work_queue.h"
#include "node/vm/qmp/libvirt_event_loop.h"

namespace qiao {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using ConnPtr = CPtr<virConnect, virConnectClose>;
using DomPtr = CPtr<virDomain, virDomainFree>;

const Logger kLog("qmp");

// True on libvirt's event-loop thread while a QMP event handler of ours runs.
thread_local bool tls_in_event_handler = false;

// What libvirt's callbacks may reach: it outlives the channel until libvirt frees it.
struct Shared {
  std::shared_ptr<QmpSubscribers> subscribers = std::make_shared<QmpSubscribers>();
  std::atomic<bool> connection_lost{false};
  QmpLimits limits;
  std::string domain;
};
using SharedRef = std::shared_ptr<Shared>;

void freeSharedRef(void* opaque) { delete static_cast<SharedRef*>(opaque); }

// The one mapping of libvirt's errors for this channel, at the edge.
Error libvirtError(const std::string& what) {
  virErrorPtr err = virGetLastError();
  ErrorCode code = ErrorCode::kInternal;
  std::string message =
      err != nullptr && err->message != nullptr ? err->message : "unknown libvirt error";
  if (err != nullptr) {
    switch (err->code) {
      case VIR_ERR_NO_DOMAIN: code = ErrorCode::kNotFound; break;
      case VIR_ERR_OPERATION_INVALID:  // "domain is not running"
      case VIR_ERR_OPERATION_DENIED:
      case VIR_ERR_OPERATION_FAILED: code = ErrorCode::kConflict; break;
      case VIR_ERR_OPERATION_TIMEOUT:  // "cannot acquire state change lock"
        code = ErrorCode::kTimeout;
        break;
      case VIR_ERR_INVALID_ARG: code = ErrorCode::kInvalidArgument; break;
      case VIR_ERR_SYSTEM_ERROR:
      case VIR_ERR_RPC:
      case VIR_ERR_NO_CONNECT:
      case VIR_ERR_INVALID_CONN:
      case VIR_ERR_AUTH_FAILED:
      case VIR_ERR_AGENT_UNRESPONSIVE: code = ErrorCode::kUnavailable; break;
      default: break;
    }
  }
  virResetLastError();
  return Error{code, "libvirt", what + ": " + message, {}};
}

void onMonitorEvent(virConnectPtr, virDomainPtr, const char* event, long long seconds,
                    unsigned int micros, const char* details, void* opaque) {
  const SharedRef& shared = *static_cast<SharedRef*>(opaque);
  if (event == nullptr) return;
  QmpEvent qmp_event;
  qmp_event.name = event;
  qmp_event.seconds = seconds;
  qmp_event.microseconds = micros;
  qmp_event.data = json::object();
  if (details != nullptr && details[0] != '\0') {
    std::string_view text(details);
    if (text.size() > shared->limits.max_message_bytes) {
      kLog.warn("QMP event data too large; delivered without it",
                {{"domain", shared->domain}, {"event", qmp_event.name}});
    } else if (auto data = parseJsonObject(text, shared->limits.max_depth, "QMP event data")) {
      qmp_event.data = std::move(*data);
    } else {
      kLog.warn("unreadable QMP event data; delivered without it",
                {{"domain", shared->domain},
                 {"event", qmp_event.name},
                 {"reason", data.error().message}});
    }
  }
  tls_in_event_handler = true;
  shared->subscribers->dispatch(qmp_event);
  tls_in_event_handler = false;
}

void onConnectionClosed(virConnectPtr, int reason, void* opaque) {
  const SharedRef& shared = *static_cast<SharedRef*>(opaque);
  shared->connection_lost = true;
  kLog.warn("libvirt connection of a QMP channel closed",
            {{"domain", shared->domain}, {"reason", std::to_string(reason)}});
}

bool looksLikeUuid(const std::string& text) {
  if (text.size() != 36) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? c != '-' : !std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

template <typename T>
struct Call {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  bool abandoned = false;  // the caller stopped waiting
  std::optional<Result<T>> result;
};

}  // namespace

struct LibvirtQmpChannel::Impl {
  explicit Impl(LibvirtQmpOptions options)
      : opt(std::move(options)), calls("qmp-libvirt", std::max<size_t>(1, opt.call_threads)) {
    shared->limits = opt.limits;
    shared->domain = opt.domain;
  }

  const LibvirtQmpOptions opt;
  const SharedRef shared = std::make_shared<Shared>();

  mutable std::mutex mu;
  ConnPtr conn;
  DomPtr dom;
  int event_callback = -1;
  bool close_callback = false;

  WorkQueue calls;  // last: stopped (joined) first

  // Runs `job` on a worker, waiting until `deadline`.
  template <typename T, typename Job>
  Result<T> run(Job job, Clock::time_point deadline, milliseconds timeout, const std::string& what);
  // On a worker: the connection and domain, made when missing. Returns new references.
  Result<std::pair<ConnPtr, DomPtr>> acquire();
  void releaseLocked();
  // On a worker: one passthrough command.
  Result<json> command(const std::string& name, const std::string& text);
};

template <typename T, typename Job>
Result<T> LibvirtQmpChannel::Impl::run(Job job, Clock::time_point deadline, milliseconds timeout,
                                       const std::string& what) {
  if (calls.pending() >= opt.max_queued_calls) {
    return makeError(ErrorCode::kUnavailable, "qmp",
                     "too many libvirt QMP calls in flight for " + opt.domain + " (" +
                         std::to_string(opt.max_queued_calls) + "); libvirt may be stuck");
  }
  auto call = std::make_shared<Call<T>>();
  const bool posted = calls.post([call, job = std::move(job), what, domain = opt.domain]() mutable {
    {
      std::lock_guard lock(call->mu);
      if (call->abandoned) return;  // its caller gave up before a worker was free
    }
    Result<T> result = job();
    std::lock_guard lock(call->mu);
    if (call->abandoned) {
      kLog.debug("late libvirt QMP answer dropped", {{"domain", domain}, {"call", what}});
      return;
    }
    call->result = std::move(result);
    call->done = true;
    call->cv.notify_all();
  });
  if (!posted) {
    return makeError(ErrorCode::kUnavailable, "qmp",
                     "the QMP channel to " + opt.domain + " is closed");
  }
  std::unique_lock lock(call->mu);
  if (!call->cv.wait_until(lock, deadline, [&] { return call->done; })) {
    call->abandoned = true;
    return makeError(ErrorCode::kTimeout, "qmp",
                     what + " through libvirt on " + opt.domain + " did not answer within " +
                         std::to_string(timeout.count()) + " ms");
  }
  return std::move(*call->result);
}

void LibvirtQmpChannel::Impl::releaseLocked() {
  if (conn) {
    if (event_callback >= 0) {
      virConnectDomainQemuMonitorEventDeregister(conn.get(), event_callback);
    }
    if (close_callback) virConnectUnregisterCloseCallback(conn.get(), onConnectionClosed);
  }
  virResetLastError();
  event_callback = -1;
  close_callback = false;
  dom.reset();
  conn.reset();
}

Result<std::pair<ConnPtr, DomPtr>> LibvirtQmpChannel::Impl::acquire() {
  std::lock_guard lock(mu);
  if (shared->connection_lost.exchange(false)) releaseLocked();
  if (!conn) {
    ensureLibvirtEventLoop();
    conn.reset(virConnectOpen(opt.uri.c_str()));
    if (!conn) return std::unexpected(libvirtError("cannot connect to libvirt at " + opt.uri));
    auto* ref = new SharedRef(shared);
    if (virConnectRegisterCloseCallback(conn.get(), onConnectionClosed, ref, freeSharedRef) < 0) {
      delete ref;
      virResetLastError();  // without it a lost libvirtd is noticed by the next failed call
    } else {
      close_callback = true;
    }
  }
  if (!dom) {
    dom.reset(looksLikeUuid(opt.domain)
                  ? virDomainLookupByUUIDString(conn.get(), opt.domain.c_str())
                  : virDomainLookupByName(conn.get(), opt.domain.c_str()));
    if (!dom) {
      Error error = libvirtError("cannot find the domain " + opt.domain);
      if (error.code == ErrorCode::kUnavailable) releaseLocked();
      return std::unexpected(std::move(error));
    }
    auto* ref = new SharedRef(shared);
    event_callback = virConnectDomainQemuMonitorEventRegister(
        conn.get(), dom.get(), nullptr, onMonitorEvent, ref, freeSharedRef, 0);
    if (event_callback < 0) {
      delete ref;
      Error error = libvirtError("cannot subscribe to QMP events of " + opt.domain);
      if (error.code == ErrorCode::kUnavailable) {
        releaseLocked();
        return std::unexpected(std::move(error));
      }
      // A driver without QEMU events (only the qemu driver has them): commands still work.
      // Tried again with the next connection.
      kLog.warn("QMP events of a libvirt domain are not available",
                {{"domain", opt.domain}, {"reason", error.message}});
    }
  }
  virConnectRef(conn.get());
  virDomainRef(dom.get());
  return std::make_pair(ConnPtr(conn.get()), DomPtr(dom.get()));
}

Result<json> LibvirtQmpChannel::Impl::command(const std::string& name, const std::string& text) {
  auto target = acquire();
  if (!target) return std::unexpected(target.error());
  char* raw = nullptr;
  const int rc = virDomainQemuMonitorCommand(target->second.get(), text.c_str(), &raw, 0);
  if (rc < 0) {
    Error error = libvirtError("QMP " + name + " through libvirt on " + opt.domain);
    if (error.code == ErrorCode::kUnavailable || error.code == ErrorCode::kNotFound) {
      // libvirtd went away, or the domain is gone (a new one of that name is another domain):
      // the next call starts afresh.
      std::lock_guard lock(mu);
      if (error.code == ErrorCode::kNotFound && conn) {
        if (event_callback >= 0) {
          virConnectDomainQemuMonitorEventDeregister(conn.get(), event_callback);
        }
        event_callback = -1;
        dom.reset();
        virResetLastError();
      } else {
        releaseLocked();
      }
    }
    return std::unexpected(std::move(error));
  }
  std::unique_ptr<char, decltype(&std::free)> reply(raw, &std::free);
  auto message = parseQmpMessage(reply ? reply.get() : "", opt.limits);
  if (!message) {
    return makeError(ErrorCode::kInternal, "qmp",
                     "libvirt's answer to QMP " + name + " on " + opt.domain +
                         " is not a QMP reply: " + message.error().message);
  }
  if (const auto* ret = std::get_if<QmpReturn>(&*message)) return ret->value;
  if (const auto* error = std::get_if<QmpErrorReply>(&*message)) {
    return std::unexpected(qmpErrorToError(name, *error));
  }
  return makeError(
      ErrorCode::kInternal, "qmp",
      "libvirt answered QMP " + name + " on " + opt.domain + " with something other than a reply");
}

LibvirtQmpChannel::LibvirtQmpChannel(LibvirtQmpOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

LibvirtQmpChannel::~LibvirtQmpChannel() {
  impl_->calls.stop();
  std::lock_guard lock(impl_->mu);
  impl_->releaseLocked();
}

Status LibvirtQmpChannel::connect(milliseconds timeout) {
  if (tls_in_event_handler) {
    return makeError(ErrorCode::kInternal, "qmp",
                     "LibvirtQmpChannel::connect from a QMP event handler");
  }
  Impl* impl = impl_.get();
  auto done = impl_->run<bool>(
      [impl]() -> Result<bool> {
        auto target = impl->acquire();
        if (!target) return std::unexpected(target.error());
        return true;
      },
      Clock::now() + timeout, timeout, "connecting");
  if (!done) return std::unexpected(done.error());
  return {};
}

bool LibvirtQmpChannel::connected() const {
  std::lock_guard lock(impl_->mu);
  return impl_->conn && impl_->dom && !impl_->shared->connection_lost;
}

Result<json> LibvirtQmpChannel::doExecute(std::string_view command, json arguments,
                                          milliseconds timeout) {
  if (tls_in_event_handler) {
    return makeError(ErrorCode::kInternal, "qmp",
                     "QmpChannel::execute(" + std::string(command) +
                         ") from a QMP event handler (libvirt's event-loop thread)");
  }
  if (command.empty()) {
    return makeError(ErrorCode::kInvalidArgument, "qmp", "a QMP command needs a name");
  }
  if (!arguments.is_null() && !arguments.is_object()) {
    return makeError(ErrorCode::kInvalidArgument, "qmp",
                     "the arguments of QMP " + std::string(command) + " must be an object");
  }
  json request = {{"execute", std::string(command)}};
  if (arguments.is_object() && !arguments.empty()) request["arguments"] = std::move(arguments);
  std::string text;
  try {
    text = request.dump(-1, ' ', false, json::error_handler_t::strict);
  } catch (const json::exception&) {
    return makeError(
        ErrorCode::kInvalidArgument, "qmp",
        "QMP " + qmpShortDump(json(std::string(command)), 64) + " has a string that is not UTF-8");
  }
  Impl* impl = impl_.get();
  std::string name(command);
  return impl_->run<json>(
      [impl, name, text = std::move(text)]() { return impl->command(name, text); },
      Clock::now() + timeout, timeout, "QMP " + name);
}

QmpSubscription LibvirtQmpChannel::doSubscribe(std::string event_name, QmpEventHandler handler) {
  return impl_->shared->subscribers->add(std::move(event_name), std::move(handler));
}

}  // namespace qiao
