#include "node/cli/client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <toml++/toml.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

namespace qiao {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

std::unexpected<Error> clientError(ErrorCode code, const std::string& message) {
  return makeError(code, "client", message);
}

struct Endpoint {
  std::string host;  // without brackets
  std::string port;
  bool is_ip = false;
};

Result<Endpoint> parseEndpoint(const std::string& url) {
  constexpr std::string_view kScheme = "https://";
  if (!url.starts_with(kScheme)) {
    return clientError(ErrorCode::kInvalidArgument,
                       "endpoint " + url + " must start with https://");
  }
  std::string rest = url.substr(kScheme.size());
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  Endpoint ep;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos) {
      return clientError(ErrorCode::kInvalidArgument, "endpoint " + url + ": unclosed [");
    }
    ep.host = rest.substr(1, close - 1);
    ep.port = close + 1 < rest.size() && rest[close + 1] == ':' ? rest.substr(close + 2) : "8443";
  } else {
    auto colon = rest.rfind(':');
    ep.host = rest.substr(0, colon);
    ep.port = colon == std::string::npos ? "8443" : rest.substr(colon + 1);
  }
  if (ep.host.empty() || ep.port.empty() ||
      ep.port.find_first_not_of("0123456789") != std::string::npos) {
    return clientError(ErrorCode::kInvalidArgument, "endpoint " + url + " is not host:port");
  }
  boost::system::error_code ec;
  net::ip::make_address(ep.host, ec);
  ep.is_ip = !ec;
  return ep;
}

std::string tlsMessage(const boost::system::error_code& ec) {
  std::string message = ec.message();
  if (ec.category() == net::error::get_ssl_category()) {
    char buf[256];
    ERR_error_string_n(static_cast<unsigned long>(ec.value()), buf, sizeof buf);
    message = buf;
  }
  return message;
}

}  // namespace

Result<ClientConfig> loadClientConfig(const std::string& explicit_path) {
  std::string path = explicit_path;
  if (path.empty()) {
    if (const char* env = std::getenv("QIAO_CONFIG"); env != nullptr && *env != '\0') {
      path = env;
    } else {
      const char* xdg = std::getenv("XDG_CONFIG_HOME");
      const char* home = std::getenv("HOME");
      std::string base = xdg && *xdg ? xdg : std::string(home ? home : "/root") + "/.config";
      path = base + "/qiao/config.toml";
    }
  }
  std::ifstream in(path);
  if (!in) {
    return clientError(ErrorCode::kInvalidArgument,
                       "cannot read the client configuration " + path +
                           " (keys: endpoint, ca, cert, key; or pass --config)");
  }
  std::stringstream text;
  text << in.rdbuf();
  toml::table root;
  try {
    root = toml::parse(text.str(), path);
  } catch (const toml::parse_error& e) {
    return clientError(ErrorCode::kInvalidArgument,
                       path + ":" + std::to_string(e.source().begin.line) + ": " +
                           std::string(e.description()));
  }
  ClientConfig config;
  auto dir = std::filesystem::path(path).parent_path();
  for (const auto& [key, node] : root) {
    std::string k(key.str());
    auto value = node.value<std::string>();
    if (!node.is_string() || !value) {
      return clientError(ErrorCode::kInvalidArgument, path + ": " + k + " must be a string");
    }
    std::string v = *value;
    bool is_path = k == "ca" || k == "cert" || k == "key";
    if (is_path && !v.empty() && v.front() != '/') v = (dir / v).string();
    if (k == "endpoint") config.endpoint = v;
    else if (k == "ca") config.ca = v;
    else if (k == "cert") config.cert = v;
    else if (k == "key") config.key = v;
    else {
      return clientError(ErrorCode::kInvalidArgument,
                         path + ": unknown key " + k + " (keys: endpoint, ca, cert, key)");
    }
  }
  return config;
}

Error errorFromResponse(const HttpResponse& response) {
  ErrorCode code = ErrorCode::kInternal;
  switch (response.status) {
    case 400: code = ErrorCode::kInvalidArgument; break;
    case 401: code = ErrorCode::kUnauthenticated; break;
    case 403: code = ErrorCode::kPermissionDenied; break;
    case 404: code = ErrorCode::kNotFound; break;
    case 405: code = ErrorCode::kInvalidArgument; break;
    case 409: code = ErrorCode::kConflict; break;
    case 413: code = ErrorCode::kPayloadTooLarge; break;
    case 503: code = ErrorCode::kUnavailable; break;
    case 504: code = ErrorCode::kTimeout; break;
    default: break;
  }
  Error error{code, "api", "HTTP " + std::to_string(response.status), ""};
  auto body = nlohmann::json::parse(response.body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    const auto& e = body["error"];
    if (e.contains("message") && e["message"].is_string()) error.message = e["message"];
    if (e.contains("details") && !e["details"].empty()) error.details_json = e["details"].dump();
    if (e.contains("details") && e["details"].is_object() && e["details"].contains("subsystem") &&
        e["details"]["subsystem"].is_string()) {
      error.subsystem = e["details"]["subsystem"];
    }
  }
  return error;
}

