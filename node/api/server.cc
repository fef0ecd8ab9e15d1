#include "node/api/server.h"

#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <array>
#include <map>
#include <cerrno>
#include <cstring>
#include <optional>
#include <deque>

#include "base/crypto.h"
#include "base/files.h"
#include "base/handle.h"
#include "base/log.h"
#include "base/names.h"
#include "node/pki/pki.h"
#include "node/api/refusal_log.h"
#include "node/state/record_json.h"

namespace qiao {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using net::awaitable;
using net::use_awaitable;
constexpr auto kNoThrow = net::as_tuple(use_awaitable);

const Logger kLog("api");

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; false on a broken escape or a decoded NUL.
bool percentDecode(std::string_view in, bool plus_is_space, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hexValue(in[i + 1]);
      int lo = hexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      char decoded = static_cast<char>(hi * 16 + lo);
      if (decoded == '\0') return false;
      *out += decoded;
      i += 2;
    } else if (c == '+' && plus_is_space) {
      *out += ' ';
    } else {
      *out += c;
    }
  }
  return true;
}

bool parseTarget(std::string_view target, ApiRequest* request) {
  auto q = target.find('?');
  std::string_view raw_path = target.substr(0, q);
  if (raw_path.empty() || raw_path.front() != '/') return false;
  if (!percentDecode(raw_path, false, &request->path)) return false;
  if (q == std::string_view::npos) return true;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view item = rest.substr(0, amp);
    if (!item.empty()) {
      auto eq = item.find('=');
      std::string key, value;
      if (!percentDecode(item.substr(0, eq), true, &key)) return false;
      if (eq != std::string_view::npos && !percentDecode(item.substr(eq + 1), true, &value)) {
        return false;
      }
      request->query.emplace(std::move(key), std::move(value));
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return true;
}

std::string endpointText(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) {
    return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  }
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

Result<tcp::endpoint> parseListen(const std::string& text) {
  std::string host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return makeError(ErrorCode::kInvalidArgument, "api", "bad listen address " + text);
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) {
      return makeError(ErrorCode::kInvalidArgument, "api", "bad listen address " + text);
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  boost::system::error_code ec;
  auto address = net::ip::make_address(host, ec);
  if (ec || port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535) {
    return makeError(ErrorCode::kInvalidArgument, "api", "bad listen address " + text);
  }
  return tcp::endpoint(address, static_cast<unsigned short>(std::stoi(port)));
}

// Coroutine functions, not capturing lambdas: their parameters live in their own frames.
awaitable<ApiResponse> runHandler(RequestHandler handler, ApiRequest request) {
  co_return handler(request);
}
awaitable<bool> runIsAdmin(std::function<bool(const std::string&, const std::string&)> is_admin,
                           std::string identity, std::string serial) {
  co_return is_admin(identity, serial);
}
// `request` lives in the caller's frame, which awaits this.
awaitable<std::optional<ApiResponse>> runAdmit(AdmitHandler admit, ApiRequest* request) {
  co_return admit(*request);
}
awaitable<void> runTick(std::function<void()> tick) {
  tick();
  co_return;
}

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// What HTTP/1.1 requires and Beast lets through: a Host header, and no transfer coding but
// chunked (Beast reads "gzip, chunked" as chunked, and would hand over a body still coded).
Status checkHeaders(const http::request<http::empty_body>& head) {
  if (head.version() >= 11 && head.find(http::field::host) == head.end()) {
    return makeError(ErrorCode::kInvalidArgument, "api", "an HTTP/1.1 request needs a Host header");
  }
  if (auto te = head.find(http::field::transfer_encoding); te != head.end()) {
    if (!equalsIgnoringCase(te->value(), "chunked")) {
      return makeError(ErrorCode::kInvalidArgument, "api",
                       "Transfer-Encoding " + quoteForMessage(te->value()) +
                           " is not accepted; send the body as it is, or chunked");
    }
  }
  return {};
}

struct Subscriber {
  explicit Subscriber(const net::any_io_executor& ex) : signal(ex) {}
  std::deque<std::string> queue;
  net::steady_timer signal;
  bool overflowed = false;
};

}  // namespace

