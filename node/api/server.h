// ApiServer: the node API's HTTPS listener (Boost.Beast on one Asio io_context with
// coroutines). TLS 1.2+ only; the client certificate must chain to the cluster CA (a
// certificate that does not fails the handshake; no certificate at all gets a 401 from the
// handlers). A request's line and headers go to the admission first (AdmitHandler): a caller
// who may not make it is answered before a byte of the body is read. Bodies are capped
// (413), every read has a deadline, connections are bounded. Whatever the server cannot read
// (413, broken framing, a bad target) is handed to the handler as ApiRequest::transport_error,
// so it is answered and audited like any refusal. Handlers run on a small thread pool so the
// io thread never blocks; GET /v1/events streams server-sent events. Beast and Asio stay in
// server.cc.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/event_bus.h"
#include "node/api/http.h"

namespace qiao {

struct ServerOptions {
  std::vector<std::string> listen{"127.0.0.1:8443"};  // "ip:port", "[v6]:port"; port 0 = any
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // The CA's revocation list (optional file): read again whenever it changes.
  std::string crl_file;
  int64_t max_body_bytes = 1 << 20;
  // Connections: in all (of which admin_reserve only for admins), per source address and per
  // identity (admins are held to neither of these two). A connection over a cap is answered
  // 503 with Retry-After; beyond max_connections + overflow they are closed unanswered.
  int max_connections = 256;
  int max_per_source = 32;
  int max_per_identity = 32;
  int admin_reserve = 16;
  int overflow = 64;
  // Whether an identity, with that certificate, is an admin's (runs on the handler pool);
  // optional: then none is.
  std::function<bool(const std::string& identity_uri, const std::string& serial)> is_admin;
  // An event stream ends after this long (the client reconnects).
  int event_stream_max_s = 3600;
  int request_timeout_s = 30;
  int handler_threads = 4;
  int event_keepalive_s = 15;
  // Requests whose body is streamed to a file in upload_dir instead of memory (image data),
  // up to max_upload_bytes; the handler sees ApiRequest::upload_*. Given the decoded path
  // (qiaod asks its route table: Api::streamsBody).
  std::function<bool(const std::string& method, const std::string& path)> streams_body;
  std::string upload_dir;
  int64_t max_upload_bytes = int64_t{64} << 30;
  // An upload stops (507) when less than this would stay free on upload_dir's filesystem.
  int64_t upload_reserve_bytes = int64_t{2} << 30;
  // Runs on the handler pool after the request line and headers are read, before any body
  // (AdmitHandler); optional.
  AdmitHandler admit;
  // Runs on the handler pool every tick_interval_s while the server runs (the audit log's
  // summaries); optional.
  std::function<void()> on_tick;
  int tick_interval_s = 10;
};

class ApiServer {
 public:
  ApiServer(ServerOptions options, RequestHandler handler, EventBus& events);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Loads the TLS material and binds every listen address. Returns the bound addresses
  // ("127.0.0.1:8443"), with the real port where 0 was asked.
  Result<std::vector<std::string>> listen();
  // Serves until stop(). Call from one thread.
  void run();
  // Thread-safe: stops accepting, closes connections, makes run() return.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qiao
