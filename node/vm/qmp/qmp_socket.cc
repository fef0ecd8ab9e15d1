// QMP over a unix socket with Asio coroutines on the runtime's one I/O thread.
//
// Who touches what:
//   - the I/O thread alone owns a Connection (socket, timers, read buffer, write queue) and
//     runs the session coroutine (connect, greeting, qmp_capabilities, then read until the
//     connection ends) and the writer coroutine;
//   - callers (worker threads) and the I/O thread share the channel's state under Impl::mu:
//     connection state and generation, and the commands waiting for replies, by id.
// A caller registers its command under the live generation, posts the line to the I/O thread
// and waits for its Pending with its own deadline; on timeout it removes the Pending, so a late
// reply finds no one and is dropped. When a connection ends, every Pending of its generation
// fails with kUnavailable.
#include "node/vm/qmp/qmp_socket.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "base/json_input.h"
#include "base/log.h"

namespace qiao {
namespace {

namespace net = boost::asio;
using local = net::local::stream_protocol;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
constexpr auto kNoThrow = net::as_tuple(net::use_awaitable);

const Logger kLog("qmp");

// The id of our own qmp_capabilities; commands use integers, so the two never meet.
constexpr const char* kNegotiationId = "qiao-negotiation";

std::unexpected<Error> unavailable(std::string message) {
  return makeError(ErrorCode::kUnavailable, "qmp", std::move(message));
}

std::string msText(milliseconds d) { return std::to_string(d.count()) + " ms"; }

// Logs what a detached coroutine threw instead of losing it (and the I/O thread with it).
void logCoroutineEnd(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    kLog.error("a QMP coroutine threw", {{"what", x.what()}});
  } catch (...) {
    kLog.error("a QMP coroutine threw");
  }
}


}  // namespace

// ---- QmpRuntime ----

struct QmpRuntime::Impl {
  std::mutex mu;
  std::unique_ptr<net::io_context> ioc;  // null once stopped and joined
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
  std::thread thread;
  std::thread::id thread_id;
  bool stopping = false;
  std::vector<std::weak_ptr<QmpSocketChannel::Impl>> channels;

  // Runs `fn` on the I/O thread; false (and `fn` dropped) once the runtime has stopped.
  template <typename F>
  bool post(F&& fn) {
    std::lock_guard lock(mu);
    if (!ioc || !guard) return false;
    net::post(*ioc, std::forward<F>(fn));
    return true;
  }
  bool isStopping() {
    std::lock_guard lock(mu);
    return stopping;
  }
};

QmpRuntime::QmpRuntime() : impl_(std::make_shared<Impl>()) {
  impl_->ioc = std::make_unique<net::io_context>(1);
  impl_->guard.emplace(net::make_work_guard(*impl_->ioc));
  net::io_context* ioc = impl_->ioc.get();
  impl_->thread = std::thread(withLogScope([ioc] {
    for (;;) {
      try {
        ioc->run();
        return;
      } catch (const std::exception& e) {
        kLog.error("the QMP I/O thread caught an exception", {{"what", e.what()}});
      }
    }
  }));
  impl_->thread_id = impl_->thread.get_id();
}

QmpRuntime::~QmpRuntime() { stop(); }

bool QmpRuntime::onIoThread() const { return std::this_thread::get_id() == impl_->thread_id; }

// ---- QmpSocketChannel::Impl ----

struct QmpSocketChannel::Impl : std::enable_shared_from_this<QmpSocketChannel::Impl> {
  struct Pending {
    std::string command;
    uint64_t generation = 0;
    bool done = false;
    Result<json> result;
    std::condition_variable cv;
  };

  // I/O thread only.
  struct Connection {
    explicit Connection(net::io_context& ioc) : socket(ioc), watchdog(ioc), write_timer(ioc) {}
    local::socket socket;
    net::steady_timer watchdog;     // bounds the handshake
    net::steady_timer write_timer;  // bounds the write in progress
    std::string read_buffer;
    std::deque<std::string> writes;
    bool writing = false;
    bool closed = false;
    bool handshake_timed_out = false;
    bool write_timed_out = false;
    uint64_t generation = 0;  // 0 until the handshake is done
  };