struct ApiServer::Impl {
  Impl(ServerOptions o, RequestHandler h, EventBus& e)
      : options(std::move(o)),
        handler(std::move(h)),
        events(e),
        pool(static_cast<size_t>(std::max(1, options.handler_threads))) {}

  ServerOptions options;
  RequestHandler handler;
  EventBus& events;
  net::io_context ioc{1};
  // The TLS settings new connections get, and what the revocation list looked like when they
  // were made (io thread only); a connection keeps the ones it started with.
  std::shared_ptr<ssl::context> tls;
  std::string crl_stamp;
  std::string stamp_failed;
  net::thread_pool pool;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::atomic<int> connections{0};
  std::atomic<bool> stopped{false};
  // Connections by source address and by identity; touched on the io thread only.
  std::map<std::string, int> by_source;
  std::map<std::string, int> by_identity;
  // Why a new connection is over a cap, or "" when it is not.
  std::string overCap(bool admin, const std::string& source, const std::string& identity) const;
  // Failed handshakes are logged once per source address and minute, the rest counted.
  RefusalLog handshake_failures{std::chrono::seconds(60), 256};

  Result<std::shared_ptr<ssl::context>> makeTls() const;
  std::shared_ptr<ssl::context> currentTls();
  std::string crlStamp() const;  // changes whenever the revocation list file does
  awaitable<void> acceptLoop(tcp::acceptor& acceptor);
  awaitable<void> tickLoop();
  awaitable<void> session(tcp::socket socket);
  awaitable<void> streamEvents(beast::ssl_stream<beast::tcp_stream>& stream,
                               std::function<bool(const Event&)> filter);
  // Reads a streamed body into a new file in options.upload_dir (never whole in memory),
  // hashing it on the way; fills request->upload_*. On failure the file is gone.
  awaitable<Status> readUpload(beast::ssl_stream<beast::tcp_stream>& stream,
                               beast::flat_buffer& buffer,
                               http::request_parser<http::empty_body>& header,
                               ApiRequest* request);
};

Result<std::shared_ptr<ssl::context>> ApiServer::Impl::makeTls() const {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                       ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                   ec);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(ctx->native_handle(),
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                          "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:"
                          "ECDHE-RSA-AES256-GCM-SHA384");
  auto load = [&](const char* what, const std::string& path, auto&& fn) -> Status {
    boost::system::error_code load_ec;
    fn(load_ec);
    if (load_ec) {
      return makeError(ErrorCode::kInvalidArgument, "api",
                       std::string("cannot load the TLS ") + what + " " + path + ": " +
                           load_ec.message());
    }
    return {};
  };
  if (auto s = load("certificate", options.cert_file,
                    [&](auto& e) { ctx->use_certificate_chain_file(options.cert_file, e); });
      !s) {
    return std::unexpected(s.error());
  }
  if (auto s = load("private key", options.key_file,
                    [&](auto& e) {
                      ctx->use_private_key_file(options.key_file, ssl::context::pem, e);
                    });
      !s) {
    return std::unexpected(s.error());
  }
  if (auto s = load("CA", options.ca_file,
                    [&](auto& e) { ctx->load_verify_file(options.ca_file, e); });
      !s) {
    return std::unexpected(s.error());
  }
  // The CA's revocation list, when there is one: a revoked certificate fails the handshake.
  if (!options.crl_file.empty() && ::access(options.crl_file.c_str(), F_OK) == 0) {
    CPtr<BIO, BIO_free> bio(BIO_new_file(options.crl_file.c_str(), "r"));
    CPtr<X509_CRL, X509_CRL_free> crl(
        bio ? PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!crl) {
      return makeError(ErrorCode::kInvalidArgument, "api",
                       "cannot load the revocation list " + options.crl_file);
    }
    X509_STORE* store = SSL_CTX_get_cert_store(ctx->native_handle());
    X509_STORE_add_crl(store, crl.get());
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  }
  // verify_peer without fail_if_no_peer_cert: a bad certificate fails the handshake, a
  // missing one reaches the handlers, which answer 401 with a message a person can read.
  ctx->set_verify_mode(ssl::verify_peer);
  // Tell clients which CA we accept.
  SSL_CTX_set_client_CA_list(ctx->native_handle(),
                             SSL_load_client_CA_file(options.ca_file.c_str()));
  return ctx;
}

