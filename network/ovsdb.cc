// RFC 7047 over a unix stream socket. The reader thread owns the connection's life (connect,
// read, drop, reconnect with backoff); callers write their requests themselves, one at a time
// per connection, and wait for the reader to hand them the reply.
#include "network/ovsdb.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "base/json_input.h"
#include "base/log.h"

namespace qiao {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

const Logger kLog("ovsdb");

std::unexpected<Error> invalid(std::string message) {
  return makeError(ErrorCode::kInvalidArgument, "ovsdb", std::move(message));
}

bool isJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Text for messages and logs of a JSON value the server sent: bounded, and never throwing on
// strings that are not UTF-8.
std::string shortDump(const json& value) {
  std::string text = value.is_string() ? value.get<std::string>()
                                       : value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 512) text = text.substr(0, 512) + "...";
  return text;
}

// A JSON-RPC error answer to `method`, mapped once here.
Error rpcError(const std::string& method, const json& error) {
  std::string what;
  if (error.is_object() && error.contains("error")) {
    what = shortDump(error["error"]);
    if (error.contains("details")) what += ": " + shortDump(error["details"]);
  } else {
    what = shortDump(error);
  }
  ErrorCode code =
      what.starts_with("unknown database") ? ErrorCode::kNotFound : ErrorCode::kInternal;
  return Error{code, "ovsdb", "ovsdb-server refused " + method + ": " + what, {}};
}

// The error of one operation of a transaction (RFC 7047 5.2 and 4.1.3), mapped once here.
Error operationError(const json& result, const std::string& where) {
  std::string error = shortDump(result["error"]);
  std::string message = "ovsdb transaction failed at " + where + ": " + error;
  if (result.contains("details")) message += ": " + shortDump(result["details"]);
  ErrorCode code = ErrorCode::kInternal;
  // A "wait" that timed out, a duplicate name or a dangling reference: the database is not
  // in the state the transaction was built for (someone else changed it); run it again.
  if (error == "timed out" || error == "referential integrity violation" || error == "not owner") {
    code = ErrorCode::kConflict;
  } else if (error == "constraint violation") {
    code = ErrorCode::kInvalidArgument;
  } else if (error == "resources exhausted" || error == "I/O error") {
    code = ErrorCode::kUnavailable;
  }
  return Error{code, "ovsdb", std::move(message), {}};
}


}  // namespace

// ---- JsonStreamSplitter ----

JsonStreamSplitter::JsonStreamSplitter(size_t max_message_bytes, int max_depth)
    : max_message_bytes_(max_message_bytes), max_depth_(max_depth) {}

void JsonStreamSplitter::reset() {
  partial_.clear();
  stack_.clear();
  in_string_ = false;
  escaped_ = false;
  failed_ = false;
}