  enum class State { kIdle, kConnecting, kConnected };

  Impl(std::shared_ptr<QmpRuntime::Impl> runtime, QmpSocketOptions options)
      : rt(std::move(runtime)), opt(std::move(options)) {
    if (opt.name.empty()) opt.name = opt.path;
  }

  const std::shared_ptr<QmpRuntime::Impl> rt;
  QmpSocketOptions opt;
  const std::shared_ptr<QmpSubscribers> subscribers = std::make_shared<QmpSubscribers>();

  // Shared between callers and the I/O thread.
  std::mutex mu;
  std::condition_variable state_cv;  // state, attempts_done, closed
  State state = State::kIdle;
  bool closed = false;
  std::string closed_reason;
  uint64_t generation = 0;
  uint64_t attempts_done = 0;
  std::string last_error;  // of the last failed attempt
  json version;
  int64_t next_id = 1;
  std::map<int64_t, std::shared_ptr<Pending>> pending;

  // I/O thread only: the connection being made or in use.
  std::shared_ptr<Connection> conn;

  // -- caller side --
  // Connects when needed, then (unless `command` is empty) registers a Pending for it under
  // the live generation.
  Result<std::pair<int64_t, std::shared_ptr<Pending>>> connectAndRegister(
      std::string_view command, Clock::time_point deadline, milliseconds timeout);
  Result<json> execute(std::string_view command, json arguments, milliseconds timeout);
  void failPendingLocked(uint64_t generation_or_all, const std::string& why);
  void shutdown(const std::string& reason);

  // -- I/O side. The coroutines that are spawned take `self`, which keeps the channel's state
  // alive for as long as they run.
  static net::awaitable<void> session(std::shared_ptr<Impl> self, std::shared_ptr<Connection> c,
                                      Clock::time_point deadline);
  net::awaitable<std::string> handshake(std::shared_ptr<Connection> c);
  net::awaitable<std::string> readLoop(std::shared_ptr<Connection> c);
  net::awaitable<Result<std::string>> readLine(std::shared_ptr<Connection> c);
  static net::awaitable<void> writer(std::shared_ptr<Impl> self, std::shared_ptr<Connection> c);
  void send(uint64_t gen, std::string line);
  void deliver(const QmpMessage& reply);
  // `c` by value: callers pass the member `conn`, which this resets.
  void drop(std::shared_ptr<Connection> c, const std::string& why);
  void finishAttempt(const std::shared_ptr<Connection>& c, const std::string& error);
};

void QmpSocketChannel::Impl::failPendingLocked(uint64_t gen, const std::string& why) {
  for (auto it = pending.begin(); it != pending.end();) {
    auto& p = it->second;
    if (gen != 0 && p->generation != gen) {
      ++it;
      continue;
    }
    p->done = true;
    p->result = unavailable("lost the QMP connection to " + opt.name + " during " + p->command +
                            ": " + why);
    p->cv.notify_all();
    it = pending.erase(it);
  }
}

void QmpSocketChannel::Impl::shutdown(const std::string& reason) {
  {
    std::lock_guard lock(mu);
    if (closed) return;
    closed = true;
    closed_reason = reason;
    failPendingLocked(0, reason);
  }
  state_cv.notify_all();
  // The socket is closed on its own thread; when the runtime is already gone there is none.
  rt->post([self = shared_from_this()] {
    if (self->conn) self->drop(self->conn, self->closed_reason);
  });
}

