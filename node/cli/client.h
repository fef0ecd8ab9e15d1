// ApiClient: the node API's HTTPS client with mutual TLS, shared by qiaoctl, the integration
// tests and the benchmarks. One keep-alive connection per client, re-established when it went
// stale; deadlines on connect, handshake, write and read; the server is verified against the
// cluster CA and the endpoint's host name or IP. Beast and OpenSSL stay in client.cc.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"

namespace qiao {

struct ClientConfig {
  std::string endpoint = "https://127.0.0.1:8443";
  std::string ca;
  std::string cert;  // "" with key "": no client certificate (the server answers 401)
  std::string key;
  int timeout_ms = 30000;
};

// Reads explicit_path, else $QIAO_CONFIG, else ~/.config/qiao/config.toml. Keys: endpoint, ca,
// cert, key; unknown keys are an error; relative paths are relative to the file's directory.
Result<ClientConfig> loadClientConfig(const std::string& explicit_path);

struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
  std::map<std::string, std::string> headers;
};

class ApiClient {
 public:
  // Loads the CA, certificate and key now: an unreadable file is an error naming it.
  static Result<ApiClient> create(const ClientConfig& config);
  ApiClient(ApiClient&&) noexcept;
  ApiClient& operator=(ApiClient&&) noexcept;
  ~ApiClient();

  Result<HttpResponse> request(std::string_view method, std::string_view target,
                               std::string_view body = {},
                               std::string_view content_type = "application/json");
  // Server-sent events: on_event(type, data) for each event until it returns false, the
  // server closes the stream, or timeout_ms passes (0: no limit).
  Status streamEvents(std::string_view target,
                      const std::function<bool(std::string_view, std::string_view)>& on_event,
                      int timeout_ms);

 private:
  struct Impl;
  explicit ApiClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The qiao::Error a non-2xx response carries ({"error":{"code","message","details"}}).
Error errorFromResponse(const HttpResponse& response);

}  // namespace qiao
