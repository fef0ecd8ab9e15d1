// OvsdbClient: one RFC 7047 JSON-RPC session with ovsdb-server over its unix socket - calls
// matched to replies by id, echo answered, monitors kept (and set up again after every
// reconnection), with a reader thread that owns the socket. Also the two pieces that read what
// the server sends, which are the fuzz surface: JsonStreamSplitter (OVSDB puts JSON texts back
// to back with no delimiter) and parseOvsdbMessage.
//
// Everything here answers Result/Status with subsystem "ovsdb" and never throws.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/handle.h"

namespace qiao {

// Limits on what the server may send. Real messages are far smaller and shallower (a full
// dump of a big switch is a few MiB, nested about 10 deep); the caps only stop a broken peer
// from exhausting memory or the parser's stack.
inline constexpr size_t kOvsdbMaxMessageBytes = size_t{64} << 20;
inline constexpr int kOvsdbMaxDepth = 64;

// Cuts a byte stream into complete top-level JSON texts (objects or arrays), tracking strings,
// escapes and nesting. It does not validate the grammar inside a text: parseOvsdbMessage does.
// After an error (bytes outside any text, too big, too deep, mismatched brackets) the splitter
// stays failed until reset(): the stream cannot be trusted to resynchronise.
class JsonStreamSplitter {
 public:
  explicit JsonStreamSplitter(size_t max_message_bytes = kOvsdbMaxMessageBytes,
                              int max_depth = kOvsdbMaxDepth);

  // Appends the texts that `bytes` completes to `out` (in order).
  Status feed(std::string_view bytes, std::vector<std::string>* out);
  void reset();
  // Bytes held of an incomplete text.
  size_t buffered() const { return partial_.size(); }

 private:
  size_t max_message_bytes_;
  int max_depth_;
  std::string partial_;  // the current text so far ("" between texts)
  std::string stack_;    // the open brackets of the current text: '{' or '['
  bool in_string_ = false;
  bool escaped_ = false;
  bool failed_ = false;
};

// One JSON-RPC 1.0 message as RFC 7047 uses it.
struct OvsdbMessage {
  enum class Kind { kRequest, kResponse, kNotification };
  Kind kind = Kind::kRequest;
  nlohmann::json id;      // request, response: never null; notification: null
  std::string method;     // request, notification
  nlohmann::json params;  // request, notification: an array
  nlohmann::json result;  // response: non-null unless `error` is
  nlohmann::json error;   // response: null on success
};

// Strict: a JSON object with exactly the members of one kind, of the right types; duplicate
// keys, unknown members and nesting beyond `max_depth` are refused (kInvalidArgument).
Result<OvsdbMessage> parseOvsdbMessage(std::string_view text, int max_depth = kOvsdbMaxDepth);

struct OvsdbClientOptions {
  std::string socket = "/var/run/openvswitch/db.sock";
  std::chrono::milliseconds call_timeout{5000};     // default per call
  std::chrono::milliseconds connect_timeout{2000};  // one connection attempt
  std::chrono::milliseconds min_backoff{100};       // between attempts after a loss, doubling
  std::chrono::milliseconds max_backoff{2000};
  size_t max_message_bytes = kOvsdbMaxMessageBytes;
  int max_depth = kOvsdbMaxDepth;
};

// The rows of monitored tables as a monitor's <table-updates> (RFC 7047 4.1.6, "monitor"
// method) leave them: a row's "new" replaces it, an update without "new" deletes it. Each row
// carries its "_uuid" as ["uuid", "..."], like a select's. Not thread-safe.
class OvsdbTableCache {
 public:
  // `initial` (a monitor's whole contents) replaces everything first. kInvalidArgument, and
  // nothing changed, when `updates` is not of that shape.
  Status apply(const nlohmann::json& updates, bool initial);
  std::vector<nlohmann::json> rows(const std::string& table) const;
  void clear() { tables_.clear(); }

 private:
  std::map<std::string, std::map<std::string, nlohmann::json>> tables_;  // table -> uuid -> row
};

class OvsdbClient {
 public:
  // The <table-updates> (or <table-updates2>) of one monitor. `initial` is true when this is
  // the monitor's whole contents again, after a reconnection: the caller's view may have
  // missed any number of changes meanwhile.
  using MonitorHandler = std::function<void(const nlohmann::json& updates, bool initial)>;
  enum class MonitorMethod { kMonitor, kMonitorCond };  // "update" or "update2" notifications