struct ApiClient::Impl {
  ClientConfig config;
  Endpoint endpoint;
  net::io_context ioc;
  ssl::context tls{ssl::context::tls_client};
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
  Clock::time_point last_used{};

  std::chrono::milliseconds timeout() const { return std::chrono::milliseconds(config.timeout_ms); }

  // Runs one asynchronous operation to completion (its deadline comes from the tcp_stream).
  template <typename Start>
  boost::system::error_code run(Start&& start) {
    boost::system::error_code result = net::error::would_block;
    start([&result](boost::system::error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run();
    return result;
  }

  void disconnect() {
    if (stream) {
      boost::system::error_code ignored;
      beast::get_lowest_layer(*stream).socket().close(ignored);
    }
    stream.reset();
    buffer.clear();
  }

  Status connect() {
    disconnect();
    tcp::resolver resolver(ioc);
    boost::system::error_code ec;
    auto results = resolver.resolve(endpoint.host, endpoint.port, ec);
    const std::string where = endpoint.host + ":" + endpoint.port;
    if (ec) return clientError(ErrorCode::kUnavailable, "cannot resolve " + where + ": " + ec.message());
    stream.emplace(ioc, tls);
    auto& tcp_stream = beast::get_lowest_layer(*stream);
    tcp_stream.expires_after(timeout());
    ec = run([&](auto handler) { tcp_stream.async_connect(results, handler); });
    if (ec) {
      disconnect();
      return clientError(ec == beast::error::timeout ? ErrorCode::kTimeout : ErrorCode::kUnavailable,
                         "cannot connect to " + where + ": " + ec.message());
    }
    boost::system::error_code nodelay_ec;
    tcp_stream.socket().set_option(tcp::no_delay(true), nodelay_ec);
    SSL* ssl = stream->native_handle();
    if (endpoint.is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), endpoint.host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, endpoint.host.c_str());
      SSL_set1_host(ssl, endpoint.host.c_str());
    }
    tcp_stream.expires_after(timeout());
    ec = run([&](auto handler) { stream->async_handshake(ssl::stream_base::client, handler); });
    if (ec) {
      std::string why = tlsMessage(ec);
      long verify = SSL_get_verify_result(ssl);
      if (verify != X509_V_OK) {
        why += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
      }
      disconnect();
      return clientError(ErrorCode::kUnavailable,
                         "TLS handshake with " + where + " failed: " + why);
    }
    last_used = Clock::now();
    return {};
  }

  // One exchange on the current connection.
  Result<HttpResponse> exchange(std::string_view method, std::string_view target,
                                std::string_view body, std::string_view content_type,
                                bool* stale) {
    *stale = false;
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    if (req.method() == http::verb::unknown) req.method_string(method);
    req.set(http::field::host, endpoint.host);
    req.set(http::field::user_agent, "qiaoctl");
    req.set(http::field::accept, "application/json");
    if (!body.empty()) {
      req.set(http::field::content_type, content_type);
      req.body() = std::string(body);
    }
    req.keep_alive(true);
    req.prepare_payload();
    auto& tcp_stream = beast::get_lowest_layer(*stream);
    tcp_stream.expires_after(timeout());
    auto ec = run([&](auto handler) { http::async_write(*stream, req, handler); });
    if (ec) {
      *stale = true;
      disconnect();
      return clientError(ErrorCode::kUnavailable, "sending the request failed: " + ec.message());
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 << 20);
    tcp_stream.expires_after(timeout());
    ec = run([&](auto handler) { http::async_read(*stream, buffer, parser, handler); });
    if (ec) {
      *stale = ec == http::error::end_of_stream || ec == net::error::eof ||
               ec == net::error::connection_reset || ec == ssl::error::stream_truncated;
      disconnect();
      return clientError(ec == beast::error::timeout ? ErrorCode::kTimeout : ErrorCode::kUnavailable,
                         "reading the response failed: " + ec.message());
    }
    auto& res = parser.get();
    HttpResponse out;
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[http::field::content_type]);
    for (const auto& field : res) {
      out.headers[std::string(field.name_string())] = std::string(field.value());
    }
    out.body = std::move(res.body());
    if (!res.keep_alive()) disconnect();
    last_used = Clock::now();
    return out;
  }
};

ApiClient::ApiClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ApiClient::ApiClient(ApiClient&&) noexcept = default;
ApiClient& ApiClient::operator=(ApiClient&&) noexcept = default;
ApiClient::~ApiClient() = default;