std::string ApiServer::Impl::crlStamp() const {
  struct stat st {};
  if (options.crl_file.empty() || ::stat(options.crl_file.c_str(), &st) != 0) return {};
  return std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + "." +
         std::to_string(st.st_size) + "." + std::to_string(st.st_ino);
}

std::shared_ptr<ssl::context> ApiServer::Impl::currentTls() {
  // A changed revocation list takes effect at the next handshake.
  const std::string stamp = crlStamp();
  if (stamp != crl_stamp) {
    if (auto fresh = makeTls()) {
      tls = std::move(*fresh);
      crl_stamp = stamp;
      kLog.info("TLS settings loaded", {{"crl", stamp.empty() ? "none" : options.crl_file}});
    } else if (stamp_failed != stamp) {
      stamp_failed = stamp;
      kLog.error("the revocation list cannot be used; the previous one stays in force",
                 {{"error", fresh.error().describe()}});
    }
  }
  return tls;
}

awaitable<void> ApiServer::Impl::acceptLoop(tcp::acceptor& acceptor) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kNoThrow);
    if (ec) {
      if (ec == net::error::operation_aborted || stopped.load()) co_return;
      kLog.warn("accept failed", {{"error", ec.message()}});
      continue;
    }
    if (connections.load() >= options.max_connections + options.overflow) {
      // Past the caps and the connections that are only told so: closed unanswered.
      boost::system::error_code ignored;
      auto ep = socket.remote_endpoint(ignored);
      if (handshake_failures.record(ignored ? "?" : ep.address().to_string(), 0,
                                    std::chrono::steady_clock::now())) {
        kLog.warn("connection closed unanswered: too many connections",
                  {{"limit", std::to_string(options.max_connections + options.overflow)}});
      }
      socket.close(ignored);
      continue;
    }
    // Small answers must not wait for delayed ACKs (Nagle): the API is request/response.
    boost::system::error_code nodelay_ec;
    socket.set_option(tcp::no_delay(true), nodelay_ec);
    net::co_spawn(ioc, session(std::move(socket)), net::detached);
  }
}

std::string ApiServer::Impl::overCap(bool admin, const std::string& source,
                                     const std::string& identity) const {
  const int total = connections.load();
  const int others_may = options.max_connections - options.admin_reserve;
  if (total > options.max_connections || (!admin && total > others_may)) {
    return "the node has " + std::to_string(total - 1) + " connections open, the most " +
           (admin ? std::string("it serves") : "it serves to callers other than admins") +
           " (api.max_connections)";
  }
  if (admin) return {};
  if (auto it = by_source.find(source); it != by_source.end() && it->second > options.max_per_source) {
    return "address " + source + " has " + std::to_string(it->second - 1) +
           " connections open, the most one address may (api.max_connections_per_source)";
  }
  if (auto it = by_identity.find(identity);
      !identity.empty() && it != by_identity.end() && it->second > options.max_per_identity) {
    return "identity " + identity + " has " + std::to_string(it->second - 1) +
           " connections open, the most one identity may (api.max_connections_per_identity)";
  }
  return {};
}

awaitable<void> ApiServer::Impl::tickLoop() {
  net::steady_timer timer(ioc);
  while (!stopped.load()) {
    timer.expires_after(std::chrono::seconds(options.tick_interval_s));
    auto [ec] = co_await timer.async_wait(kNoThrow);
    if (ec || stopped.load()) co_return;
    for (const auto& s : handshake_failures.due(std::chrono::steady_clock::now(), false)) {
      kLog.info("more TLS handshakes failed", {{"source", s.source},
                                               {"count", std::to_string(s.count)},
                                               {"seconds", std::to_string(s.seconds)}});
    }
    if (options.on_tick) co_await net::co_spawn(pool, runTick(options.on_tick), use_awaitable);
  }
}