Status JsonStreamSplitter::feed(std::string_view bytes, std::vector<std::string>* out) {
  if (failed_) return invalid("the OVSDB stream is unreadable since an earlier error");
  auto fail = [&](ErrorCode code, std::string message) {
    failed_ = true;
    partial_.clear();
    stack_.clear();
    return makeError(code, "ovsdb", std::move(message));
  };
  auto tooBig = [&] {
    return fail(ErrorCode::kPayloadTooLarge,
                "an OVSDB message is larger than " + std::to_string(max_message_bytes_) + " bytes");
  };
  // The current text's bytes are copied in spans, not one by one: a big dump arrives in
  // many reads of 64 KiB.
  size_t start = partial_.empty() ? std::string_view::npos : 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (stack_.empty()) {
      // Between texts: only whitespace, then the opening bracket of the next one. A bare
      // scalar cannot be delimited without a separator, and is no OVSDB message anyway.
      if (isJsonSpace(c)) continue;
      if (c != '{' && c != '[') {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(c));
        return fail(
            ErrorCode::kInvalidArgument,
            std::string("the OVSDB stream has a byte outside any JSON object (") + hex + ")");
      }
      start = i;
      stack_.push_back(c);
      continue;
    }
    if (in_string_) {
      if (escaped_) {
        escaped_ = false;
      } else if (c == '\\') {
        escaped_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      if (static_cast<int>(stack_.size()) >= max_depth_) {
        return fail(ErrorCode::kInvalidArgument, "an OVSDB message is nested deeper than " +
                                                     std::to_string(max_depth_) + " levels");
      }
      stack_.push_back(c);
    } else if (c == '}' || c == ']') {
      const char open = c == '}' ? '{' : '[';
      if (stack_.back() != open) {
        return fail(ErrorCode::kInvalidArgument, std::string("an OVSDB message has a '") + c +
                                                     "' that closes a '" + stack_.back() + "'");
      }
      stack_.pop_back();
      if (stack_.empty()) {
        const size_t length = i + 1 - start;
        if (partial_.size() + length > max_message_bytes_) return tooBig();
        partial_.append(bytes.substr(start, length));
        out->push_back(std::move(partial_));
        partial_.clear();
        start = std::string_view::npos;
      }
    }
  }
  if (!stack_.empty()) {
    const size_t length = bytes.size() - start;
    if (partial_.size() + length > max_message_bytes_) return tooBig();
    partial_.append(bytes.substr(start, length));
  }
  return {};
}

// ---- parseOvsdbMessage ----

Result<OvsdbMessage> parseOvsdbMessage(std::string_view text, int max_depth) {
  auto doc = parseJsonObject(text, max_depth, "OVSDB message");
  // parseJsonObject speaks for API bodies; say who is talking.
  if (!doc) return invalid(doc.error().message);
  const json& obj = *doc;
  for (const auto& [key, value] : obj.items()) {
    static const std::set<std::string> kKnown = {"id", "method", "params", "result", "error"};
    if (!kKnown.contains(key)) {
      return invalid("an OVSDB message has an unknown member \"" + key.substr(0, 64) + "\"");
    }
  }
  if (!obj.contains("id")) return invalid("an OVSDB message has no \"id\"");
  OvsdbMessage message;
  message.id = obj["id"];
  if (obj.contains("method")) {
    if (obj.contains("result") || obj.contains("error")) {
      return invalid("an OVSDB request has a \"result\" or \"error\"");
    }
    if (!obj["method"].is_string()) {
      return invalid("an OVSDB request's \"method\" is " + describeJsonType(obj["method"]) +
                     ", not a string");
    }
    if (!obj.contains("params") || !obj["params"].is_array()) {
      return invalid("an OVSDB request's \"params\" must be an array");
    }
    message.kind =
        message.id.is_null() ? OvsdbMessage::Kind::kNotification : OvsdbMessage::Kind::kRequest;
    message.method = obj["method"].get<std::string>();
    message.params = obj["params"];
    return message;
  }
  if (obj.contains("params")) return invalid("an OVSDB response has \"params\"");
  if (message.id.is_null()) return invalid("an OVSDB response has a null \"id\"");
  message.kind = OvsdbMessage::Kind::kResponse;
  if (obj.contains("result")) message.result = obj["result"];
  if (obj.contains("error")) message.error = obj["error"];
  if (message.result.is_null() == message.error.is_null()) {
    return invalid(message.error.is_null()
                       ? "an OVSDB response has neither a \"result\" nor an \"error\""
                       : "an OVSDB response has both a \"result\" and an \"error\"");
  }
  return message;
}

// ---- OvsdbClient ----

struct OvsdbClient::Connection {
  UniqueFd fd;
  uint64_t generation = 0;
  std::mutex write_mu;  // one request's bytes at a time
};

struct OvsdbClient::Pending {
  std::string method;
  int64_t id = 0;
  uint64_t generation = 0;
  bool done = false;
  Result<json> result;
  // Set for the reader's own requests (monitors issued again), which nobody waits for.
  std::function<void(Result<json>)> on_reply;
  Clock::time_point deadline;
};

