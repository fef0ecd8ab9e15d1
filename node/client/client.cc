// The only translation unit of qiao_client with Beast, Asio and OpenSSL in it (compile time).
#include "node/client/client.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
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
using std::chrono::milliseconds;

// The server closes connections idle for its request timeout (30 s by default); one idle for
// longer than this is replaced rather than raced against that close.
constexpr auto kMaxIdleReuse = std::chrono::seconds(10);
// The event stream carries a keepalive comment every 15 s: this much silence means it is gone.
constexpr auto kEventStreamSilence = std::chrono::seconds(60);
constexpr size_t kMaxEventLine = 16u << 20;
constexpr std::uint64_t kMaxResponseBody = 256u << 20;

std::unexpected<Error> clientError(ErrorCode code, const std::string& message) {
  return makeError(code, "client", message);
}

struct Endpoint {
  std::string host;  // without brackets: what the certificate must name
  std::string port;
  bool is_ip = false;
  std::string authority;  // host:port as written in messages and the Host header
};

bool isHostNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

Result<Endpoint> parseEndpoint(const std::string& url) {
  constexpr std::string_view kScheme = "https://";
  auto bad = [&](const std::string& why) {
    return clientError(ErrorCode::kInvalidArgument,
                       "endpoint \"" + url + "\" " + why +
                           " (expected https://HOST:PORT, e.g. https://127.0.0.1:8443 or "
                           "https://[::1]:8443)");
  };
  if (!url.starts_with(kScheme)) return bad("must start with https://");
  std::string rest = url.substr(kScheme.size());
  if (rest.ends_with('/')) rest.pop_back();
  Endpoint ep;
  std::string port;
  if (rest.starts_with('[')) {
    auto close = rest.find(']');
    if (close == std::string::npos) return bad("has an unclosed [");
    ep.host = rest.substr(1, close - 1);
    std::string after = rest.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) return bad("has text after ]");
    port = after.empty() ? "" : after.substr(1);
  } else {
    auto colon = rest.find(':');
    ep.host = rest.substr(0, colon);
    port = colon == std::string::npos ? "" : rest.substr(colon + 1);
    if (port.find(':') != std::string::npos) return bad("has an IPv6 address outside [ ]");
  }
  if (port.empty()) port = "8443";
  if (ep.host.empty()) return bad("has no host");
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) == 0 || std::stoi(port) > 65535) {
    return bad("has no valid port");
  }
  ep.port = port;
  boost::system::error_code ec;
  auto address = net::ip::make_address(ep.host, ec);
  ep.is_ip = !ec;
  if (!ep.is_ip && !std::all_of(ep.host.begin(), ep.host.end(), isHostNameChar)) {
    return bad("has an invalid host name");
  }
  if (ep.is_ip && address.is_v6() && !rest.starts_with('[')) return bad("must bracket IPv6");
  ep.authority = (ep.is_ip && address.is_v6() ? "[" + ep.host + "]" : ep.host) + ":" + ep.port;
  return ep;
}

// "certificate verify failed" rather than OpenSSL's "error:0A000086:SSL routines::...".
std::string tlsReason(const boost::system::error_code& ec) {
  if (ec.category() == net::error::get_ssl_category()) {
    if (const char* reason = ERR_reason_error_string(static_cast<unsigned long>(ec.value()))) {
      return reason;
    }
  }
  return ec.message();
}

// Errors that mean the peer had closed the connection before our request reached it.
bool isConnectionGone(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == ssl::error::stream_truncated;
}

// A request target or method that cannot smuggle a header or a second request.
bool isSafeToken(std::string_view s, bool allow_specials) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
    return allow_specials || std::isalnum(u) || c == '-' || c == '_';
  });
}

Status readableFile(const std::string& path, const std::string& what, const std::string& key) {
  if (path.empty()) {
    return clientError(ErrorCode::kInvalidArgument, "no " + what + " configured (key " + key + ")");
  }
  std::ifstream in(path);
  if (!in) {
    return clientError(ErrorCode::kInvalidArgument,
                       "cannot read the " + what + " " + path + ": " + std::strerror(errno));
  }
  return {};
}

std::string lastOpenSslReason() {
  unsigned long e = ERR_peek_last_error();
  const char* reason = e != 0 ? ERR_reason_error_string(e) : nullptr;
  ERR_clear_error();
  return reason != nullptr ? reason : "not PEM or unusable";
}

// Splits a server-sent event stream into events; a chunk may end anywhere.
class SseParser {
 public:
  enum class Outcome { kMore, kStop, kLineTooLong };

