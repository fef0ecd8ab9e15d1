#include "node/audit/syslog.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "base/handle.h"
#include "base/log.h"
#include "base/names.h"

namespace qiao {
namespace {

const Logger kLog("audit");

Error syslogError(ErrorCode code, const std::string& message) {
  return Error{code, "syslog", message};
}

std::string sslErrorText() {
  unsigned long e = ERR_get_error();
  if (e == 0) return std::strerror(errno);
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

// Printable US-ASCII only (RFC 5424 header fields); anything else becomes '_'.
std::string headerField(const std::string& value, size_t max) {
  std::string out;
  for (unsigned char c : value.substr(0, max)) out += (c > 32 && c < 127) ? char(c) : '_';
  return out.empty() ? "-" : out;
}

// An SD-PARAM value: '"', '\' and ']' escaped (RFC 5424 6.3.3); control bytes and bytes outside
// ASCII as %XX, so the message stays valid UTF-8 whatever a caller sent.
std::string paramValue(const std::string& value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (c == '"' || c == '\\' || c == ']') {
      out += '\\';
      out += char(c);
    } else if (c < 32 || c >= 127) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += char(c);
    }
  }
  return out;
}

std::string printable(const std::string& value) {
  std::string out;
  for (unsigned char c : value) out += (c >= 32 && c < 127) ? char(c) : '?';
  return out;
}

}  // namespace

Result<SyslogDestination> parseSyslogDestination(const std::string& text) {
  SyslogDestination d;
  auto bad = [&](const std::string& why) {
    return std::unexpected(syslogError(ErrorCode::kInvalidArgument,
                                       "audit.syslog \"" + printable(text) + "\": " + why +
                                           " (use unix:/path/of/socket or tls://host:port)"));
  };
  if (text.rfind("unix:", 0) == 0) {
    d.kind = SyslogDestination::Kind::kUnix;
    d.path = text.substr(5);
    if (d.path.empty() || d.path[0] != '/') return bad("the socket's path must be absolute");
    if (d.path.size() >= sizeof(sockaddr_un{}.sun_path))
      return bad("the socket's path is too long");
    return d;
  }
  if (text.rfind("tls://", 0) != 0) return bad("unknown scheme");
  std::string rest = text.substr(6);
  size_t colon;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return bad("an IPv6 address is written [addr]:port");
    }
    d.host = rest.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = rest.rfind(':');
    if (colon == std::string::npos) return bad("the port is missing");
    d.host = rest.substr(0, colon);
  }
  if (d.host.empty()) return bad("the host is missing");
  for (unsigned char c : d.host) {
    if (!(std::isalnum(c) || c == '.' || c == '-' || c == ':' || c == '_')) {
      return bad("the host has a character a host name cannot have");
    }
  }
  const std::string port = rest.substr(colon + 1);
  int value = 0;
  for (char c : port) {
    if (c < '0' || c > '9' || value > 65535) return bad("the port is not a number");
    value = value * 10 + (c - '0');
  }
  if (port.empty() || value < 1 || value > 65535) return bad("the port must be 1-65535");
  d.port = static_cast<uint16_t>(value);
  return d;
}

std::string syslogFrame(const AuditEntry& e, const std::string& hostname, int pid) {
  const int severity = e.status >= 400 ? 4 : 5;
  std::string msg = "<" + std::to_string(13 * 8 + severity) + ">1 " + headerField(e.at, 64) + " " +
                    headerField(hostname, 255) + " qiaod " + std::to_string(pid) +
                    " audit [qiao-audit@32473";
  auto param = [&](const char* name, const std::string& value) {
    msg += ' ';
    msg += name;
    msg += "=\"";
    msg += paramValue(value);
    msg += '"';
  };
  param("seq", std::to_string(e.seq));
  param("identity", e.identity);
  param("method", e.method);
  param("path", e.path);
  param("tenant", e.tenant);
  param("target", e.target);
  param("status", std::to_string(e.status));
  param("request_digest", e.request_digest);
  param("prev_hash", e.prev_hash);
  param("hash", e.hash);
  msg += "] " + printable(e.method) + " " + printable(e.path) + " " + std::to_string(e.status) +
         " by " +
         (e.identity.empty() ? std::string("an unauthenticated caller") : printable(e.identity));
  return std::to_string(msg.size()) + " " + msg;
}

