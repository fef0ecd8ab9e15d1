// QMP through libvirt's passthrough. The only file of qiao_qmp that includes libvirt-qemu.
//
// The Hub is a LibvirtQmpConnection's state: the connection and the event registration
// under `mu`, and each channel's domain (looked up on that connection) under the same lock.
// Workers take their own references (virConnectRef, virDomainRef) for the length of a call,
// so that a reconnection or stop() can release the hub's references while a call runs.
// Callbacks from libvirt's event loop get a Router (channels by domain UUID, and the
// "connection lost" flag) that libvirt frees with its free callback, so they never reach a
// destroyed Hub.
#include "node/vm/qmp/libvirt_qmp_channel.h"

#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

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

// One channel: its subscribers, its calls (run one at a time: see the header) and, under the
// hub's lock, its domain on the current connection.
struct ChannelState {
  explicit ChannelState(std::string name) : domain(std::move(name)) {}
  const std::string domain;
  const std::shared_ptr<QmpSubscribers> subscribers = std::make_shared<QmpSubscribers>();

  std::mutex calls_mu;
  std::deque<std::function<void(bool run)>> queued;  // run false: answer "closed"
  size_t pending = 0;                                // queued or running
  bool scheduled = false;                            // a worker has or will take the next

  // Under Hub::mu.
  DomPtr dom;
  std::string uuid;
  bool detached = false;  // its channel is gone
};

// What libvirt's callbacks may reach: it outlives the hub until libvirt frees it.
struct Router {
  QmpLimits limits;
  // The sink of the node that made the connection (base/log.h): the callbacks run on the
  // process's event-loop thread.
  LogSink* log_sink = &LogSink::current();
  std::atomic<bool> connection_lost{false};
  std::mutex mu;
  std::multimap<std::string, std::weak_ptr<ChannelState>> by_uuid;

  void add(const std::string& uuid, const std::shared_ptr<ChannelState>& channel) {
    std::lock_guard lock(mu);
    by_uuid.emplace(uuid, channel);
  }
  void remove(const std::string& uuid, const ChannelState* channel) {
    std::lock_guard lock(mu);
    auto [begin, end] = by_uuid.equal_range(uuid);
    for (auto it = begin; it != end; ++it) {
      auto held = it->second.lock();
      if (!held || held.get() == channel) {
        by_uuid.erase(it);
        return;
      }
    }
  }
  void clear() {
    std::lock_guard lock(mu);
    by_uuid.clear();
  }
  std::vector<std::shared_ptr<ChannelState>> targets(const std::string& uuid) {
    std::vector<std::shared_ptr<ChannelState>> out;
    std::lock_guard lock(mu);
    auto [begin, end] = by_uuid.equal_range(uuid);
    for (auto it = begin; it != end; ++it) {
      if (auto held = it->second.lock()) out.push_back(std::move(held));
    }
    return out;
  }
};
using RouterRef = std::shared_ptr<Router>;

void freeRouterRef(void* opaque) { delete static_cast<RouterRef*>(opaque); }

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

Error closedError(const std::string& domain) {
  return Error{ErrorCode::kUnavailable, "qmp", "the QMP channel to " + domain + " is closed", {}};
}

void onMonitorEvent(virConnectPtr, virDomainPtr dom, const char* event, long long seconds,
                    unsigned int micros, const char* details, void* opaque) {
  const RouterRef& router = *static_cast<RouterRef*>(opaque);
  if (event == nullptr || dom == nullptr) return;
  LogScope scope(*router->log_sink);
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(dom, uuid) < 0) {
    virResetLastError();
    return;
  }
  // Every domain's events come here: most have no channel, and are not even parsed.
  const auto targets = router->targets(uuid);
  if (targets.empty()) return;
  const std::string& domain = targets.front()->domain;
  QmpEvent qmp_event;
  qmp_event.name = event;
  qmp_event.seconds = seconds;
  qmp_event.microseconds = micros;
  qmp_event.data = json::object();
  if (details != nullptr && details[0] != '\0') {
    std::string_view text(details);
    if (text.size() > router->limits.max_message_bytes) {
      kLog.warn("QMP event data too large; delivered without it",
                {{"domain", domain}, {"event", qmp_event.name}});
    } else if (auto data = parseJsonObject(text, router->limits.max_depth, "QMP event data")) {
      qmp_event.data = std::move(*data);
    } else {
      kLog.warn("unreadable QMP event data; delivered without it",
                {{"domain", domain}, {"event", qmp_event.name}, {"reason", data.error().message}});
    }
  }
  tls_in_event_handler = true;
  for (const auto& target : targets) target->subscribers->dispatch(qmp_event);
  tls_in_event_handler = false;
}