Result<std::pair<int64_t, std::shared_ptr<QmpSocketChannel::Impl::Pending>>>
QmpSocketChannel::Impl::connectAndRegister(std::string_view command, Clock::time_point deadline,
                                           milliseconds timeout) {
  std::unique_lock lock(mu);
  for (;;) {
    if (closed) {
      return unavailable("the QMP channel to " + opt.name + " is closed: " + closed_reason);
    }
    if (state == State::kConnected) {
      if (command.empty()) return std::make_pair(int64_t{0}, std::shared_ptr<Pending>());
      auto p = std::make_shared<Pending>();
      p->command = std::string(command);
      p->generation = generation;
      const int64_t id = next_id++;
      pending.emplace(id, p);
      return std::make_pair(id, std::move(p));
    }
    if (state == State::kIdle) {
      state = State::kConnecting;
      const auto attempt_deadline = Clock::now() + opt.connect_timeout;
      auto self = shared_from_this();
      const bool posted = rt->post([self, attempt_deadline] {
        // On the I/O thread the io_context is alive: it is released only after the join.
        net::io_context& ioc = *self->rt->ioc;
        auto c = std::make_shared<Connection>(ioc);
        net::co_spawn(ioc, session(self, std::move(c), attempt_deadline), logCoroutineEnd);
      });
      if (!posted) {
        state = State::kIdle;
        return unavailable("the QMP runtime is stopped; no connection to " + opt.name);
      }
    }
    const uint64_t seen = attempts_done;
    const bool woke = state_cv.wait_until(lock, deadline, [&] {
      return closed || state == State::kConnected || attempts_done != seen;
    });
    if (!woke) {
      return makeError(ErrorCode::kTimeout, "qmp",
                       "no QMP connection to " + opt.name + " within " + msText(timeout) +
                           " (the attempt goes on)");
    }
    if (closed || state == State::kConnected) continue;
    return unavailable("cannot connect to QMP at " + opt.name + ": " + last_error);
  }
}

Result<json> QmpSocketChannel::Impl::execute(std::string_view command, json arguments,
                                             milliseconds timeout) {
  if (command.empty()) {
    return makeError(ErrorCode::kInvalidArgument, "qmp", "a QMP command needs a name");
  }
  if (!arguments.is_null() && !arguments.is_object()) {
    return makeError(ErrorCode::kInvalidArgument, "qmp",
                     "the arguments of QMP " + std::string(command) + " must be an object, not " +
                         std::string(arguments.is_array() ? "an array" : "a scalar"));
  }
  json request = {{"execute", std::string(command)}};
  if (arguments.is_object() && !arguments.empty()) request["arguments"] = std::move(arguments);
  // Written out before connecting, outside the lock (arguments can be big): a string that is
  // not UTF-8 is the caller's error, and must not cost a connection.
  std::string body;
  try {
    body = request.dump(-1, ' ', false, json::error_handler_t::strict);
  } catch (const json::exception&) {
    return makeError(
        ErrorCode::kInvalidArgument, "qmp",
        "QMP " + qmpShortDump(json(std::string(command)), 64) + " has a string that is not UTF-8");
  }

  const auto deadline = Clock::now() + timeout;
  auto registered = connectAndRegister(command, deadline, timeout);
  if (!registered) return std::unexpected(registered.error());
  auto [id, p] = std::move(*registered);
  // {"id":N, then the rest of the object (which is never empty: it has "execute").
  std::string line = "{\"id\":" + std::to_string(id) + "," + body.substr(1);

  std::unique_lock lock(mu);
  if (p->done) return std::move(p->result);  // the connection ended already
  line.push_back('\n');
  const uint64_t gen = p->generation;
  if (!rt->post([self = shared_from_this(), gen, text = std::move(line)]() mutable {
        self->send(gen, std::move(text));
      })) {
    pending.erase(id);
    return unavailable("the QMP runtime is stopped; " + std::string(command) + " not sent");
  }
  if (!p->cv.wait_until(lock, deadline, [&] { return p->done; })) {
    pending.erase(id);
    return makeError(ErrorCode::kTimeout, "qmp",
                     "QMP " + std::string(command) + " on " + opt.name + " did not answer within " +
                         msText(timeout));
  }
  return std::move(p->result);
}

void QmpSocketChannel::Impl::send(uint64_t gen, std::string line) {
  // A connection that ended since the command was registered has failed its Pending already.
  if (!conn || conn->closed || conn->generation != gen) return;
  conn->writes.push_back(std::move(line));
  if (!conn->writing) {
    conn->writing = true;
    net::co_spawn(*rt->ioc, writer(shared_from_this(), conn), logCoroutineEnd);
  }
}