awaitable<void> ApiServer::Impl::session(tcp::socket socket) {
  ++connections;
  struct Guard {
    std::atomic<int>& n;
    ~Guard() { --n; }
  } guard{connections};

  std::string remote;
  {
    boost::system::error_code ec;
    auto ep = socket.remote_endpoint(ec);
    if (!ec) remote = endpointText(ep);
  }
  const std::shared_ptr<ssl::context> tls_context = currentTls();
  beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *tls_context);
  stream.next_layer().expires_after(std::chrono::seconds(options.request_timeout_s));
  auto [hs_ec] = co_await stream.async_handshake(ssl::stream_base::server, kNoThrow);
  if (hs_ec) {
    if (handshake_failures.record(sourceAddress(remote), 0, std::chrono::steady_clock::now())) {
      kLog.info("TLS handshake failed (more from this address within a minute are counted)",
                {{"remote", remote}, {"error", hs_ec.message()}});
    }
    co_return;
  }
  std::string identity;
  std::string identity_error;
  std::string serial;
  if (X509* cert = SSL_get0_peer_certificate(stream.native_handle())) {
    serial = serialOfX509(cert);
    auto uri = identityUriOfX509(cert);
    if (uri) identity = *uri;
    else identity_error = uri.error().message;
  } else {
    identity_error = "no client certificate was presented";
  }
  // The caps, now that the caller is known: one over a cap gets its first request answered
  // 503 (with Retry-After), then the connection is closed.
  bool admin = false;
  if (!identity.empty() && options.is_admin) {
    admin = co_await net::co_spawn(pool, runIsAdmin(options.is_admin, identity, serial),
                                   use_awaitable);
  }
  const std::string source = sourceAddress(remote);
  struct Counted {
    std::map<std::string, int>& map;
    std::string key;
    Counted(std::map<std::string, int>& m, std::string k) : map(m), key(std::move(k)) {
      ++map[key];
    }
    ~Counted() {
      if (--map[key] <= 0) map.erase(key);
    }
  } by_source_slot{by_source, source}, by_identity_slot{by_identity, identity};
  std::optional<Error> over_cap;
  if (std::string why = overCap(admin, source, identity); !why.empty()) {
    over_cap = Error{ErrorCode::kUnavailable, "api", why + "; try again later"};
  }

  beast::flat_buffer buffer;
  for (;;) {
    // The header first: an upload's body goes to a file, every other body into memory, and
    // neither is read before the admission has let the request through.
    http::request_parser<http::empty_body> header;
    header.body_limit(boost::none);
    header.header_limit(16 * 1024);
    stream.next_layer().expires_after(std::chrono::seconds(options.request_timeout_s));
    auto [read_ec, bytes] = co_await http::async_read_header(stream, buffer, header, kNoThrow);
    (void)bytes;
    if (read_ec == http::error::end_of_stream || read_ec == net::error::eof ||
        read_ec == ssl::error::stream_truncated || read_ec == beast::error::timeout ||
        read_ec == net::error::connection_reset || read_ec == net::error::operation_aborted) {
      break;  // the client went away or stayed silent: nobody to answer
    }
    ApiRequest request;
    request.peer_identity_uri = identity;
    request.peer_serial = serial;
    request.peer_error = identity_error;
    request.remote = remote;
    std::optional<ApiResponse> refused;  // by the admission
    bool keep_alive = false;
    auto refuse = [&request](ErrorCode code, std::string message) {
      request.transport_error = Error{code, "api", std::move(message)};
    };
    if (over_cap && !read_ec) {
      const auto& head = header.get();
      request.method = std::string(head.method_string());
      request.target = std::string(head.target());
      (void)parseTarget(request.target, &request);
      request.transport_error = over_cap;
    } else if (read_ec) {
      refuse(read_ec == http::error::header_limit ? ErrorCode::kPayloadTooLarge
                                                  : ErrorCode::kInvalidArgument,
             read_ec == http::error::header_limit ? "request headers are too large"
                                                  : "malformed HTTP request: " + read_ec.message());
    } else {
      const auto& head = header.get();
      request.method = std::string(head.method_string());
      request.target = std::string(head.target());
      request.content_type = std::string(head[http::field::content_type]);
      request.on_behalf_of = std::string(head[kOnBehalfOfHeader]);
      keep_alive = head.keep_alive();
      if (auto declared = header.content_length()) {
        request.declared_length = static_cast<int64_t>(*declared);
      }
      const bool parsed = parseTarget(request.target, &request);
      const bool streamed =
          parsed && options.streams_body && options.streams_body(request.method, request.path);
      const int64_t limit = streamed ? options.max_upload_bytes : options.max_body_bytes;
      if (!parsed) {
        refuse(ErrorCode::kInvalidArgument, "malformed request target");
      } else if (auto strict = checkHeaders(head); !strict) {
        request.transport_error = strict.error();
      } else if (request.declared_length > limit) {
        refuse(ErrorCode::kPayloadTooLarge,
               std::string(streamed ? "the upload" : "the request body") + " is larger than " +
                   std::to_string(limit) + " bytes");
      } else if (options.admit && (streamed || !header.is_done())) {
        // Only requests with a body, or an upload's: the rest is checked by the handler.
        refused = co_await net::co_spawn(pool, runAdmit(options.admit, &request), use_awaitable);
      }
      if (!request.transport_error && !refused && (streamed || !header.is_done())) {
        if (streamed) {
          if (auto upload = co_await readUpload(stream, buffer, header, &request); !upload) {
            request.transport_error = upload.error();
          }
        } else {
          http::request_parser<http::string_body> parser(std::move(header));
          parser.body_limit(static_cast<std::uint64_t>(options.max_body_bytes));
          stream.next_layer().expires_after(std::chrono::seconds(options.request_timeout_s));
          auto [body_ec, body_bytes] = co_await http::async_read(stream, buffer, parser, kNoThrow);
          (void)body_bytes;
          if (body_ec == beast::error::timeout || body_ec == net::error::connection_reset ||
              body_ec == net::error::operation_aborted) {
            refuse(ErrorCode::kInvalidArgument, "the request body was cut off");
          } else if (body_ec == http::error::body_limit) {
            refuse(ErrorCode::kPayloadTooLarge, "the request body is larger than " +
                                                    std::to_string(options.max_body_bytes) +
                                                    " bytes");
          } else if (body_ec) {
            refuse(ErrorCode::kInvalidArgument, "malformed HTTP request: " + body_ec.message());
          } else {
            request.body = std::move(parser.get().body());
          }
        }
      }
    }
    // What was not read whole cannot be answered on this connection afterwards.
    const bool failed_read = request.transport_error.has_value() || refused.has_value();
    ApiResponse response;
    if (refused) {
      response = std::move(*refused);
    } else {
      const std::string upload_file = request.upload_file;
      // Run the handler on the pool; resume here, on the io thread.
      response = co_await net::co_spawn(pool, runHandler(handler, std::move(request)),
                                        use_awaitable);
      // An upload the handler did not take is not kept.
      if (!upload_file.empty()) ::unlink(upload_file.c_str());
    }
    if (failed_read) keep_alive = false;
    if (response.event_filter && response.status == 200) {
      co_await streamEvents(stream, std::move(response.event_filter));
      break;
    }
    http::response<http::string_body> res{static_cast<http::status>(response.status), 11};
    res.set(http::field::server, "qiaod");
    res.set(http::field::content_type, response.content_type);
    res.set(http::field::cache_control, "no-store");
    for (const auto& [key, value] : response.headers) res.set(key, value);
    res.keep_alive(keep_alive);
    res.body() = std::move(response.body);
    res.prepare_payload();
    stream.next_layer().expires_after(std::chrono::seconds(options.request_timeout_s));
    auto [write_ec, written] = co_await http::async_write(stream, res, kNoThrow);
    (void)written;
    if (!write_ec && failed_read) {
      // The client is likely still sending what we refused. Read and drop it for a moment
      // (bounded), so that it gets to read our answer instead of a connection reset.
      std::array<char, 16384> sink;
      size_t drained = 0;
      stream.next_layer().expires_after(std::chrono::seconds(2));
      while (drained < (64u << 20)) {
        auto [drain_ec, n] = co_await stream.async_read_some(net::buffer(sink), kNoThrow);
        if (drain_ec) break;
        drained += n;
      }
    }
    if (write_ec || !keep_alive || failed_read) break;
  }
  stream.next_layer().expires_after(std::chrono::seconds(2));
  co_await stream.async_shutdown(kNoThrow);
}