struct OvsdbClient::Monitor {
  std::string id;
  std::string db;
  json requests;
  MonitorMethod method = MonitorMethod::kMonitor;
  MonitorHandler handler;
  uint64_t issued_generation = 0;  // issued at most once per connection
  bool waiting_first = true;       // monitor() waits for the first reply
  bool first_done = false;
  Result<json> first_result;
};

OvsdbClient::OvsdbClient(OvsdbClientOptions options) : options_(std::move(options)) {}

OvsdbClient::~OvsdbClient() { stop(); }

milliseconds OvsdbClient::timeoutOr(milliseconds timeout) const {
  return timeout.count() > 0 ? timeout : options_.call_timeout;
}

void OvsdbClient::start() {
  std::lock_guard lock(mu_);
  if (started_) return;
  started_ = true;
  wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  reader_ = std::thread(withLogScope([this] { run(); }));
}

void OvsdbClient::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (wake_fd_.valid()) {
    uint64_t one = 1;
    (void)!::write(wake_fd_.get(), &one, sizeof one);
  }
  if (reader_.joinable()) reader_.join();
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(mu_);
    conn = conn_;
  }
  if (conn) dropConnection(conn, "the client is stopping");
}

bool OvsdbClient::connected() const {
  std::lock_guard lock(mu_);
  return conn_ != nullptr;
}

uint64_t OvsdbClient::generation() const {
  std::lock_guard lock(mu_);
  return conn_ ? conn_->generation : 0;
}

void OvsdbClient::run() {
  {
    std::lock_guard lock(mu_);
    reader_id_ = std::this_thread::get_id();
  }
  milliseconds backoff = options_.min_backoff;
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
    }
    bool useful = false;
    if (connectOnce()) {
      std::shared_ptr<Connection> conn;
      {
        std::lock_guard lock(mu_);
        conn = conn_;
      }
      if (conn) useful = readLoop(conn);
    }
    // A connection that carried messages was healthy: start the backoff over. One that the
    // server closed at once counts as a failed attempt, so a server stuck in a loop of
    // accepting and closing is not hammered.
    backoff = useful ? options_.min_backoff : std::min(backoff * 2, options_.max_backoff);
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, useful ? options_.min_backoff : backoff,
                 [&] { return stopping_ || reconnect_now_; });
    reconnect_now_ = false;
  }
}

bool OvsdbClient::connectOnce() {
  auto failed = [&](std::string why) {
    {
      std::lock_guard lock(mu_);
      ++attempts_;
      last_connect_error_ = std::move(why);
    }
    cv_.notify_all();
    return false;
  };
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return failed(std::string("socket: ") + std::strerror(errno));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (options_.socket.size() >= sizeof addr.sun_path) {
    return failed("the socket path is longer than " + std::to_string(sizeof addr.sun_path - 1) +
                  " bytes");
  }
  std::memcpy(addr.sun_path, options_.socket.data(), options_.socket.size());
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) {
      // EAGAIN: the server's backlog is full, as good as refused for now.
      return failed(std::strerror(errno));
    }
    pollfd pfd{fd.get(), POLLOUT, 0};
    int rc = ::poll(&pfd, 1, static_cast<int>(options_.connect_timeout.count()));
    if (rc <= 0) return failed(rc == 0 ? "connection timed out" : std::strerror(errno));
    int error = 0;
    socklen_t len = sizeof error;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) return failed(std::strerror(error));
  }
  auto conn = std::make_shared<Connection>();
  conn->fd = std::move(fd);
  std::vector<std::shared_ptr<Monitor>> to_issue;
  bool again = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    conn->generation = ++generation_;
    conn_ = conn;
    ++attempts_;
    again = conn->generation > 1;
    last_connect_error_.clear();
    for (auto& [id, monitor] : monitors_) {
      if (monitor->issued_generation == conn->generation) continue;
      monitor->issued_generation = conn->generation;
      to_issue.push_back(monitor);
    }
  }
  cv_.notify_all();
  kLog.info(again ? "reconnected to ovsdb-server" : "connected to ovsdb-server",
            {{"socket", options_.socket}});
  for (auto& monitor : to_issue) issueMonitor(conn, monitor);
  return true;
}