net::awaitable<void> QmpSocketChannel::Impl::writer(std::shared_ptr<Impl> self,
                                                    std::shared_ptr<Connection> c) {
  while (!c->writes.empty() && !c->closed) {
    std::string text = std::move(c->writes.front());
    c->writes.pop_front();
    c->write_timer.expires_after(self->opt.write_timeout);
    std::weak_ptr<Connection> weak = c;
    c->write_timer.async_wait([weak](boost::system::error_code ec) {
      auto conn = weak.lock();
      if (ec || !conn) return;
      conn->write_timed_out = true;
      conn->socket.close(ec);
    });
    auto [ec, n] = co_await net::async_write(c->socket, net::buffer(text), kNoThrow);
    c->write_timer.cancel();
    if (ec) {
      self->drop(c, c->write_timed_out ? "the peer did not take a command within " +
                                             msText(self->opt.write_timeout)
                                       : "cannot write: " + ec.message());
      break;
    }
  }
  c->writing = false;
}

net::awaitable<Result<std::string>> QmpSocketChannel::Impl::readLine(
    std::shared_ptr<Connection> c) {
  // Room for the longest allowed line and its "\r\n": a longer one ends the read with
  // not_found, without ever buffering more.
  const size_t cap = opt.limits.max_message_bytes + 2;
  auto [ec, n] = co_await net::async_read_until(c->socket, net::dynamic_buffer(c->read_buffer, cap),
                                                '\n', kNoThrow);
  if (ec == net::error::not_found) {
    co_return makeError(ErrorCode::kPayloadTooLarge, "qmp",
                        "the peer sent a message larger than " +
                            std::to_string(opt.limits.max_message_bytes) + " bytes");
  }
  if (ec == net::error::eof) co_return unavailable("the peer closed the connection");
  if (ec) co_return unavailable("cannot read: " + ec.message());
  std::string line = c->read_buffer.substr(0, n);
  c->read_buffer.erase(0, n);
  co_return line;
}

net::awaitable<std::string> QmpSocketChannel::Impl::handshake(std::shared_ptr<Connection> c) {
  auto [connect_ec] = co_await c->socket.async_connect(local::endpoint(opt.path), kNoThrow);
  if (connect_ec) co_return "cannot connect to " + opt.path + ": " + connect_ec.message();
  auto greeting_line = co_await readLine(c);
  if (!greeting_line) co_return "no greeting: " + greeting_line.error().message;
  auto greeting = parseQmpMessage(*greeting_line, opt.limits);
  if (!greeting) co_return "no greeting: " + greeting.error().message;
  const auto* hello = std::get_if<QmpGreeting>(&*greeting);
  if (hello == nullptr) co_return "the peer did not start with a QMP greeting";
  {
    std::lock_guard lock(mu);
    version = hello->version;
  }
  // No capability is asked for: without "oob" QEMU runs commands in order, one at a time.
  const std::string negotiate =
      json{{"execute", "qmp_capabilities"}, {"id", kNegotiationId}}.dump() + "\n";
  auto [write_ec, written] = co_await net::async_write(c->socket, net::buffer(negotiate), kNoThrow);
  if (write_ec) co_return "cannot send qmp_capabilities: " + write_ec.message();
  for (;;) {
    auto line = co_await readLine(c);
    if (!line) co_return "no answer to qmp_capabilities: " + line.error().message;
    auto message = parseQmpMessage(*line, opt.limits);
    if (!message) co_return "no answer to qmp_capabilities: " + message.error().message;
    if (const auto* event = std::get_if<QmpEvent>(&*message)) {
      subscribers->dispatch(*event);
      continue;
    }
    if (const auto* error = std::get_if<QmpErrorReply>(&*message)) {
      co_return "qmp_capabilities refused: " + error->error_class + ": " + error->desc;
    }
    const auto* ret = std::get_if<QmpReturn>(&*message);
    if (ret == nullptr || ret->id != kNegotiationId) {
      co_return "the peer answered qmp_capabilities with something else";
    }
    co_return std::string();
  }
}

void QmpSocketChannel::Impl::finishAttempt(const std::shared_ptr<Connection>& c,
                                           const std::string& error) {
  {
    std::lock_guard lock(mu);
    ++attempts_done;
    if (error.empty() && !closed) {
      state = State::kConnected;
      c->generation = ++generation;
    } else {
      state = State::kIdle;
      last_error = error.empty() ? closed_reason : error;
    }
  }
  state_cv.notify_all();
}