awaitable<Status> ApiServer::Impl::readUpload(beast::ssl_stream<beast::tcp_stream>& stream,
                                              beast::flat_buffer& buffer,
                                              http::request_parser<http::empty_body>& header,
                                              ApiRequest* request) {
  if (options.upload_dir.empty()) {
    co_return makeError(ErrorCode::kInternal, "api", "uploads are not configured");
  }
  const std::string path = options.upload_dir + "/upload-" + randomHex(8) + ".part";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) {
    co_return makeError(ErrorCode::kInternal, "api",
                        "cannot store the upload: " + std::string(std::strerror(errno)));
  }
  auto fail = [&](Error error) -> Status {
    ::unlink(path.c_str());
    return std::unexpected(std::move(error));
  };
  Sha256 hash;
  int64_t total = 0;
  int64_t checked_space_at = 0;
  auto too_large = [&] {
    return fail(Error{ErrorCode::kPayloadTooLarge, "api",
                      "the upload is larger than " + std::to_string(options.max_upload_bytes) +
                          " bytes"});
  };
  // The header was read without a body limit, so the limit is kept here: at once for a
  // declared length, as the bytes come for a chunked body.
  if (auto declared = header.content_length();
      declared && *declared > static_cast<std::uint64_t>(options.max_upload_bytes)) {
    co_return too_large();
  }
  if (!header.is_done()) {
    http::request_parser<http::buffer_body> body{std::move(header)};
    body.body_limit(static_cast<std::uint64_t>(options.max_upload_bytes));
    std::vector<char> chunk(1 << 20);
    while (!body.is_done()) {
      body.get().body().data = chunk.data();
      body.get().body().size = chunk.size();
      // The deadline is per chunk: a large image takes as long as it takes, a stalled
      // client does not.
      stream.next_layer().expires_after(std::chrono::seconds(options.request_timeout_s));
      auto [ec, n] = co_await http::async_read(stream, buffer, body, kNoThrow);
      (void)n;
      if (ec == http::error::need_buffer) ec = {};
      if (ec == http::error::body_limit) co_return too_large();
      if (ec) co_return fail(Error{ErrorCode::kInvalidArgument, "api",
                                   "the upload was cut off: " + ec.message()});
      const size_t got = chunk.size() - body.get().body().size;
      for (size_t done = 0; done < got;) {
        ssize_t w = ::write(fd.get(), chunk.data() + done, got - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          co_return fail(Error{ErrorCode::kInternal, "api",
                               "cannot store the upload: " + std::string(std::strerror(errno))});
        }
        done += static_cast<size_t>(w);
      }
      hash.update(std::string_view(chunk.data(), got));
      total += static_cast<int64_t>(got);
      if (total > options.max_upload_bytes) co_return too_large();
      // The admission saw room for a declared length; a chunked body is watched as it comes.
      if (total - checked_space_at >= (int64_t{64} << 20)) {
        checked_space_at = total;
        if (auto room = freeBytes(options.upload_dir); room && *room < options.upload_reserve_bytes) {
          co_return fail(Error{ErrorCode::kInsufficientStorage, "api",
                               "the upload stopped: less than " +
                                   std::to_string(options.upload_reserve_bytes >> 20) +
                                   " MiB would stay free in " + options.upload_dir});
        }
      }
    }
  }
  if (::fsync(fd.get()) != 0) {
    co_return fail(Error{ErrorCode::kInternal, "api", "cannot store the upload"});
  }
  request->upload_file = path;
  request->upload_bytes = total;
  request->upload_sha256 = hash.finishHex();
  co_return Status{};
}