  Outcome feed(std::string_view chunk,
               const std::function<bool(std::string_view, std::string_view)>& on_event) {
    pending_.append(chunk);
    size_t start = 0;
    Outcome outcome = Outcome::kMore;
    for (size_t nl;
         outcome == Outcome::kMore && (nl = pending_.find('\n', start)) != std::string::npos;) {
      std::string_view line(pending_.data() + start, nl - start);
      start = nl + 1;
      if (line.ends_with('\r')) line.remove_suffix(1);
      if (!takeLine(line, on_event)) outcome = Outcome::kStop;
    }
    pending_.erase(0, start);
    if (outcome == Outcome::kMore && pending_.size() > kMaxEventLine) {
      return Outcome::kLineTooLong;
    }
    return outcome;
  }

 private:
  bool takeLine(std::string_view line,
                const std::function<bool(std::string_view, std::string_view)>& on_event) {
    if (line.empty()) {  // the end of an event
      bool more = true;
      if (has_data_) more = on_event(type_.empty() ? "message" : type_, data_);
      type_.clear();
      data_.clear();
      has_data_ = false;
      return more;
    }
    if (line.starts_with(':')) return true;  // a comment: the server's keepalive
    auto colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value;
    if (colon != std::string_view::npos) {
      value = line.substr(colon + 1);
      if (value.starts_with(' ')) value.remove_prefix(1);
    }
    if (field == "event") {
      type_ = value;
    } else if (field == "data") {
      if (has_data_) data_ += '\n';
      data_ += value;
      has_data_ = true;
    }
    return true;
  }

  std::string pending_;
  std::string type_;
  std::string data_;
  bool has_data_ = false;
};

// With QIAO_API_TRACE=FILE in the environment, every exchange is appended to FILE as one JSON
// line: method, target, request body (JSON bodies only), status, content type and answer body
// (event streams: their status and type). For debugging a client, and for the contract test
// that checks every answer the integration tests saw against docs/api/openapi.yaml. A line is
// one write() on an O_APPEND descriptor, so processes and threads sharing the file do not mix
// their lines.
void traceExchange(std::string_view method, std::string_view target,
                   std::string_view request_content_type, std::string_view request_body,
                   const Result<HttpResponse>& response) {
  const char* file = std::getenv("QIAO_API_TRACE");
  if (file == nullptr || *file == '\0') return;
  nlohmann::json line = {{"method", method}, {"target", target}};
  if (request_content_type == "application/json" && !request_body.empty()) {
    line["request_body"] = request_body;
  }
  if (response) {
    line["status"] = response->status;
    line["content_type"] = response->content_type;
    line["body"] = response->body;
  } else {
    line["error"] = response.error().describe();
  }
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  int fd = ::open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return;
  (void)!::write(fd, text.data(), text.size());
  ::close(fd);
}

}  // namespace