void DeliveryTracker::written(int64_t seq, uint64_t end) { pending_.push_back({seq, end, {}}); }

void DeliveryTracker::acknowledged(Clock::time_point now, uint64_t total, uint64_t unacked) {
  const uint64_t acked = unacked >= total ? 0 : total - unacked;
  for (auto& p : pending_) {
    if (p.end > acked) break;
    if (!p.acked_at) p.acked_at = now;
  }
}

std::optional<int64_t> DeliveryTracker::confirm(Clock::time_point now) {
  std::optional<int64_t> last;
  while (!pending_.empty() && pending_.front().acked_at &&
         now - *pending_.front().acked_at >= confirm_) {
    last = pending_.front().seq;
    pending_.pop_front();
  }
  return last;
}

// One connection to the collector: a non-blocking socket, TLS over it or not.
namespace {

using Clock = std::chrono::steady_clock;

class Connection {
 public:
  Connection(UniqueFd fd, SSL* ssl) : fd_(std::move(fd)), ssl_(ssl) {}
  ~Connection() {
    if (ssl_) SSL_free(ssl_);
  }
  int fd() const { return fd_.get(); }

  // Waits for the socket to be ready as OpenSSL or the kernel asked; false at the deadline.
  bool wait(short events, Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_.get(), events, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    return rc > 0;
  }

  Status handshake(Clock::time_point deadline) {
    while (true) {
      int rc = SSL_connect(ssl_);
      if (rc == 1) return {};
      int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_WANT_READ && wait(POLLIN, deadline)) continue;
      if (err == SSL_ERROR_WANT_WRITE && wait(POLLOUT, deadline)) continue;
      std::string why = sslErrorText();
      long verify = SSL_get_verify_result(ssl_);
      if (verify != X509_V_OK) why = X509_verify_cert_error_string(verify);
      return std::unexpected(syslogError(ErrorCode::kUnavailable, "TLS handshake: " + why));
    }
  }

  Status writeAll(const std::string& data, Clock::time_point deadline) {
    size_t off = 0;
    while (off < data.size()) {
      if (ssl_) {
        size_t n = 0;
        int rc = SSL_write_ex(ssl_, data.data() + off, data.size() - off, &n);
        if (rc == 1) {
          off += n;
          continue;
        }
        int err = SSL_get_error(ssl_, rc);
        if (err == SSL_ERROR_WANT_WRITE && wait(POLLOUT, deadline)) continue;
        if (err == SSL_ERROR_WANT_READ && wait(POLLIN, deadline)) continue;
        return std::unexpected(syslogError(ErrorCode::kUnavailable, "send: " + sslErrorText()));
      }
      ssize_t n = ::send(fd_.get(), data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n > 0) {
        off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait(POLLOUT, deadline)) continue;
      return std::unexpected(
          syslogError(ErrorCode::kUnavailable,
                      n < 0 ? std::string("send: ") + std::strerror(errno) : "send: timed out"));
    }
    return {};
  }

  // The collector sends nothing (TLS aside: session tickets, alerts); whatever it sent is read
  // and dropped. False when it closed the connection or the connection failed.
  bool alive() {
    char buf[4096];
    while (true) {
      if (ssl_) {
        size_t n = 0;
        int rc = SSL_read_ex(ssl_, buf, sizeof buf, &n);
        if (rc == 1) continue;
        int err = SSL_get_error(ssl_, rc);
        ERR_clear_error();
        return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
      }
      ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
  }

  // Bytes written that the other side has not acknowledged yet (TCP: not acked by its kernel;
  // a local stream socket: not read by the collector).
  uint64_t unacked() {
    int n = 0;
    if (::ioctl(fd_.get(), SIOCOUTQ, &n) != 0 || n < 0) return UINT64_MAX;
    return static_cast<uint64_t>(n);
  }

 private:
  UniqueFd fd_;
  SSL* ssl_;
};

}  // namespace

