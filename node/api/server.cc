#include "node/api/server.h"

#include <fcntl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

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
#include <cerrno>
#include <cstring>
#include <optional>
#include <deque>

#include "base/crypto.h"
#include "base/handle.h"
#include "base/log.h"
#include "node/api/pki.h"
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

// A coroutine function, not a capturing lambda: its parameters live in its own frame.
awaitable<ApiResponse> runHandler(RequestHandler handler, ApiRequest request) {
  co_return handler(request);
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
        ssl_context(ssl::context::tls_server),
        pool(static_cast<size_t>(std::max(1, options.handler_threads))) {}

  ServerOptions options;
  RequestHandler handler;
  EventBus& events;
  net::io_context ioc{1};
  ssl::context ssl_context;
  net::thread_pool pool;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::atomic<int> connections{0};
  std::atomic<bool> stopped{false};

  Status setupTls();
  awaitable<void> acceptLoop(tcp::acceptor& acceptor);
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

Status ApiServer::Impl::setupTls() {
  boost::system::error_code ec;
  ssl_context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                              ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                              ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                          ec);
  SSL_CTX_set_min_proto_version(ssl_context.native_handle(), TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(ssl_context.native_handle(),
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
                    [&](auto& e) { ssl_context.use_certificate_chain_file(options.cert_file, e); });
      !s) {
    return s;
  }
  if (auto s = load("private key", options.key_file,
                    [&](auto& e) {
                      ssl_context.use_private_key_file(options.key_file, ssl::context::pem, e);
                    });
      !s) {
    return s;
  }
  if (auto s = load("CA", options.ca_file,
                    [&](auto& e) { ssl_context.load_verify_file(options.ca_file, e); });
      !s) {
    return s;
  }
  // verify_peer without fail_if_no_peer_cert: a bad certificate fails the handshake, a
  // missing one reaches the handlers, which answer 401 with a message a person can read.
  ssl_context.set_verify_mode(ssl::verify_peer);
  // Tell clients which CA we accept.
  SSL_CTX_set_client_CA_list(ssl_context.native_handle(),
                             SSL_load_client_CA_file(options.ca_file.c_str()));
  return {};
}

awaitable<void> ApiServer::Impl::acceptLoop(tcp::acceptor& acceptor) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kNoThrow);
    if (ec) {
      if (ec == net::error::operation_aborted || stopped.load()) co_return;
      kLog.warn("accept failed", {{"error", ec.message()}});
      continue;
    }
    if (connections.load() >= options.max_connections) {
      kLog.warn("connection refused: too many connections",
                {{"limit", std::to_string(options.max_connections)}});
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    // Small answers must not wait for delayed ACKs (Nagle): the API is request/response.
    boost::system::error_code nodelay_ec;
    socket.set_option(tcp::no_delay(true), nodelay_ec);
    net::co_spawn(ioc, session(std::move(socket)), net::detached);
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
  beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), ssl_context);
  stream.next_layer().expires_after(std::chrono::seconds(options.request_timeout_s));
  auto [hs_ec] = co_await stream.async_handshake(ssl::stream_base::server, kNoThrow);
  if (hs_ec) {
    kLog.info("TLS handshake failed", {{"remote", remote}, {"error", hs_ec.message()}});
    co_return;
  }
  std::string identity;
  std::string identity_error;
  if (X509* cert = SSL_get0_peer_certificate(stream.native_handle())) {
    auto uri = identityUriOfX509(cert);
    if (uri) identity = *uri;
    else identity_error = uri.error().message;
  } else {
    identity_error = "no client certificate was presented";
  }

  beast::flat_buffer buffer;
  for (;;) {
    // The header first: an upload's body goes to a file, every other body into memory.
    http::request_parser<http::empty_body> header;
    header.body_limit(boost::none);
    header.header_limit(16 * 1024);
    stream.next_layer().expires_after(std::chrono::seconds(options.request_timeout_s));
    auto [read_ec, bytes] = co_await http::async_read_header(stream, buffer, header, kNoThrow);
    (void)bytes;
    if (read_ec == http::error::end_of_stream || read_ec == net::error::eof ||
        read_ec == ssl::error::stream_truncated) {
      break;
    }
    ApiResponse response;
    bool keep_alive = false;
    ApiRequest request;
    std::optional<http::request_parser<http::string_body>> parser;
    Error read_error;
    if (!read_ec) {
      const auto& head = header.get();
      request.method = std::string(head.method_string());
      request.target = std::string(head.target());
      request.content_type = std::string(head[http::field::content_type]);
      keep_alive = head.keep_alive();
      if (options.streams_body && options.streams_body(request.method, request.target)) {
        if (identity.empty()) {
          // Nobody unknown gets to fill the disk: refused before a byte of the body is read.
          read_error = Error{ErrorCode::kUnauthenticated, "api",
                             "uploads need a client certificate: " + identity_error};
        } else if (auto upload = co_await readUpload(stream, buffer, header, &request);
                   !upload) {
          read_error = upload.error();
        }
      } else if (auto declared = header.content_length();
                 declared && *declared > static_cast<std::uint64_t>(options.max_body_bytes)) {
        // The header was read without a body limit: a declared length is checked here, a
        // chunked body by the parser below.
        read_ec = http::error::body_limit;
      } else if (!header.is_done()) {
        parser.emplace(std::move(header));
        parser->body_limit(static_cast<std::uint64_t>(options.max_body_bytes));
        stream.next_layer().expires_after(std::chrono::seconds(options.request_timeout_s));
        auto [body_ec, body_bytes] = co_await http::async_read(stream, buffer, *parser, kNoThrow);
        (void)body_bytes;
        read_ec = body_ec;
        if (!read_ec) request.body = std::move(parser->get().body());
      }
    }
    if (read_ec) {
      if (read_ec == beast::error::timeout || read_ec == net::error::connection_reset ||
          read_ec == net::error::operation_aborted) {
        break;
      }
      read_error = Error{ErrorCode::kInvalidArgument, "api",
                         "malformed HTTP request: " + read_ec.message()};
      if (read_ec == http::error::body_limit) {
        read_error = Error{ErrorCode::kPayloadTooLarge, "api",
                           "request body is larger than " +
                               std::to_string(options.max_body_bytes) + " bytes"};
      } else if (read_ec == http::error::header_limit) {
        read_error = Error{ErrorCode::kPayloadTooLarge, "api", "request headers are too large"};
      }
    }
    const bool failed_read = read_ec || !read_error.message.empty();
    if (failed_read) {
      keep_alive = false;
      response.status = httpStatus(read_error.code);
      response.body = errorBody(read_error);
    } else {
      request.peer_identity_uri = identity;
      request.peer_error = identity_error;
      request.remote = remote;
      if (!parseTarget(request.target, &request)) {
        Error error{ErrorCode::kInvalidArgument, "api", "malformed request target"};
        response.status = 400;
        response.body = errorBody(error);
      } else {
        const std::string upload_file = request.upload_file;
        // Run the handler on the pool; resume here, on the io thread.
        response = co_await net::co_spawn(pool, runHandler(handler, std::move(request)),
                                          use_awaitable);
        // An upload the handler did not take is not kept.
        if (!upload_file.empty()) ::unlink(upload_file.c_str());
      }
    }
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
  while (!stopped.load()) {
    if (queue.empty()) {
      subscriber->signal.expires_after(std::chrono::seconds(options.event_keepalive_s));
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
  if (auto tls = impl_->setupTls(); !tls) return std::unexpected(tls.error());
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