bool OvsdbClient::readLoop(const std::shared_ptr<Connection>& conn) {
  JsonStreamSplitter splitter(options_.max_message_bytes, options_.max_depth);
  std::vector<char> buffer(64 * 1024);
  std::vector<std::string> texts;
  bool useful = false;
  while (true) {
    pollfd fds[2] = {{conn->fd.get(), POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
    // The poll wakes up now and then to expire the reader's own requests.
    int rc = ::poll(fds, 2, 100);
    expireAsync();
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
    }
    if (rc < 0 && errno != EINTR) {
      dropConnection(conn, std::string("poll: ") + std::strerror(errno));
      return useful;
    }
    if (rc <= 0 || (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    ssize_t n = ::recv(conn->fd.get(), buffer.data(), buffer.size(), 0);
    if (n == 0) {
      dropConnection(conn, "ovsdb-server closed the connection");
      return useful;
    }
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      dropConnection(conn, std::string("read: ") + std::strerror(errno));
      return useful;
    }
    texts.clear();
    auto split = splitter.feed(std::string_view(buffer.data(), static_cast<size_t>(n)), &texts);
    for (auto& text : texts) {
      auto message = parseOvsdbMessage(text, options_.max_depth);
      if (!message) {
        dropConnection(conn, message.error().message);
        return useful;
      }
      useful = true;
      dispatch(conn, std::move(*message));
    }
    if (!split) {
      dropConnection(conn, split.error().message);
      return useful;
    }
  }
  return useful;
}

void OvsdbClient::dropConnection(const std::shared_ptr<Connection>& conn, const std::string& why) {
  // Wakes a writer blocked on this socket; the fd itself closes with the last reference.
  ::shutdown(conn->fd.get(), SHUT_RDWR);
  std::vector<std::shared_ptr<Pending>> orphans;
  bool stopping = false;
  {
    std::lock_guard lock(mu_);
    stopping = stopping_;
    if (conn_ == conn) conn_.reset();
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second->generation != conn->generation) {
        ++it;
        continue;
      }
      auto& pending = it->second;
      pending->done = true;
      pending->result = makeError(ErrorCode::kUnavailable, "ovsdb",
                                  "lost the connection to ovsdb-server at " + options_.socket +
                                      " during " + pending->method + ": " + why);
      if (pending->on_reply) orphans.push_back(pending);
      it = pending_.erase(it);
    }
  }
  cv_.notify_all();
  if (!stopping) kLog.warn("connection lost", {{"socket", options_.socket}, {"reason", why}});
  for (auto& pending : orphans) pending->on_reply(pending->result);
}

void OvsdbClient::dispatch(const std::shared_ptr<Connection>& conn, OvsdbMessage message) {
  switch (message.kind) {
    case OvsdbMessage::Kind::kResponse: deliverReply(message); return;
    case OvsdbMessage::Kind::kRequest: {
      // ovsdb-server probes idle clients with "echo" and drops those that do not answer.
      json reply = {{"id", message.id}, {"result", nullptr}, {"error", nullptr}};
      if (message.method == "echo")
        reply["result"] = message.params;
      else
        reply["error"] = "unknown method";
      auto sent = writeAll(conn, reply.dump(-1, ' ', false, json::error_handler_t::replace),
                           Clock::now() + options_.call_timeout);
      if (!sent) kLog.warn("cannot answer ovsdb-server", {{"reason", sent.error().message}});
      return;
    }
    case OvsdbMessage::Kind::kNotification: {
      const bool update = message.method == "update";
      if ((!update && message.method != "update2") || message.params.size() != 2 ||
          !message.params[0].is_string()) {
        return;  // "locked", "stolen", ...: nothing Qiao asks for
      }
      std::shared_ptr<Monitor> monitor;
      {
        std::lock_guard lock(mu_);
        auto it = monitors_.find(message.params[0].get<std::string>());
        if (it != monitors_.end()) monitor = it->second;
      }
      if (monitor && (monitor->method == MonitorMethod::kMonitor) == update) {
        monitor->handler(message.params[1], false);
      }
      return;
    }
  }
}