struct SyslogShipper::Impl {
  Store& store;
  ShipperOptions options;
  SyslogDestination destination;
  SSL_CTX* ctx = nullptr;
  DeliveryTracker tracker;
  std::unique_ptr<Connection> connection;
  uint64_t written = 0;
  int64_t next_seq = 0;  // the next entry to send on this connection
  std::atomic<int64_t> confirmed{0};
  std::chrono::milliseconds backoff{0};
  std::string last_problem;
  std::mutex fd_mutex;  // guards `interrupt_fd` against interrupt()
  int interrupt_fd = -1;
  std::atomic<bool> interrupted{false};

  Impl(Store& s, ShipperOptions o, SyslogDestination d)
      : store(s), options(std::move(o)), destination(std::move(d)), tracker(options.confirm) {}
  ~Impl() {
    if (ctx) SSL_CTX_free(ctx);
  }

  Result<std::unique_ptr<Connection>> connect() {
    const auto deadline = Clock::now() + options.io_timeout;
    UniqueFd fd;
    if (destination.kind == SyslogDestination::Kind::kUnix) {
      fd = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::memcpy(addr.sun_path, destination.path.data(), destination.path.size());
      publish(fd.get());
      if (!fd.valid() ||
          ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        return std::unexpected(syslogError(
            ErrorCode::kUnavailable, "connect " + destination.path + ": " + std::strerror(errno)));
      }
      return std::make_unique<Connection>(std::move(fd), nullptr);
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(destination.port);
    if (int rc = ::getaddrinfo(destination.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
      return std::unexpected(syslogError(ErrorCode::kUnavailable,
                                         "resolve " + destination.host + ": " + gai_strerror(rc)));
    }
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(found, freeaddrinfo);
    std::string why = "no address";
    for (addrinfo* a = found; a; a = a->ai_next) {
      fd = UniqueFd(::socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      if (!fd.valid()) continue;
      publish(fd.get());
      if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) break;
      if (errno == EINPROGRESS) {
        pollfd p{fd.get(), POLLOUT, 0};
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        int err = ETIMEDOUT;
        if (::poll(&p, 1, std::max<int>(0, static_cast<int>(left.count()))) > 0) {
          socklen_t len = sizeof err;
          ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        }
        if (err == 0) break;
        why = std::strerror(err);
      } else {
        why = std::strerror(errno);
      }
      fd = UniqueFd();
    }
    if (!fd.valid()) {
      return std::unexpected(syslogError(ErrorCode::kUnavailable,
                                         "connect " + destination.host + ":" + port + ": " + why));
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    SSL* ssl = SSL_new(ctx);
    if (!ssl) return std::unexpected(syslogError(ErrorCode::kInternal, sslErrorText()));
    SSL_set_fd(ssl, fd.get());
    const bool is_ip = isIpAddress(destination.host);
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(param, destination.host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, destination.host.c_str());
      X509_VERIFY_PARAM_set1_host(param, destination.host.c_str(), 0);
    }
    auto connection = std::make_unique<Connection>(std::move(fd), ssl);
    if (auto ok = connection->handshake(deadline); !ok) return std::unexpected(ok.error());
    return connection;
  }

  void publish(int fd) {
    std::lock_guard lock(fd_mutex);
    interrupt_fd = fd;
    if (interrupted) ::shutdown(fd, SHUT_RDWR);
  }

  void drop(const std::string& why) {
    {
      std::lock_guard lock(fd_mutex);
      interrupt_fd = -1;
    }
    connection.reset();
    tracker.reset();
    fail(why);
  }

  void fail(const std::string& why) {
    if (why != last_problem) {
      kLog.warn("audit log not shipped; resuming after the last delivered entry",
                {{"destination", options.destination},
                 {"error", why},
                 {"delivered", std::to_string(confirmed.load())}});
      last_problem = why;
    }
    backoff = std::min<std::chrono::milliseconds>(
        std::chrono::milliseconds(30000),
        std::max<std::chrono::milliseconds>(std::chrono::milliseconds(500), backoff * 2));
  }
};

SyslogShipper::SyslogShipper(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SyslogShipper::~SyslogShipper() = default;

Result<std::unique_ptr<SyslogShipper>> SyslogShipper::create(Store& store, ShipperOptions options) {
  auto destination = parseSyslogDestination(options.destination);
  if (!destination) return std::unexpected(destination.error());
  auto confirmed = store.audit().confirmed(options.destination);
  if (!confirmed) return std::unexpected(confirmed.error());
  auto impl = std::make_unique<Impl>(store, std::move(options), std::move(*destination));
  impl->confirmed = *confirmed;
  if (impl->destination.kind == SyslogDestination::Kind::kTls) {
    const auto& o = impl->options;
    impl->ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX* ctx = impl->ctx;
    auto tls = [&](const std::string& what) {
      return std::unexpected(
          syslogError(ErrorCode::kInvalidArgument, what + ": " + sslErrorText()));
    };
    if (!ctx) return tls("TLS");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (o.ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx) != 1
                          : SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr) != 1) {
      return tls("audit.syslog_ca_file " + o.ca_file);
    }
    if (!o.cert_file.empty()) {
      if (SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) != 1) {
        return tls("the client certificate " + o.cert_file);
      }
      if (SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
          SSL_CTX_check_private_key(ctx) != 1) {
        return tls("the client key " + o.key_file);
      }
    }
  }
  return std::unique_ptr<SyslogShipper>(new SyslogShipper(std::move(impl)));
}