awaitable<void> ApiServer::Impl::streamEvents(beast::ssl_stream<beast::tcp_stream>& stream,
                                              std::function<bool(const Event&)> filter) {
  http::response<http::empty_body> res{http::status::ok, 11};
  res.set(http::field::server, "qiaod");
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-store");
  res.chunked(true);
  http::response_serializer<http::empty_body> serializer{res};
  stream.next_layer().expires_after(std::chrono::seconds(options.request_timeout_s));
  auto [header_ec, header_bytes] = co_await http::async_write_header(stream, serializer, kNoThrow);
  (void)header_bytes;
  if (header_ec) co_return;

  auto subscriber = std::make_shared<Subscriber>(ioc.get_executor());
  constexpr size_t kMaxQueued = 4096;
  auto* io = &ioc;
  uint64_t id = events.subscribe([subscriber, filter, io](const Event& event) {
    if (!filter(event)) return;
    std::string text = "event: " + event.type + "\ndata: " + event.json + "\n\n";
    net::post(*io, [subscriber, text = std::move(text)]() mutable {
      if (subscriber->queue.size() >= kMaxQueued) {
        subscriber->overflowed = true;
      } else {
        subscriber->queue.push_back(std::move(text));
      }
      subscriber->signal.cancel();
    });
  });
  struct Unsubscribe {
    EventBus& bus;
    uint64_t id;
    ~Unsubscribe() { bus.unsubscribe(id); }
  } unsubscribe{events, id};

  // A first comment tells the client the stream is live.
  std::deque<std::string>& queue = subscriber->queue;
  queue.push_front(": connected\n\n");
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(options.event_stream_max_s);
  while (!stopped.load() && std::chrono::steady_clock::now() < end) {
    if (queue.empty()) {
      subscriber->signal.expires_at(std::min(
          end, std::chrono::steady_clock::now() + std::chrono::seconds(options.event_keepalive_s)));
      auto [wait_ec] = co_await subscriber->signal.async_wait(kNoThrow);
      if (queue.empty()) {
        if (wait_ec == net::error::operation_aborted && stopped.load()) break;
        if (wait_ec == net::error::operation_aborted) continue;
        queue.push_back(": keepalive\n\n");
      }
    }
    if (subscriber->overflowed) {
      kLog.warn("event stream client too slow; closing its stream");
      break;
    }
    std::string text = std::move(queue.front());
    queue.pop_front();
    stream.next_layer().expires_after(std::chrono::seconds(options.request_timeout_s));
    auto [ec, n] = co_await net::async_write(stream, http::make_chunk(net::buffer(text)), kNoThrow);
    (void)n;
    if (ec) break;
  }
}