net::awaitable<void> QmpSocketChannel::Impl::session(std::shared_ptr<Impl> self,
                                                     std::shared_ptr<Connection> c,
                                                     Clock::time_point deadline) {
  if (self->conn) self->drop(self->conn, "replaced by a new connection");
  self->conn = c;
  {
    std::lock_guard lock(self->mu);
    if (self->closed) {
      self->conn.reset();
      ++self->attempts_done;
      self->state = State::kIdle;
      self->state_cv.notify_all();
      co_return;
    }
  }
  c->watchdog.expires_at(deadline);
  std::weak_ptr<Connection> weak = c;
  c->watchdog.async_wait([weak](boost::system::error_code ec) {
    auto conn = weak.lock();
    if (ec || !conn) return;
    conn->handshake_timed_out = true;
    conn->socket.close(ec);
  });
  std::string error = co_await self->handshake(c);
  c->watchdog.cancel();
  if (c->handshake_timed_out) {
    error = "no QMP greeting and negotiation within " + msText(self->opt.connect_timeout) +
            " (is another client connected? QMP serves one at a time)";
  } else if (error.empty() && c->closed) {
    error = "closed while connecting";
  }
  if (!error.empty()) {
    c->closed = true;
    boost::system::error_code ignored;
    c->socket.close(ignored);
    if (self->conn == c) self->conn.reset();
    self->finishAttempt(c, error);
    kLog.warn("cannot connect to QMP", {{"qmp", self->opt.name}, {"reason", error}});
    co_return;
  }
  self->finishAttempt(c, {});
  if (c->generation == 0) {  // closed meanwhile
    self->drop(c, self->closed_reason);
    co_return;
  }
  kLog.info("QMP connected",
            {{"qmp", self->opt.name}, {"generation", std::to_string(c->generation)}});
  std::string why = co_await self->readLoop(c);
  self->drop(c, why);
}

net::awaitable<std::string> QmpSocketChannel::Impl::readLoop(std::shared_ptr<Connection> c) {
  for (;;) {
    auto line = co_await readLine(c);
    if (!line) co_return line.error().message;
    if (line->find_first_not_of(" \t\r\n") == std::string::npos) continue;
    auto message = parseQmpMessage(*line, opt.limits);
    if (!message) co_return "the peer sent an unreadable message: " + message.error().message;
    if (const auto* event = std::get_if<QmpEvent>(&*message)) {
      subscribers->dispatch(*event);
    } else if (!std::holds_alternative<QmpGreeting>(*message)) {
      deliver(*message);
    } else {
      co_return "the peer sent a second greeting";
    }
    if (c->closed) co_return "closed";  // dropped already, with its reason
  }
}

void QmpSocketChannel::Impl::deliver(const QmpMessage& reply) {
  const auto* ret = std::get_if<QmpReturn>(&reply);
  const auto* error = std::get_if<QmpErrorReply>(&reply);
  const json& id = ret != nullptr ? ret->id : error->id;
  int64_t n = 0;
  std::shared_ptr<Pending> p;
  {
    std::lock_guard lock(mu);
    auto it = jsonInt64(id, &n) ? pending.find(n) : pending.end();
    if (it == pending.end()) {
      // The late reply of a command that timed out (or a reply to nothing we sent).
      kLog.debug("QMP reply to no waiting command", {{"qmp", opt.name}, {"id", qmpShortDump(id)}});
      return;
    }
    p = std::move(it->second);
    pending.erase(it);
    p->done = true;
    if (ret != nullptr) {
      p->result = ret->value;
    } else {
      p->result = std::unexpected(qmpErrorToError(p->command, *error));
    }
    p->cv.notify_all();
  }
}