Result<ApiClient> ApiClient::create(const ClientConfig& config) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  auto endpoint = parseEndpoint(config.endpoint);
  if (!endpoint) return std::unexpected(endpoint.error());
  impl->endpoint = *endpoint;
  SSL_CTX_set_min_proto_version(impl->tls.native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  impl->tls.set_verify_mode(ssl::verify_peer);
  if (config.ca.empty()) {
    return clientError(ErrorCode::kInvalidArgument, "no CA certificate configured (key ca)");
  }
  impl->tls.load_verify_file(config.ca, ec);
  if (ec) {
    return clientError(ErrorCode::kInvalidArgument,
                       "cannot load the CA certificate " + config.ca + ": " + ec.message());
  }
  if (!config.cert.empty() || !config.key.empty()) {
    impl->tls.use_certificate_chain_file(config.cert, ec);
    if (ec) {
      return clientError(ErrorCode::kInvalidArgument,
                         "cannot load the client certificate " + config.cert + ": " + ec.message());
    }
    impl->tls.use_private_key_file(config.key, ssl::context::pem, ec);
    if (ec) {
      return clientError(ErrorCode::kInvalidArgument,
                         "cannot load the client key " + config.key + ": " + ec.message());
    }
  }
  return ApiClient(std::move(impl));
}

Result<HttpResponse> ApiClient::request(std::string_view method, std::string_view target,
                                        std::string_view body, std::string_view content_type) {
  Impl& im = *impl_;
  // The server closes idle connections; do not send a request into one it may be closing.
  bool reused = im.stream.has_value();
  if (reused && Clock::now() - im.last_used > std::chrono::seconds(10)) {
    im.disconnect();
    reused = false;
  }
  if (!im.stream) {
    if (auto ok = im.connect(); !ok) return std::unexpected(ok.error());
  }
  bool stale = false;
  auto result = im.exchange(method, target, body, content_type, &stale);
  // A kept-alive connection the server had closed: try once more on a fresh one when that
  // cannot do a change twice.
  if (!result && stale && reused && method == "GET") {
    if (auto ok = im.connect(); !ok) return std::unexpected(ok.error());
    result = im.exchange(method, target, body, content_type, &stale);
  }
  return result;
}

Status ApiClient::streamEvents(std::string_view target,
                               const std::function<bool(std::string_view, std::string_view)>& on_event,
                               int timeout_ms) {
  Impl& im = *impl_;
  if (auto ok = im.connect(); !ok) return ok;
  auto deadline = timeout_ms > 0 ? Clock::now() + std::chrono::milliseconds(timeout_ms)
                                 : Clock::time_point::max();
  auto& tcp_stream = beast::get_lowest_layer(*im.stream);
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, im.endpoint.host);
  req.set(http::field::accept, "text/event-stream");
  tcp_stream.expires_after(im.timeout());
  auto ec = im.run([&](auto handler) { http::async_write(*im.stream, req, handler); });
  if (ec) {
    im.disconnect();
    return clientError(ErrorCode::kUnavailable, "sending the request failed: " + ec.message());
  }
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);
  tcp_stream.expires_after(im.timeout());
  ec = im.run([&](auto handler) { http::async_read_header(*im.stream, im.buffer, parser, handler); });
  if (ec) {
    im.disconnect();
    return clientError(ErrorCode::kUnavailable, "reading the response failed: " + ec.message());
  }
  if (parser.get().result_int() != 200) {
    // Read the (short) error body and report it.
    tcp_stream.expires_after(im.timeout());
    im.run([&](auto handler) { http::async_read(*im.stream, im.buffer, parser, handler); });
    HttpResponse response;
    response.status = static_cast<int>(parser.get().result_int());
    response.body = parser.get().body();
    im.disconnect();
    return std::unexpected(errorFromResponse(response));
  }
  std::string pending;
  Status result;
  for (;;) {
    if (Clock::now() >= deadline) break;
    auto remaining = deadline == Clock::time_point::max()
                         ? std::chrono::milliseconds(60000)
                         : std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    tcp_stream.expires_after(std::min<std::chrono::milliseconds>(remaining, std::chrono::minutes(1)));
    ec = im.run([&](auto handler) { http::async_read_some(*im.stream, im.buffer, parser, handler); });
    auto& body = parser.get().body();
    pending += body;
    body.clear();
    bool stop = false;
    for (size_t end; !stop && (end = pending.find("\n\n")) != std::string::npos;) {
      std::string block = pending.substr(0, end);
      pending.erase(0, end + 2);
      std::string type = "message", data;
      std::istringstream lines(block);
      bool any_data = false;
      for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("event:")) {
          type = line.substr(line.size() > 6 && line[6] == ' ' ? 7 : 6);
        } else if (line.starts_with("data:")) {
          if (any_data) data += '\n';
          data += line.substr(line.size() > 5 && line[5] == ' ' ? 6 : 5);
          any_data = true;
        }
      }
      if (any_data && !on_event(type, data)) stop = true;
    }
    // A timeout closes the connection (the server's keepalives come every 15 s, so it means
    // the deadline passed or the server is gone).
    if (stop || ec || parser.is_done()) break;
  }
  im.disconnect();
  return result;
}

}  // namespace qiao