void OvsdbClient::deliverReply(const OvsdbMessage& message) {
  int64_t id = 0;
  std::shared_ptr<Pending> pending;
  {
    std::lock_guard lock(mu_);
    auto it = jsonInt64(message.id, &id) ? pending_.find(id) : pending_.end();
    if (it == pending_.end()) {
      // The answer to a call that timed out.
      kLog.debug("reply to no pending call", {{"id", shortDump(message.id)}});
      return;
    }
    pending = it->second;
    pending_.erase(it);
    pending->done = true;
    if (message.error.is_null())
      pending->result = message.result;
    else
      pending->result = std::unexpected(rpcError(pending->method, message.error));
  }
  if (pending->on_reply)
    pending->on_reply(pending->result);
  else
    cv_.notify_all();
}

void OvsdbClient::expireAsync() {
  std::vector<std::shared_ptr<Pending>> expired;
  {
    std::lock_guard lock(mu_);
    const auto now = Clock::now();
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (!it->second->on_reply || it->second->deadline > now) {
        ++it;
        continue;
      }
      it->second->done = true;
      it->second->result =
          makeError(ErrorCode::kTimeout, "ovsdb",
                    "ovsdb-server did not answer " + it->second->method + " in time");
      expired.push_back(it->second);
      it = pending_.erase(it);
    }
  }
  for (auto& pending : expired) pending->on_reply(pending->result);
}

Result<std::shared_ptr<OvsdbClient::Connection>> OvsdbClient::ensureConnected(
    Clock::time_point deadline) {
  std::unique_lock lock(mu_);
  if (!started_ || stopping_) {
    return makeError(ErrorCode::kUnavailable, "ovsdb", "the OVSDB client is not running");
  }
  if (conn_) return conn_;
  const uint64_t seen = attempts_;
  reconnect_now_ = true;
  cv_.notify_all();
  cv_.wait_until(lock, deadline, [&] { return stopping_ || conn_ || attempts_ > seen; });
  if (conn_) return conn_;
  return makeError(ErrorCode::kUnavailable, "ovsdb",
                   "cannot connect to ovsdb-server at " + options_.socket + ": " +
                       (last_connect_error_.empty() ? "no answer" : last_connect_error_) +
                       " (is ovsdb-server running?)");
}

Status OvsdbClient::writeAll(const std::shared_ptr<Connection>& conn, const std::string& text,
                             Clock::time_point deadline) {
  std::lock_guard lock(conn->write_mu);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::send(conn->fd.get(), text.data() + done, text.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) {
      const int error = errno;
      ::shutdown(conn->fd.get(), SHUT_RDWR);
      return makeError(
          ErrorCode::kUnavailable, "ovsdb",
          "cannot write to ovsdb-server at " + options_.socket + ": " + std::strerror(error));
    }
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    pollfd pfd{conn->fd.get(), POLLOUT, 0};
    if (left <= 0 || ::poll(&pfd, 1, static_cast<int>(left)) == 0) {
      // Half a request is on the wire: the stream is lost either way.
      ::shutdown(conn->fd.get(), SHUT_RDWR);
      return makeError(ErrorCode::kTimeout, "ovsdb",
                       "ovsdb-server at " + options_.socket + " does not take requests");
    }
  }
  return {};
}