void QmpSocketChannel::Impl::drop(std::shared_ptr<Connection> c, const std::string& why) {
  if (c->closed) return;
  c->closed = true;
  boost::system::error_code ignored;
  c->watchdog.cancel();
  c->write_timer.cancel();
  c->socket.close(ignored);
  c->writes.clear();
  if (conn == c) conn.reset();
  bool shutting_down = false;
  {
    std::lock_guard lock(mu);
    shutting_down = closed;
    if (c->generation != 0 && state == State::kConnected && generation == c->generation) {
      state = State::kIdle;
      failPendingLocked(c->generation, why);
    }
  }
  state_cv.notify_all();
  if (!shutting_down && c->generation != 0) {
    kLog.warn("QMP connection lost",
              {{"qmp", opt.name}, {"generation", std::to_string(c->generation)}, {"reason", why}});
  }
}

// ---- QmpRuntime::stop ----

void QmpRuntime::stop() {
  std::vector<std::shared_ptr<QmpSocketChannel::Impl>> channels;
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->stopping) {
      impl_->stopping = true;
      for (auto& weak : impl_->channels) {
        if (auto channel = weak.lock()) channels.push_back(std::move(channel));
      }
      impl_->channels.clear();
    }
  }
  // Closing the connections ends every coroutine: reads and writes fail, timers are cancelled.
  for (auto& channel : channels) channel->shutdown("the QMP runtime stopped");
  channels.clear();
  {
    std::lock_guard lock(impl_->mu);
    impl_->guard.reset();  // run() returns once the coroutines have ended
  }
  if (!impl_->thread.joinable()) return;
  if (onIoThread()) {
    kLog.error("QmpRuntime::stop from its own I/O thread: not joined");
    impl_->thread.detach();
    return;
  }
  impl_->thread.join();
  std::unique_ptr<net::io_context> dead;
  {
    std::lock_guard lock(impl_->mu);
    dead = std::move(impl_->ioc);
  }
  // Destroyed outside the lock: what it still holds may release channels.
}

// ---- QmpSocketChannel ----

QmpSocketChannel::QmpSocketChannel(QmpRuntime& runtime, QmpSocketOptions options)
    : impl_(std::make_shared<Impl>(runtime.impl_, std::move(options))) {
  bool stopped = false;
  {
    std::lock_guard lock(runtime.impl_->mu);
    stopped = runtime.impl_->stopping;
    auto& list = runtime.impl_->channels;
    std::erase_if(list, [](const auto& weak) { return weak.expired(); });
    if (!stopped) list.push_back(impl_);
  }
  if (stopped) impl_->shutdown("the QMP runtime stopped");
}

QmpSocketChannel::~QmpSocketChannel() { impl_->shutdown("the QMP channel was closed"); }

Status QmpSocketChannel::connect(milliseconds timeout) {
  if (impl_->rt->thread_id == std::this_thread::get_id()) {
    return makeError(ErrorCode::kInternal, "qmp",
                     "QmpSocketChannel::connect from its own I/O thread would wait for itself");
  }
  const auto deadline = Clock::now() + timeout;
  std::unique_lock lock(impl_->mu);
  if (impl_->state == Impl::State::kConnected && !impl_->closed) return {};
  lock.unlock();
  auto connected = impl_->connectAndRegister({}, deadline, timeout);
  if (!connected) return std::unexpected(connected.error());
  return {};
}

bool QmpSocketChannel::connected() const {
  std::lock_guard lock(impl_->mu);
  return impl_->state == Impl::State::kConnected && !impl_->closed;
}

uint64_t QmpSocketChannel::generation() const {
  std::lock_guard lock(impl_->mu);
  return impl_->state == Impl::State::kConnected ? impl_->generation : 0;
}

json QmpSocketChannel::serverVersion() const {
  std::lock_guard lock(impl_->mu);
  return impl_->version;
}

Result<json> QmpSocketChannel::doExecute(std::string_view command, json arguments,
                                         milliseconds timeout) {
  if (impl_->rt->thread_id == std::this_thread::get_id()) {
    return makeError(ErrorCode::kInternal, "qmp",
                     "QmpChannel::execute(" + std::string(command) +
                         ") from the channel's own I/O thread (an event handler) would never "
                         "see its reply");
  }
  return impl_->execute(command, std::move(arguments), timeout);
}

QmpSubscription QmpSocketChannel::doSubscribe(std::string event_name, QmpEventHandler handler) {
  return impl_->subscribers->add(std::move(event_name), std::move(handler));
}

}  // namespace qiao