Result<ClientConfig> loadClientConfig(const std::string& explicit_path) {
  std::string path = explicit_path;
  if (path.empty()) {
    const char* env = std::getenv("QIAO_CONFIG");
    const char* home = std::getenv("HOME");
    if (env != nullptr && *env != '\0') {
      path = env;
    } else if (home != nullptr && *home != '\0') {
      path = std::string(home) + "/.config/qiao/config.toml";
    } else {
      return clientError(ErrorCode::kInvalidArgument,
                         "no client configuration: HOME is not set; pass --config FILE or set "
                         "QIAO_CONFIG");
    }
  }
  std::error_code fs_ec;
  std::ifstream in(path);
  if (!in || std::filesystem::is_directory(path, fs_ec)) {
    std::string why =
        std::filesystem::is_directory(path, fs_ec) ? "it is a directory" : std::strerror(errno);
    return clientError(ErrorCode::kInvalidArgument,
                       "cannot read the client configuration " + path + ": " + why +
                           " (pass --config FILE or set QIAO_CONFIG; keys endpoint, ca, cert, "
                           "key)");
  }
  std::stringstream text;
  text << in.rdbuf();
  toml::table root;
  try {
    root = toml::parse(text.str(), path);
  } catch (const toml::parse_error& e) {
    return clientError(
        ErrorCode::kInvalidArgument,
        path + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  ClientConfig config;
  const auto dir = std::filesystem::path(path).parent_path();
  for (const auto& [key, node] : root) {
    const std::string k(key.str());
    std::string* into = k == "endpoint" ? &config.endpoint
                        : k == "ca"     ? &config.ca
                        : k == "cert"   ? &config.cert
                        : k == "key"    ? &config.key
                                        : nullptr;
    if (into == nullptr) {
      return clientError(ErrorCode::kInvalidArgument,
                         path + ": unknown key \"" + k + "\" (keys: endpoint, ca, cert, key)");
    }
    auto value = node.value<std::string>();
    if (!node.is_string() || !value) {
      return clientError(ErrorCode::kInvalidArgument, path + ": " + k + " must be a string");
    }
    *into = *value;
    if (k != "endpoint" && !into->empty() && !into->starts_with('/')) {
      *into = (dir / *into).string();
    }
  }
  if (config.endpoint.empty()) {
    return clientError(ErrorCode::kInvalidArgument, path + ": endpoint must not be empty");
  }
  return config;
}

Error errorFromResponse(const HttpResponse& response) {
  ErrorCode code = ErrorCode::kInternal;
  switch (response.status) {
    case 400:
    case 405:
    case 411:
    case 414:
    case 415:
    case 422: code = ErrorCode::kInvalidArgument; break;
    case 401: code = ErrorCode::kUnauthenticated; break;
    case 403: code = ErrorCode::kPermissionDenied; break;
    case 404: code = ErrorCode::kNotFound; break;
    case 409: code = ErrorCode::kConflict; break;
    case 413: code = ErrorCode::kPayloadTooLarge; break;
    case 429: code = ErrorCode::kResourceExhausted; break;
    case 507: code = ErrorCode::kInsufficientStorage; break;
    case 501: code = ErrorCode::kUnimplemented; break;
    case 502:
    case 503: code = ErrorCode::kUnavailable; break;
    case 408:
    case 504: code = ErrorCode::kTimeout; break;
    default: break;
  }
  Error error{code, "api", "HTTP " + std::to_string(response.status), ""};
  auto body = nlohmann::json::parse(response.body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    const auto& e = body["error"];
    if (e.contains("code") && e["code"].is_string()) {
      const auto& name = e["code"].get_ref<const std::string&>();
      for (ErrorCode c : kAllErrorCodes) {
        if (errorCodeName(c) == name) error.code = c;
      }
    }
    if (e.contains("message") && e["message"].is_string() &&
        !e["message"].get_ref<const std::string&>().empty()) {
      error.message = e["message"];
    }
    if (e.contains("details") && e["details"].is_object() && !e["details"].empty()) {
      error.details_json = e["details"].dump();
      if (e["details"].contains("subsystem") && e["details"]["subsystem"].is_string()) {
        error.subsystem = e["details"]["subsystem"];
      }
    }
    return error;
  }
  // Not an API error body (a proxy, a crash page): its first line, printable, bounded.
  std::string text = response.body.substr(0, std::min(response.body.find('\n'), size_t{200}));
  std::replace_if(
      text.begin(), text.end(),
      [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }, ' ');
  if (!text.empty()) error.message += ": " + text;
  return error;
}

struct ApiClient::Impl {
  ClientConfig config;
  Endpoint endpoint;
  net::io_context ioc;
  ssl::context tls{ssl::context::tls_client};
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
  bool answered_once = false;  // the current connection carried a whole exchange
  std::string on_behalf_of;    // sent as Qiao-On-Behalf-Of when set
  Clock::time_point last_used{};

  milliseconds timeout() const { return milliseconds(config.timeout_ms); }
  std::string timeoutText() const { return std::to_string(config.timeout_ms) + " ms"; }

  // Runs one asynchronous operation to completion; its deadline is the tcp_stream's.
  template <typename Start>
  boost::system::error_code run(Start&& start) {
    std::optional<boost::system::error_code> result;
    start([&result](boost::system::error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run();
    return result.value_or(net::error::operation_aborted);
  }

  beast::tcp_stream& tcpStream() { return beast::get_lowest_layer(*stream); }

  void disconnect() {
    if (stream) {
      boost::system::error_code ignored;
      tcpStream().socket().close(ignored);
    }
    stream.reset();
    buffer.clear();
    answered_once = false;
  }

  // True when the server closed (or wrote on) the idle connection: sending on it would fail.
  bool idleConnectionIsGone() {
    if (buffer.size() > 0 || SSL_pending(stream->native_handle()) > 0) return true;
    pollfd p{};
    p.fd = tcpStream().socket().native_handle();
    p.events = POLLIN | POLLRDHUP;
    return ::poll(&p, 1, 0) != 0;
  }

  Status connect() {
    disconnect();
    const std::string& where = endpoint.authority;
    tcp::resolver resolver(ioc);
    boost::system::error_code ec;
    auto results = resolver.resolve(endpoint.host, endpoint.port, ec);
    if (ec) {
      return clientError(ErrorCode::kUnavailable,
                         "cannot resolve " + endpoint.host + ": " + ec.message());
    }
    stream.emplace(ioc, tls);
    tcpStream().expires_after(timeout());
    ec = run([&](auto handler) { tcpStream().async_connect(results, handler); });
    if (ec) {
      disconnect();
      if (ec == beast::error::timeout) {
        return clientError(ErrorCode::kTimeout,
                           "connecting to " + where + " timed out after " + timeoutText());
      }
      return clientError(ErrorCode::kUnavailable, "cannot connect to " + where + ": " +
                                                      ec.message() + " (is qiaod running there?)");
    }
    boost::system::error_code ignored;
    tcpStream().socket().set_option(tcp::no_delay(true), ignored);
    SSL* ssl = stream->native_handle();
    bool named = endpoint.is_ip
                     ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), endpoint.host.c_str())
                     : SSL_set_tlsext_host_name(ssl, endpoint.host.c_str()) == 1 &&
                           SSL_set1_host(ssl, endpoint.host.c_str()) == 1;
    if (!named) {
      disconnect();
      return clientError(ErrorCode::kInternal, "cannot set the name to verify: " + where);
    }
    tcpStream().expires_after(timeout());
    ec = run([&](auto handler) { stream->async_handshake(ssl::stream_base::client, handler); });
    if (ec) {
      std::string why =
          ec == beast::error::timeout ? "timed out after " + timeoutText() : tlsReason(ec);
      long verify = SSL_get_verify_result(ssl);
      if (verify != X509_V_OK) {
        why += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
      }
      ERR_clear_error();
      disconnect();
      return clientError(
          ec == beast::error::timeout ? ErrorCode::kTimeout : ErrorCode::kUnavailable,
          "TLS handshake with " + where + " failed: " + why);
    }
    last_used = Clock::now();
    return {};
  }

  // One exchange on the current connection. *gone: the connection was found closed before
  // any of the answer arrived (a retry on a fresh one is possible for idempotent methods).
  Result<HttpResponse> exchange(std::string_view method, std::string_view target,
                                std::string_view body, std::string_view content_type, bool* gone) {
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    if (req.method() == http::verb::unknown) req.method_string(method);
    if (!body.empty()) {
      req.set(http::field::content_type, content_type);
      req.body() = std::string(body);
    }
    tcpStream().expires_after(timeout());
    return exchange(req, gone);
  }

  // PUT of a file's bytes, streamed from the file (never whole in memory). The write has no
  // deadline (a large image takes as long as the link needs); the answer has the usual one.
  Result<HttpResponse> upload(std::string_view target, const std::string& path, bool* gone) {
    http::request<http::file_body> req{http::verb::put, target, 11};
    beast::error_code ec;
    req.body().open(path.c_str(), beast::file_mode::scan, ec);
    if (ec) {
      *gone = false;
      return clientError(ErrorCode::kInvalidArgument, "cannot read " + path + ": " + ec.message());
    }
    req.set(http::field::content_type, "application/octet-stream");
    tcpStream().expires_never();
    return exchange(req, gone);
  }

  template <class Body>
  Result<HttpResponse> exchange(http::request<Body>& req, bool* gone) {
    *gone = false;
    req.set(http::field::host, endpoint.authority);
    req.set(http::field::user_agent, "qiao-client");
    req.set(http::field::accept, "application/json");
    if (!on_behalf_of.empty()) req.set("Qiao-On-Behalf-Of", on_behalf_of);
    req.keep_alive(true);
    req.prepare_payload();
    const std::string what = std::string(req.method_string()) + " " + std::string(req.target());
    auto ec = run([&](auto handler) { http::async_write(*stream, req, handler); });
    if (ec) {
      *gone = isConnectionGone(ec);
      disconnect();
      if (ec == beast::error::timeout) {
        return clientError(ErrorCode::kTimeout, "sending " + what + " to " + endpoint.authority +
                                                    " timed out after " + timeoutText());
      }
      return clientError(ErrorCode::kUnavailable, "sending " + what + " to " + endpoint.authority +
                                                      " failed: " + tlsReason(ec));
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxResponseBody);
    tcpStream().expires_after(timeout());
    ec = run([&](auto handler) { http::async_read(*stream, buffer, parser, handler); });
    if (ec) {
      *gone = isConnectionGone(ec) && !parser.got_some();
      disconnect();
      if (ec == beast::error::timeout) {
        return clientError(
            ErrorCode::kTimeout,
            "no answer to " + what + " from " + endpoint.authority + " within " + timeoutText());
      }
      return clientError(ErrorCode::kUnavailable, "reading the answer to " + what + " from " +
                                                      endpoint.authority +
                                                      " failed: " + tlsReason(ec));
    }
    auto& res = parser.get();
    HttpResponse out;
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[http::field::content_type]);
    for (const auto& field : res) {
      out.headers[std::string(field.name_string())] = std::string(field.value());
    }
    out.body = std::move(res.body());
    if (res.keep_alive()) {
      answered_once = true;
      last_used = Clock::now();
    } else {
      disconnect();
    }
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
  if (config.timeout_ms <= 0) {
    return clientError(ErrorCode::kInvalidArgument, "timeout_ms must be positive");
  }
  auto endpoint = parseEndpoint(config.endpoint);
  if (!endpoint) return std::unexpected(endpoint.error());
  impl->endpoint = *endpoint;
  SSL_CTX* ctx = impl->tls.native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, config.unverified_server ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nullptr);
  if (config.unverified_server) {
    if (!config.cert.empty()) {
      return clientError(ErrorCode::kInvalidArgument,
                         "no client certificate is sent to a server that is not verified");
    }
    return ApiClient(std::move(impl));
  }
  if (auto ok = readableFile(config.ca, "CA certificate", "ca"); !ok)
    return std::unexpected(ok.error());
  ERR_clear_error();
  if (SSL_CTX_load_verify_locations(ctx, config.ca.c_str(), nullptr) != 1) {
    return clientError(ErrorCode::kInvalidArgument,
                       "cannot load the CA certificate " + config.ca + ": " + lastOpenSslReason());
  }
  if (config.cert.empty() != config.key.empty()) {
    return clientError(ErrorCode::kInvalidArgument,
                       "a client certificate needs its key and a key its certificate (keys "
                       "cert and key)");
  }
  if (!config.cert.empty()) {
    if (auto ok = readableFile(config.cert, "client certificate", "cert"); !ok) {
      return std::unexpected(ok.error());
    }
    if (auto ok = readableFile(config.key, "client key", "key"); !ok) {
      return std::unexpected(ok.error());
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, config.cert.c_str()) != 1) {
      return clientError(ErrorCode::kInvalidArgument, "cannot load the client certificate " +
                                                          config.cert + ": " + lastOpenSslReason());
    }
    bool loaded = SSL_CTX_use_PrivateKey_file(ctx, config.key.c_str(), SSL_FILETYPE_PEM) == 1;
    std::string why = loaded ? "" : lastOpenSslReason();
    if (!loaded && why.find("mismatch") == std::string::npos) {
      return clientError(ErrorCode::kInvalidArgument,
                         "cannot load the client key " + config.key + ": " + why);
    }
    if (!loaded || SSL_CTX_check_private_key(ctx) != 1) {
      return clientError(
          ErrorCode::kInvalidArgument,
          "the client key " + config.key + " does not belong to the certificate " + config.cert);
    }
  }
  return ApiClient(std::move(impl));
}