Status OvsdbClient::send(const std::shared_ptr<Connection>& conn, const std::string& method,
                         const json& params, const std::shared_ptr<Pending>& pending,
                         Clock::time_point deadline) {
  pending->method = method;
  {
    std::lock_guard lock(mu_);
    if (conn_ != conn) {
      return makeError(ErrorCode::kUnavailable, "ovsdb",
                       "lost the connection to ovsdb-server at " + options_.socket);
    }
    pending->id = next_id_++;
    pending->generation = conn->generation;
    pending_[pending->id] = pending;
  }
  std::string text;
  try {
    text = json{{"method", method}, {"params", params}, {"id", pending->id}}.dump();
  } catch (const json::exception&) {
    std::lock_guard lock(mu_);
    pending_.erase(pending->id);
    return invalid("a request to ovsdb-server (" + method + ") has a string that is not UTF-8");
  }
  if (auto sent = writeAll(conn, text, deadline); !sent) {
    std::lock_guard lock(mu_);
    pending_.erase(pending->id);
    return sent;
  }
  return {};
}

Result<json> OvsdbClient::call(const std::string& method, json params, milliseconds timeout) {
  {
    std::lock_guard lock(mu_);
    if (std::this_thread::get_id() == reader_id_) {
      return makeError(ErrorCode::kInternal, "ovsdb",
                       "OvsdbClient::call from its own reader thread (a monitor handler) would "
                       "never see its reply");
    }
  }
  const auto wait = timeoutOr(timeout);
  const auto deadline = Clock::now() + wait;
  auto conn = ensureConnected(deadline);
  if (!conn) return std::unexpected(conn.error());
  auto pending = std::make_shared<Pending>();
  if (auto sent = send(*conn, method, params, pending, deadline); !sent) {
    return std::unexpected(sent.error());
  }
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline, [&] { return pending->done || stopping_; });
  if (pending->done) return pending->result;
  pending_.erase(pending->id);
  if (stopping_) return makeError(ErrorCode::kUnavailable, "ovsdb", "the OVSDB client stopped");
  return makeError(ErrorCode::kTimeout, "ovsdb",
                   "ovsdb-server at " + options_.socket + " did not answer " + method + " within " +
                       std::to_string(wait.count()) + " ms");
}

Result<json> OvsdbClient::transact(const std::string& db, const json& operations,
                                   milliseconds timeout) {
  if (!operations.is_array()) return invalid("transact: the operations must be an array");
  json params = json::array({db});
  for (const auto& op : operations) params.push_back(op);
  auto results = call("transact", std::move(params), timeout);
  if (!results) return results;
  if (!results->is_array()) {
    return makeError(ErrorCode::kInternal, "ovsdb",
                     "ovsdb-server answered a transaction with " + describeJsonType(*results));
  }
  for (size_t i = 0; i < results->size(); ++i) {
    const json& result = (*results)[i];
    if (!result.is_object() || !result.contains("error")) continue;
    // A result past the last operation is the commit's own error (RFC 7047 4.1.3).
    std::string where = "the commit";
    if (i < operations.size()) {
      const json& op = operations[i];
      where = "operation " + std::to_string(i + 1) + " (" +
              (op.contains("op") ? shortDump(op["op"]) : "?") +
              (op.contains("table") ? " " + shortDump(op["table"]) : "") + ")";
    }
    return std::unexpected(operationError(result, where + " on " + db));
  }
  if (results->size() < operations.size()) {
    return makeError(ErrorCode::kInternal, "ovsdb",
                     "ovsdb-server answered " + std::to_string(results->size()) + " results to " +
                         std::to_string(operations.size()) + " operations");
  }
  return results;
}