  explicit OvsdbClient(OvsdbClientOptions options);
  ~OvsdbClient();  // stop()
  OvsdbClient(const OvsdbClient&) = delete;
  OvsdbClient& operator=(const OvsdbClient&) = delete;

  // Starts the reader thread, which connects (and reconnects) on its own; start() does not
  // wait for the connection: a server that comes up later is fine.
  void start();
  // Joins the reader thread and closes the socket; calls in flight fail with kUnavailable.
  void stop();
  bool connected() const;
  // The live connection's number (1 for the first, counting reconnections), 0 while there is
  // none: a view built from a monitor is current while this stays what it was when the
  // monitor's initial contents came.
  uint64_t generation() const;

  // One JSON-RPC call. kUnavailable when the server cannot be reached (after one immediate
  // connection attempt) or the connection is lost before the reply; kTimeout when no reply
  // came in time; kInternal (or kNotFound for an unknown database) when the server answered
  // with an error. A timeout of 0 means options.call_timeout. Must not be called from a
  // MonitorHandler (the reply could never be read): that answers kInternal at once.
  Result<nlohmann::json> call(const std::string& method, nlohmann::json params,
                              std::chrono::milliseconds timeout = {});
  // "transact" on `db` with `operations` (an array). The results array, or the first
  // operation's error (naming the operation), or the commit's error.
  Result<nlohmann::json> transact(const std::string& db, const nlohmann::json& operations,
                                  std::chrono::milliseconds timeout = {});
  // Sets up a monitor of `requests` (<monitor-requests>) on `db` and returns its initial
  // contents. The monitor stays registered for the client's life: `handler` gets the initial
  // contents too (initial=true), then every notification for it, and after each reconnection
  // it is issued again and `handler` gets the new contents with initial=true - also when this
  // first call failed with kUnavailable or kTimeout. A monitor the server refused is dropped.
  // The handler runs on the reader thread, in the order of the server's messages: the update
  // a transaction of this client caused is handled before that transaction returns, because
  // ovsdb-server sends it before the reply (documented in ovsdb-server(7), not in RFC 7047).
  Result<nlohmann::json> monitor(const std::string& db, const nlohmann::json& requests,
                                 MonitorHandler handler,
                                 MonitorMethod method = MonitorMethod::kMonitor,
                                 std::chrono::milliseconds timeout = {});

 private:
  struct Connection;
  struct Pending;
  struct Monitor;
  using Clock = std::chrono::steady_clock;

  void run();
  bool connectOnce();
  // Reads until the connection is lost; true when at least one message came.
  bool readLoop(const std::shared_ptr<Connection>& conn);
  void dropConnection(const std::shared_ptr<Connection>& conn, const std::string& why);
  void dispatch(const std::shared_ptr<Connection>& conn, OvsdbMessage message);
  void deliverReply(const OvsdbMessage& message);
  void expireAsync();
  // The live connection, after one attempt to make one if there is none.
  Result<std::shared_ptr<Connection>> ensureConnected(Clock::time_point deadline);
  // Registers `pending` under a fresh id and writes the request.
  Status send(const std::shared_ptr<Connection>& conn, const std::string& method,
              const nlohmann::json& params, const std::shared_ptr<Pending>& pending,
              Clock::time_point deadline);
  void issueMonitor(const std::shared_ptr<Connection>& conn, const std::shared_ptr<Monitor>& m);
  Status writeAll(const std::shared_ptr<Connection>& conn, const std::string& text,
                  Clock::time_point deadline);
  std::chrono::milliseconds timeoutOr(std::chrono::milliseconds timeout) const;

  const OvsdbClientOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<Connection> conn_;  // null while disconnected
  uint64_t generation_ = 0;           // of the last connection made
  uint64_t attempts_ = 0;             // connection attempts finished
  bool reconnect_now_ = false;        // a caller waits for an attempt: skip the backoff
  bool stopping_ = false;
  bool started_ = false;
  std::string last_connect_error_;
  int64_t next_id_ = 1;
  int next_monitor_ = 1;
  std::map<int64_t, std::shared_ptr<Pending>> pending_;
  std::map<std::string, std::shared_ptr<Monitor>> monitors_;
  UniqueFd wake_fd_;  // eventfd: wakes the reader's poll() for stop()
  std::thread reader_;
  std::thread::id reader_id_;
};

}  // namespace qiao