ApiServer::ApiServer(ServerOptions options, RequestHandler handler, EventBus& events)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler), events)) {}

ApiServer::~ApiServer() {
  stop();
  impl_->pool.join();
}

Result<std::vector<std::string>> ApiServer::listen() {
  impl_->crl_stamp = impl_->crlStamp();
  auto tls = impl_->makeTls();
  if (!tls) return std::unexpected(tls.error());
  impl_->tls = std::move(*tls);
  std::vector<std::string> bound;
  for (const auto& text : impl_->options.listen) {
    auto endpoint = parseListen(text);
    if (!endpoint) return std::unexpected(endpoint.error());
    auto acceptor = std::make_unique<tcp::acceptor>(impl_->ioc);
    boost::system::error_code ec;
    acceptor->open(endpoint->protocol(), ec);
    if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec && endpoint->address().is_v6()) acceptor->set_option(net::ip::v6_only(true), ec);
    if (!ec) acceptor->bind(*endpoint, ec);
    if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return makeError(ErrorCode::kUnavailable, "api",
                       "cannot listen on " + text + ": " + ec.message());
    }
    bound.push_back(endpointText(acceptor->local_endpoint()));
    impl_->acceptors.push_back(std::move(acceptor));
  }
  for (auto& acceptor : impl_->acceptors) {
    net::co_spawn(impl_->ioc, impl_->acceptLoop(*acceptor), net::detached);
  }
  net::co_spawn(impl_->ioc, impl_->tickLoop(), net::detached);
  return bound;
}

void ApiServer::run() {
  auto guard = net::make_work_guard(impl_->ioc);
  impl_->ioc.run();
}

void ApiServer::stop() {
  if (impl_->stopped.exchange(true)) return;
  net::post(impl_->ioc, [impl = impl_.get()] {
    for (auto& acceptor : impl->acceptors) {
      boost::system::error_code ignored;
      acceptor->close(ignored);
    }
    impl->ioc.stop();
  });
}

}  // namespace qiao