Result<HttpResponse> ApiClient::request(std::string_view method, std::string_view target,
                                        std::string_view body, std::string_view content_type) {
  if (!isSafeToken(method, false) || !target.starts_with('/') || !isSafeToken(target, true)) {
    return clientError(ErrorCode::kInvalidArgument,
                       "not a request: " + std::string(method) + " " + std::string(target));
  }
  Impl& im = *impl_;
  bool reused = im.stream.has_value() && im.answered_once;
  if (reused && (Clock::now() - im.last_used > kMaxIdleReuse || im.idleConnectionIsGone())) {
    im.disconnect();
    reused = false;
  }
  if (!im.stream) {
    if (auto ok = im.connect(); !ok) return std::unexpected(ok.error());
  }
  bool gone = false;
  auto result = im.exchange(method, target, body, content_type, &gone);
  // The server closed the kept-alive connection as we sent: only a request that cannot change
  // anything twice goes again.
  if (!result && gone && reused && (method == "GET" || method == "HEAD")) {
    if (auto ok = im.connect(); !ok) return std::unexpected(ok.error());
    result = im.exchange(method, target, body, content_type, &gone);
  }
  traceExchange(method, target, content_type, body, result);
  return result;
}

void ApiClient::setOnBehalfOf(std::string identity_uri) {
  impl_->on_behalf_of = std::move(identity_uri);
}

