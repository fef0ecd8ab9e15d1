// A syslog collector for audit_it: RFC 5425 (TLS, octet-counted frames) on a loopback port,
// each message appended as one line to --out as soon as it is read, so what a SIGKILL leaves
// in the file is what it had received. The client must show a certificate (any: the test
// checks what is shipped, not the collector's policy).
//   syslog_collector --listen 127.0.0.1:PORT --cert C --key K --out FILE [--port-file F]
// PORT 0 picks one and writes it to --port-file.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "syslog_collector: %s\n", what.c_str());
  std::exit(1);
}

void serve(SSL* ssl, int out) {
  std::string buf;
  char chunk[16384];
  while (true) {
    size_t space;
    while ((space = buf.find(' ')) != std::string::npos) {
      const size_t len = std::strtoul(buf.substr(0, space).c_str(), nullptr, 10);
      if (len == 0 || space > 7) return;  // not a frame: drop the connection
      if (buf.size() < space + 1 + len) break;
      std::string line = buf.substr(space + 1, len) + "\n";
      buf.erase(0, space + 1 + len);
      if (::write(out, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
        die("cannot write the output");
      }
    }
    int n = SSL_read(ssl, chunk, sizeof chunk);
    if (n <= 0) return;
    buf.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen, cert, key, out_path, port_file;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--listen")
      listen = v;
    else if (k == "--cert")
      cert = v;
    else if (k == "--key")
      key = v;
    else if (k == "--out")
      out_path = v;
    else if (k == "--port-file")
      port_file = v;
    else
      die("unknown option " + k);
  }
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || cert.empty() || key.empty() || out_path.empty()) {
    die("usage: --listen ADDR:PORT --cert C --key K --out FILE [--port-file F]");
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(listen.substr(colon + 1).c_str())));
  if (inet_pton(AF_INET, listen.substr(0, colon).c_str(), &addr.sin_addr) != 1 ||
      ntohl(addr.sin_addr.s_addr) >> 24 != 127) {
    die("--listen must be a loopback address");
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 8) != 0) {
    die(std::string("cannot listen: ") + std::strerror(errno));
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  if (!port_file.empty()) {
    FILE* f = std::fopen((port_file + ".tmp").c_str(), "w");
    if (!f) die("cannot write " + port_file);
    std::fprintf(f, "%d\n", ntohs(addr.sin_port));
    std::fclose(f);
    std::rename((port_file + ".tmp").c_str(), port_file.c_str());
  }
  int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (out < 0) die("cannot open " + out_path);

  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    die("cannot load the certificate or key");
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     [](int, X509_STORE_CTX*) { return 1; });
  while (true) {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, c);
    if (SSL_accept(ssl) == 1) serve(ssl, out);
    ERR_clear_error();
    SSL_free(ssl);
    ::close(c);
  }
}