int64_t SyslogShipper::confirmed() const { return impl_->confirmed; }

void SyslogShipper::interrupt() {
  std::lock_guard lock(impl_->fd_mutex);
  impl_->interrupted = true;
  if (impl_->interrupt_fd >= 0) ::shutdown(impl_->interrupt_fd, SHUT_RDWR);
}

std::chrono::milliseconds SyslogShipper::step() {
  Impl& s = *impl_;
  using std::chrono::milliseconds;
  if (s.interrupted) return milliseconds(1000);
  if (!s.connection) {
    auto connection = s.connect();
    if (!connection) {
      {
        std::lock_guard lock(s.fd_mutex);
        s.interrupt_fd = -1;
      }
      s.fail(connection.error().message);
      return s.backoff;
    }
    s.connection = std::move(*connection);
    s.written = 0;
    s.next_seq = s.confirmed + 1;
    if (!s.last_problem.empty()) {
      kLog.info("audit log shipping again", {{"destination", s.options.destination},
                                             {"from_entry", std::to_string(s.next_seq)}});
    }
    s.last_problem.clear();
    s.backoff = milliseconds(0);
  }
  // At most a bounded amount in flight: what is not yet confirmed is sent again after a break.
  bool sent_any = false;
  if (s.tracker.inFlight() < 20000) {
    auto entries = s.store.audit().list(s.next_seq - 1, 512);
    if (!entries) {
      s.fail(entries.error().describe());
      return s.backoff;
    }
    std::string batch;
    std::vector<std::pair<int64_t, uint64_t>> ends;
    for (const auto& e : *entries) {
      batch += syslogFrame(e, s.options.hostname, static_cast<int>(::getpid()));
      ends.emplace_back(e.seq, s.written + batch.size());
    }
    if (!batch.empty()) {
      if (auto ok = s.connection->writeAll(batch, Clock::now() + s.options.io_timeout); !ok) {
        s.drop(ok.error().message);
        return s.backoff;
      }
      for (const auto& [seq, end] : ends) s.tracker.written(seq, end);
      s.written += batch.size();
      s.next_seq = entries->back().seq + 1;
      sent_any = true;
    }
  }
  const auto now = Clock::now();
  s.tracker.acknowledged(now, s.written, s.connection->unacked());
  if (!s.connection->alive()) {
    s.drop("the collector closed the connection");
    return s.backoff;
  }
  if (auto last = s.tracker.confirm(now)) {
    if (auto saved = s.store.audit().setConfirmed(s.options.destination, *last); saved) {
      s.confirmed = *last;
    }
  }
  if (sent_any) return milliseconds(0);
  return milliseconds(s.tracker.inFlight() > 0 ? 100 : 500);
}

}  // namespace qiao