void onConnectionClosed(virConnectPtr, int reason, void* opaque) {
  const RouterRef& router = *static_cast<RouterRef*>(opaque);
  LogScope scope(*router->log_sink);
  router->connection_lost = true;
  kLog.warn("libvirt connection of the QMP channels closed", {{"reason", std::to_string(reason)}});
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

struct LibvirtQmpConnection::Hub {
  explicit Hub(LibvirtQmpConnectionOptions options)
      : opt(std::move(options)), workers("qmp-libvirt", std::max<size_t>(1, opt.call_threads)) {
    router->limits = opt.limits;
  }
  ~Hub() { stop(); }

  const LibvirtQmpConnectionOptions opt;
  const RouterRef router = std::make_shared<Router>();
  std::atomic<bool> stopped{false};

  mutable std::mutex mu;
  ConnPtr conn;
  int event_callback = -1;
  bool close_callback = false;
  uint64_t opened = 0;
  std::map<const ChannelState*, std::weak_ptr<ChannelState>> channels;

  WorkQueue workers;  // last: stopped (joined) first

  std::shared_ptr<ChannelState> attach(std::string domain);
  void detach(const std::shared_ptr<ChannelState>& channel);
  void stop();

  // Runs `job` on a worker after the channel's earlier calls, waiting until `deadline`.
  template <typename T, typename Job>
  Result<T> run(const std::shared_ptr<ChannelState>& channel, Job job, Clock::time_point deadline,
                milliseconds timeout, const std::string& what);
  void schedule(const std::shared_ptr<ChannelState>& channel);
  void runNext(const std::shared_ptr<ChannelState>& channel);
  static void cancelQueued(ChannelState& channel);

  // On a worker: the connection and the channel's domain, made when missing. New references.
  Result<std::pair<ConnPtr, DomPtr>> acquire(const std::shared_ptr<ChannelState>& channel);
  // Maps a failed call's error and forgets what it proved stale: the channel's domain, or the
  // whole connection when libvirtd went away.
  Error failed(ChannelState& channel, const std::string& what);
  void releaseLocked();
  void forgetLocked(ChannelState& channel);
  // On a worker: one passthrough command.
  Result<json> command(const std::shared_ptr<ChannelState>& channel, const std::string& name,
                       const std::string& text);
};

std::shared_ptr<ChannelState> LibvirtQmpConnection::Hub::attach(std::string domain) {
  auto channel = std::make_shared<ChannelState>(std::move(domain));
  std::lock_guard lock(mu);
  channels.emplace(channel.get(), channel);
  return channel;
}

void LibvirtQmpConnection::Hub::detach(const std::shared_ptr<ChannelState>& channel) {
  {
    std::lock_guard lock(mu);
    forgetLocked(*channel);
    channel->detached = true;
    channels.erase(channel.get());
  }
  cancelQueued(*channel);  // calls nobody waits for any more
}

void LibvirtQmpConnection::Hub::stop() {
  if (stopped.exchange(true)) return;
  workers.stop();  // drops the channels' turns not yet taken, waits for the calls in libvirt
  std::vector<std::shared_ptr<ChannelState>> alive;
  {
    std::lock_guard lock(mu);
    for (const auto& [key, weak] : channels) {
      if (auto channel = weak.lock()) alive.push_back(std::move(channel));
    }
  }
  for (const auto& channel : alive) cancelQueued(*channel);
  std::lock_guard lock(mu);
  releaseLocked();
}

template <typename T, typename Job>
Result<T> LibvirtQmpConnection::Hub::run(const std::shared_ptr<ChannelState>& channel, Job job,
                                         Clock::time_point deadline, milliseconds timeout,
                                         const std::string& what) {
  if (stopped) return std::unexpected(closedError(channel->domain));
  auto call = std::make_shared<Call<T>>();
  auto task = [call, job = std::move(job), what, domain = channel->domain](bool run) mutable {
    {
      std::lock_guard lock(call->mu);
      if (call->abandoned) return;  // its caller gave up before a worker was free
    }
    Result<T> result = run ? job() : Result<T>(std::unexpected(closedError(domain)));
    std::lock_guard lock(call->mu);
    if (call->abandoned) {
      kLog.debug("late libvirt QMP answer dropped", {{"domain", domain}, {"call", what}});
      return;
    }
    call->result = std::move(result);
    call->done = true;
    call->cv.notify_all();
  };
  bool start = false;
  {
    std::lock_guard lock(channel->calls_mu);
    if (channel->pending >= opt.max_queued_calls) {
      return makeError(ErrorCode::kUnavailable, "qmp",
                       "too many libvirt QMP calls in flight for " + channel->domain + " (" +
                           std::to_string(opt.max_queued_calls) + "); libvirt may be stuck");
    }
    channel->queued.push_back(std::move(task));
    ++channel->pending;
    start = !std::exchange(channel->scheduled, true);
  }
  if (start) schedule(channel);
  std::unique_lock lock(call->mu);
  if (!call->cv.wait_until(lock, deadline, [&] { return call->done; })) {
    call->abandoned = true;
    return makeError(ErrorCode::kTimeout, "qmp",
                     what + " through libvirt on " + channel->domain + " did not answer within " +
                         std::to_string(timeout.count()) + " ms");
  }
  return std::move(*call->result);
}

void LibvirtQmpConnection::Hub::schedule(const std::shared_ptr<ChannelState>& channel) {
  // Each turn runs one call and queues the channel's next turn behind the other channels'.
  if (!workers.post([this, channel] { runNext(channel); })) cancelQueued(*channel);
}

void LibvirtQmpConnection::Hub::runNext(const std::shared_ptr<ChannelState>& channel) {
  std::function<void(bool)> task;
  {
    std::lock_guard lock(channel->calls_mu);
    if (channel->queued.empty()) {
      channel->scheduled = false;
      return;
    }
    task = std::move(channel->queued.front());
    channel->queued.pop_front();
  }
  task(true);
  bool more = false;
  {
    std::lock_guard lock(channel->calls_mu);
    --channel->pending;
    more = !channel->queued.empty();
    if (!more) channel->scheduled = false;
  }
  if (more) schedule(channel);
}

void LibvirtQmpConnection::Hub::cancelQueued(ChannelState& channel) {
  std::deque<std::function<void(bool)>> dropped;
  {
    std::lock_guard lock(channel.calls_mu);
    dropped.swap(channel.queued);
    channel.pending -= dropped.size();
    channel.scheduled = false;
  }
  for (auto& task : dropped) task(false);
}

void LibvirtQmpConnection::Hub::forgetLocked(ChannelState& channel) {
  if (channel.dom) router->remove(channel.uuid, &channel);
  channel.dom.reset();
  channel.uuid.clear();
}

void LibvirtQmpConnection::Hub::releaseLocked() {
  if (conn) {
    if (event_callback >= 0) virConnectDomainQemuMonitorEventDeregister(conn.get(), event_callback);
    if (close_callback) virConnectUnregisterCloseCallback(conn.get(), onConnectionClosed);
  }
  virResetLastError();
  event_callback = -1;
  close_callback = false;
  router->clear();
  for (const auto& [key, weak] : channels) {
    if (auto channel = weak.lock()) {
      channel->dom.reset();
      channel->uuid.clear();
    }
  }
  conn.reset();
}

Error LibvirtQmpConnection::Hub::failed(ChannelState& channel, const std::string& what) {
  Error error = libvirtError(what);
  if (error.code != ErrorCode::kUnavailable && error.code != ErrorCode::kNotFound) return error;
  std::lock_guard lock(mu);
  // One guest's trouble (its agent, its domain gone) must not cost the others their
  // connection: it is dropped only when libvirt says it is dead.
  if (error.code == ErrorCode::kUnavailable && conn && virConnectIsAlive(conn.get()) != 1) {
    releaseLocked();
  } else {
    forgetLocked(channel);  // a new domain of that name is another domain
  }
  virResetLastError();
  return error;
}

Result<std::pair<ConnPtr, DomPtr>> LibvirtQmpConnection::Hub::acquire(
    const std::shared_ptr<ChannelState>& channel) {
  std::lock_guard lock(mu);
  if (stopped || channel->detached) return std::unexpected(closedError(channel->domain));
  if (router->connection_lost.exchange(false)) releaseLocked();
  if (!conn) {
    ensureLibvirtEventLoop();
    conn.reset(virConnectOpen(opt.uri.c_str()));
    if (!conn) return std::unexpected(libvirtError("cannot connect to libvirt at " + opt.uri));
    ++opened;
    auto* ref = new RouterRef(router);
    if (virConnectRegisterCloseCallback(conn.get(), onConnectionClosed, ref, freeRouterRef) < 0) {
      delete ref;
      virResetLastError();  // without it a lost libvirtd is noticed by the next failed call
    } else {
      close_callback = true;
    }
    // One registration for the QMP events of every domain, routed by UUID.
    ref = new RouterRef(router);
    event_callback = virConnectDomainQemuMonitorEventRegister(
        conn.get(), nullptr, nullptr, onMonitorEvent, ref, freeRouterRef, 0);
    if (event_callback < 0) {
      delete ref;
      Error error = libvirtError("cannot subscribe to QMP events at " + opt.uri);
      if (error.code == ErrorCode::kUnavailable) {
        releaseLocked();
        return std::unexpected(std::move(error));
      }
      // A driver without QEMU events (only the qemu driver has them): commands still work.
      // Tried again with the next connection.
      kLog.warn("QMP events of libvirt domains are not available",
                {{"uri", opt.uri}, {"reason", error.message}});
    }
  }
  if (!channel->dom) {
    DomPtr dom(looksLikeUuid(channel->domain)
                   ? virDomainLookupByUUIDString(conn.get(), channel->domain.c_str())
                   : virDomainLookupByName(conn.get(), channel->domain.c_str()));
    if (!dom) {
      Error error = libvirtError("cannot find the domain " + channel->domain);
      if (error.code == ErrorCode::kUnavailable && virConnectIsAlive(conn.get()) != 1) {
        releaseLocked();
      }
      virResetLastError();
      return std::unexpected(std::move(error));
    }
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    if (virDomainGetUUIDString(dom.get(), uuid) == 0) {
      channel->uuid = uuid;
      router->add(channel->uuid, channel);
    }
    virResetLastError();
    channel->dom = std::move(dom);
  }
  virConnectRef(conn.get());
  virDomainRef(channel->dom.get());
  return std::make_pair(ConnPtr(conn.get()), DomPtr(channel->dom.get()));
}

Result<json> LibvirtQmpConnection::Hub::command(const std::shared_ptr<ChannelState>& channel,
                                                const std::string& name, const std::string& text) {
  auto target = acquire(channel);
  if (!target) return std::unexpected(target.error());
  char* raw = nullptr;
  const int rc = virDomainQemuMonitorCommand(target->second.get(), text.c_str(), &raw, 0);
  if (rc < 0) {
    return std::unexpected(
        failed(*channel, "QMP " + name + " through libvirt on " + channel->domain));
  }
  std::unique_ptr<char, decltype(&std::free)> reply(raw, &std::free);
  auto message = parseQmpMessage(reply ? reply.get() : "", opt.limits);
  if (!message) {
    return makeError(ErrorCode::kInternal, "qmp",
                     "libvirt's answer to QMP " + name + " on " + channel->domain +
                         " is not a QMP reply: " + message.error().message);
  }
  if (const auto* ret = std::get_if<QmpReturn>(&*message)) return ret->value;
  if (const auto* error = std::get_if<QmpErrorReply>(&*message)) {
    return std::unexpected(qmpErrorToError(name, *error));
  }
  return makeError(ErrorCode::kInternal, "qmp",
                   "libvirt answered QMP " + name + " on " + channel->domain +
                       " with something other than a reply");
}

// ---- LibvirtQmpConnection ----

LibvirtQmpConnection::LibvirtQmpConnection(LibvirtQmpConnectionOptions options)
    : hub_(std::make_shared<Hub>(std::move(options))) {}

LibvirtQmpConnection::~LibvirtQmpConnection() { stop(); }

void LibvirtQmpConnection::stop() { hub_->stop(); }

bool LibvirtQmpConnection::connected() const {
  std::lock_guard lock(hub_->mu);
  return !hub_->stopped && hub_->conn && !hub_->router->connection_lost;
}

uint64_t LibvirtQmpConnection::connectionsOpened() const {
  std::lock_guard lock(hub_->mu);
  return hub_->opened;
}

// ---- LibvirtQmpChannel ----

struct LibvirtQmpChannel::Impl {
  std::shared_ptr<LibvirtQmpConnection::Hub> hub;
  std::shared_ptr<ChannelState> state;
  std::unique_ptr<LibvirtQmpConnection> own;  // a channel made on its own
};

std::shared_ptr<LibvirtQmpChannel> LibvirtQmpConnection::channel(std::string domain) {
  auto impl = std::make_unique<LibvirtQmpChannel::Impl>();
  impl->hub = hub_;
  impl->state = hub_->attach(std::move(domain));
  return std::shared_ptr<LibvirtQmpChannel>(new LibvirtQmpChannel(std::move(impl)));
}

LibvirtQmpChannel::LibvirtQmpChannel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LibvirtQmpChannel::LibvirtQmpChannel(LibvirtQmpOptions options) : impl_(std::make_unique<Impl>()) {
  LibvirtQmpConnectionOptions own;
  own.uri = std::move(options.uri);
  own.call_threads = options.call_threads;
  own.max_queued_calls = options.max_queued_calls;
  own.limits = options.limits;
  impl_->own = std::make_unique<LibvirtQmpConnection>(std::move(own));
  impl_->hub = impl_->own->hub_;
  impl_->state = impl_->hub->attach(std::move(options.domain));
}

LibvirtQmpChannel::~LibvirtQmpChannel() {
  impl_->hub->detach(impl_->state);
  if (impl_->own) impl_->own->stop();
}

Status LibvirtQmpChannel::connect(milliseconds timeout) {
  if (tls_in_event_handler) {
    return makeError(ErrorCode::kInternal, "qmp",
                     "LibvirtQmpChannel::connect from a QMP event handler");
  }
  LibvirtQmpConnection::Hub* hub = impl_->hub.get();
  auto done = hub->run<bool>(
      impl_->state,
      [hub, state = impl_->state]() -> Result<bool> {
        auto target = hub->acquire(state);
        if (!target) return std::unexpected(target.error());
        return true;
      },
      Clock::now() + timeout, timeout, "connecting");
  if (!done) return std::unexpected(done.error());
  return {};
}

bool LibvirtQmpChannel::connected() const {
  std::lock_guard lock(impl_->hub->mu);
  return !impl_->hub->stopped && impl_->hub->conn && impl_->state->dom &&
         !impl_->hub->router->connection_lost;
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
  LibvirtQmpConnection::Hub* hub = impl_->hub.get();
  std::string name(command);
  return hub->run<json>(
      impl_->state,
      [hub, state = impl_->state, name, text = std::move(text)]() {
        return hub->command(state, name, text);
      },
      Clock::now() + timeout, timeout, "QMP " + name);
}

QmpSubscription LibvirtQmpChannel::doSubscribe(std::string event_name, QmpEventHandler handler) {
  return impl_->state->subscribers->add(std::move(event_name), std::move(handler));
}

}  // namespace qiao