void OvsdbClient::issueMonitor(const std::shared_ptr<Connection>& conn,
                               const std::shared_ptr<Monitor>& monitor) {
  auto pending = std::make_shared<Pending>();
  pending->deadline = Clock::now() + options_.call_timeout;
  pending->on_reply = [this, monitor](Result<json> result) {
    bool first = false;
    {
      std::lock_guard lock(mu_);
      if (monitor->waiting_first) {
        first = true;
        monitor->first_done = true;
        monitor->first_result = result;
        cv_.notify_all();
      } else if (!result && (result.error().code == ErrorCode::kInternal ||
                             result.error().code == ErrorCode::kNotFound)) {
        monitors_.erase(monitor->id);
      }
    }
    if (result) {
      monitor->handler(*result, true);
    } else if (!first) {
      kLog.warn("cannot set up a monitor again",
                {{"monitor", monitor->id}, {"reason", result.error().message}});
    }
  };
  const char* method = monitor->method == MonitorMethod::kMonitor ? "monitor" : "monitor_cond";
  auto sent = send(conn, method, json::array({monitor->db, monitor->id, monitor->requests}),
                   pending, pending->deadline);
  if (!sent) pending->on_reply(std::unexpected(sent.error()));
}

Result<json> OvsdbClient::monitor(const std::string& db, const json& requests,
                                  MonitorHandler handler, MonitorMethod method,
                                  milliseconds timeout) {
  const auto wait = timeoutOr(timeout);
  const auto deadline = Clock::now() + wait;
  auto monitor = std::make_shared<Monitor>();
  monitor->db = db;
  monitor->requests = requests;
  monitor->method = method;
  monitor->handler = std::move(handler);
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(mu_);
    if (std::this_thread::get_id() == reader_id_) {
      return makeError(ErrorCode::kInternal, "ovsdb",
                       "OvsdbClient::monitor from its own reader thread would never see its "
                       "reply");
    }
    monitor->id = "qiao-" + std::to_string(next_monitor_++);
    monitors_[monitor->id] = monitor;
    conn = conn_;
    if (conn) monitor->issued_generation = conn->generation;
  }
  if (conn) {
    issueMonitor(conn, monitor);
  } else if (auto connected = ensureConnected(deadline); !connected) {
    // Registered all the same: the next connection issues it.
    std::lock_guard lock(mu_);
    monitor->waiting_first = false;
    return std::unexpected(connected.error());
  }
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline, [&] { return monitor->first_done || stopping_; });
  monitor->waiting_first = false;
  if (!monitor->first_done) {
    return makeError(stopping_ ? ErrorCode::kUnavailable : ErrorCode::kTimeout, "ovsdb",
                     "ovsdb-server at " + options_.socket + " did not answer a monitor of " + db +
                         " within " + std::to_string(wait.count()) + " ms");
  }
  if (monitor->first_result) return std::move(*monitor->first_result);
  Error error = monitor->first_result.error();
  if (error.code == ErrorCode::kInternal || error.code == ErrorCode::kNotFound) {
    monitors_.erase(monitor->id);
  }
  return std::unexpected(std::move(error));
}

Status OvsdbTableCache::apply(const json& updates, bool initial) {
  auto bad = [](const std::string& what) {
    return makeError(ErrorCode::kInvalidArgument, "ovsdb", "monitor update: " + what);
  };
  if (!updates.is_object()) return bad("not an object of tables");
  for (const auto& [table, rows] : updates.items()) {
    if (!rows.is_object()) return bad("table " + table + " is not an object of rows");
    for (const auto& [uuid, change] : rows.items()) {
      if (!change.is_object()) return bad("a row update of " + table + " is not an object");
      if (change.contains("new") && !change["new"].is_object()) {
        return bad("the new row of " + table + " is not an object");
      }
    }
  }
  if (initial) tables_.clear();
  for (const auto& [table, rows] : updates.items()) {
    auto& cached = tables_[table];
    for (const auto& [uuid, change] : rows.items()) {
      auto next = change.find("new");
      if (next == change.end()) {
        cached.erase(uuid);
        continue;
      }
      json row = *next;
      row["_uuid"] = json::array({"uuid", uuid});
      cached[uuid] = std::move(row);
    }
  }
  return {};
}

std::vector<json> OvsdbTableCache::rows(const std::string& table) const {
  std::vector<json> out;
  auto it = tables_.find(table);
  if (it == tables_.end()) return out;
  for (const auto& [_, row] : it->second) out.push_back(row);
  return out;
}

}  // namespace qiao
