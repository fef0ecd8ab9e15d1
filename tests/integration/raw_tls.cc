#include "tests/integration/raw_tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

namespace qiao::testing {

struct RawTls::Handles {
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  int fd = -1;
  ~Handles() {
    if (ssl != nullptr) SSL_free(ssl);
    if (ctx != nullptr) SSL_CTX_free(ctx);
    if (fd >= 0) ::close(fd);
  }
};

namespace {

std::string lastTlsError() {
  char text[256] = "unknown";
  if (unsigned long e = ERR_get_error()) ERR_error_string_n(e, text, sizeof text);
  return text;
}

bool waitFd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, timeout_ms) > 0;
}

}  // namespace

std::unique_ptr<RawTls> RawTls::connect(const RawTlsOptions& o, std::string* error) {
  std::unique_ptr<RawTls> out(new RawTls());
  out->h_ = std::make_unique<Handles>();
  Handles& h = *out->h_;
  // https://IP:PORT (the harness listens on IPv4 loopback).
  std::string rest = o.endpoint.substr(o.endpoint.find("//") + 2);
  std::string host = rest.substr(0, rest.rfind(':'));
  int port = std::stoi(rest.substr(rest.rfind(':') + 1));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    *error = "not an IPv4 endpoint: " + o.endpoint;
    return nullptr;
  }
  h.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (h.fd >= 0 && !o.source.empty()) {
    sockaddr_in from{};
    from.sin_family = AF_INET;
    if (inet_pton(AF_INET, o.source.c_str(), &from.sin_addr) != 1 ||
        ::bind(h.fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
      *error = "cannot bind to " + o.source;
      return nullptr;
    }
  }
  if (h.fd < 0 || ::connect(h.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    *error = "cannot connect to " + o.endpoint;
    return nullptr;
  }
  timeval tv{o.timeout_ms / 1000, (o.timeout_ms % 1000) * 1000};
  setsockopt(h.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(h.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  h.ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(h.ctx, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(h.ctx, o.ca.c_str(), nullptr) != 1 ||
      (!o.cert.empty() &&
       (SSL_CTX_use_certificate_chain_file(h.ctx, o.cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(h.ctx, o.key.c_str(), SSL_FILETYPE_PEM) != 1))) {
    *error = "cannot load the TLS files: " + lastTlsError();
    return nullptr;
  }
  h.ssl = SSL_new(h.ctx);
  SSL_set_fd(h.ssl, h.fd);
  if (SSL_connect(h.ssl) != 1) {
    *error = "TLS handshake failed: " + lastTlsError();
    return nullptr;
  }
  return out;
}

RawTls::~RawTls() = default;

bool RawTls::send(const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    int n = SSL_write(h_->ssl, bytes.data() + done, static_cast<int>(bytes.size() - done));
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

std::string RawTls::readUntil(const std::string& needle, int timeout_ms) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[16384];
  while (!closed_ && (needle.empty() || out.find(needle) == std::string::npos)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) break;
    if (SSL_pending(h_->ssl) == 0 && !waitFd(h_->fd, POLLIN, static_cast<int>(left))) break;
    int n = SSL_read(h_->ssl, buf, sizeof buf);
    if (n <= 0) {
      closed_ = true;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string RawTls::readUntilClosed(int timeout_ms) { return readUntil({}, timeout_ms); }

int httpStatusOf(const std::string& received) {
  if (!received.starts_with("HTTP/1.") || received.size() < 12) return 0;
  try {
    return std::stoi(received.substr(9, 3));
  } catch (...) {
    return 0;
  }
}

}  // namespace qiao::testing
