// ApiClient: the node API's HTTPS client with mutual TLS, shared by qiaoctl, the integration
// tests and the benchmarks. It owns one keep-alive connection, re-established when the server
// closed it; deadlines on connect, handshake, write and read; the server is verified against
// the cluster CA and the endpoint's host name or IP. Beast, Asio and OpenSSL stay in client.cc.
// Thread-compatible: one thread at a time per ApiClient.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"

namespace qiao {

struct ClientConfig {
  // https://127.0.0.1:8443, https://[::1]:8443 or https://host.example:8443.
  std::string endpoint = "https://127.0.0.1:8443";
  std::string ca;    // PEM: the cluster CA the server's certificate must chain to
  std::string cert;  // PEM client certificate; "" with key "": none (the server answers 401)
  std::string key;
  int timeout_ms = 30000;  // each of connect, handshake, write and read
  // The server's certificate is not verified (ca unused): only for `qiaod join` to fetch the
  // cluster CA, which it then trusts only when its SHA-256 is its token's pin.
  bool unverified_server = false;
};

// Reads explicit_path, else $QIAO_CONFIG, else ~/.config/qiao/config.toml. Keys: endpoint, ca,
// cert, key (strings); any other key is an error naming it; relative ca/cert/key paths are
// relative to the configuration file's directory.
Result<ClientConfig> loadClientConfig(const std::string& explicit_path);

struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
  std::map<std::string, std::string> headers;  // as the server spelled the names
};

class ApiClient {
 public:
  // Checks the endpoint and loads the CA, certificate and key now: a missing or unreadable
  // file is an error naming it. Does not connect.
  static Result<ApiClient> create(const ClientConfig& config);
  ApiClient(ApiClient&&) noexcept;
  ApiClient& operator=(ApiClient&&) noexcept;
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;
  ~ApiClient();

  // One request on the kept-alive connection (connecting first when there is none). Any HTTP
  // status is a response; an error means no response came (connect, TLS, timeout, reset).
  // A connection the server had closed is replaced before sending; a GET whose connection
  // breaks before the answer is retried once on a fresh one (other methods are not: the
  // server may have acted).
  Result<HttpResponse> request(std::string_view method, std::string_view target,
                               std::string_view body = {},
                               std::string_view content_type = "application/json");

  // The identity the following requests are sent for ("" for none): a cluster member that
  // forwards a caller's request, with its node certificate, names the caller this way.
  void setOnBehalfOf(std::string identity_uri);

  // PUT of a file's bytes to `target`, streamed from the file (images of any size).
  Result<HttpResponse> upload(std::string_view target, const std::string& path);

  // Server-sent events on a connection of their own: on_event(type, data) for each event
  // until it returns false, the server ends the stream, or timeout_ms passes (0: no limit);
  // each of these is success. A non-200 answer is its error; so is a stream silent for 60 s
  // (the server sends a keepalive comment every 15 s).
  Status streamEvents(std::string_view target,
                      const std::function<bool(std::string_view, std::string_view)>& on_event,
                      int timeout_ms);

 private:
  struct Impl;
  explicit ApiClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The qiao::Error of a non-2xx response: the code from the body's "code" when it names one,
// else from the HTTP status; the message from the body ("HTTP <status>: <text>" when the
// body is not an API error); details_json from "details".
Error errorFromResponse(const HttpResponse& response);

}  // namespace qiao