Result<HttpResponse> ApiClient::upload(std::string_view target, const std::string& path) {
  if (!target.starts_with('/') || !isSafeToken(target, true)) {
    return clientError(ErrorCode::kInvalidArgument, "not a request target: " + std::string(target));
  }
  Impl& im = *impl_;
  // A fresh connection: a body this long is not worth risking on one the server may close.
  im.disconnect();
  if (auto ok = im.connect(); !ok) return std::unexpected(ok.error());
  bool gone = false;
  auto result = im.upload(target, path, &gone);
  traceExchange("PUT", target, "application/octet-stream", {}, result);
  return result;
}

Status ApiClient::streamEvents(
    std::string_view target,
    const std::function<bool(std::string_view, std::string_view)>& on_event, int timeout_ms) {
  if (!target.starts_with('/') || !isSafeToken(target, true)) {
    return clientError(ErrorCode::kInvalidArgument, "not a request target: " + std::string(target));
  }
  Impl& im = *impl_;
  const auto deadline =
      timeout_ms > 0 ? Clock::now() + milliseconds(timeout_ms) : Clock::time_point::max();
  if (auto ok = im.connect(); !ok) return ok;
  const std::string& where = im.endpoint.authority;
  struct Disconnect {
    Impl& im;
    ~Disconnect() { im.disconnect(); }
  } disconnect_at_end{im};

  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, where);
  req.set(http::field::user_agent, "qiao-client");
  req.set(http::field::accept, "text/event-stream");
  req.set(http::field::cache_control, "no-cache");
  im.tcpStream().expires_after(im.timeout());
  auto ec = im.run([&](auto handler) { http::async_write(*im.stream, req, handler); });
  if (ec) {
    return clientError(ErrorCode::kUnavailable, "sending GET " + std::string(target) + " to " +
                                                    where + " failed: " + tlsReason(ec));
  }
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);
  im.tcpStream().expires_after(im.timeout());
  ec = im.run(
      [&](auto handler) { http::async_read_header(*im.stream, im.buffer, parser, handler); });
  if (ec) {
    return clientError(ec == beast::error::timeout ? ErrorCode::kTimeout : ErrorCode::kUnavailable,
                       "reading the answer to GET " + std::string(target) + " from " + where +
                           " failed: " + tlsReason(ec));
  }
  HttpResponse head;
  head.status = static_cast<int>(parser.get().result_int());
  head.content_type = std::string(parser.get()[http::field::content_type]);
  if (head.status != 200) {
    im.tcpStream().expires_after(im.timeout());
    im.run([&](auto handler) { http::async_read(*im.stream, im.buffer, parser, handler); });
    head.body = parser.get().body();
    traceExchange("GET", target, {}, {}, head);
    return std::unexpected(errorFromResponse(head));
  }
  traceExchange("GET", target, {}, {}, head);

  SseParser sse;
  for (;;) {
    auto now = Clock::now();
    if (now >= deadline) return {};
    auto silence = std::chrono::duration_cast<milliseconds>(kEventStreamSilence);
    bool deadline_first = deadline - now < silence;
    im.tcpStream().expires_after(
        deadline_first ? std::chrono::duration_cast<milliseconds>(deadline - now) : silence);
    ec = im.run(
        [&](auto handler) { http::async_read_some(*im.stream, im.buffer, parser, handler); });
    auto& body = parser.get().body();
    auto outcome = sse.feed(body, on_event);
    body.clear();
    if (outcome == SseParser::Outcome::kStop) return {};
    if (outcome == SseParser::Outcome::kLineTooLong) {
      return clientError(ErrorCode::kInvalidArgument,
                         "the event stream from " + where + " sent a line over 16 MiB");
    }
    if (ec == beast::error::timeout) {
      if (deadline_first) return {};
      return clientError(ErrorCode::kTimeout,
                         "the event stream from " + where + " was silent for 60 s (no keepalive)");
    }
    if (ec && (isConnectionGone(ec) || ec == http::error::partial_message)) return {};
    if (ec) {
      return clientError(ErrorCode::kUnavailable,
                         "reading the event stream from " + where + " failed: " + tlsReason(ec));
    }
    if (parser.is_done()) return {};
  }
}

}  // namespace qiao
