// ApiServer: the node API's HTTPS listener (Boost.Beast on one Asio io_context with
// coroutines). TLS 1.2+ only; the client certificate must chain to the cluster CA (a
// certificate that does not fails the handshake; no certificate at all gets a 401 from the
// handlers). Bodies are capped (413), every read has a deadline, connections are bounded.
// Handlers run on a small thread pool so the io thread never blocks; GET /v1/events streams
// server-sent events. Beast and Asio stay in server.cc.
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
  int64_t max_body_bytes = 1 << 20;
  int max_connections = 256;
  int request_timeout_s = 30;
  int handler_threads = 4;
  int event_keepalive_s = 15;
  // Requests whose body is streamed to a file in upload_dir instead of memory (image data),
  // up to max_upload_bytes; the handler sees ApiRequest::upload_*.
  std::function<bool(const std::string& method, const std::string& target)> streams_body;
  std::string upload_dir;
  int64_t max_upload_bytes = int64_t{64} << 30;
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
