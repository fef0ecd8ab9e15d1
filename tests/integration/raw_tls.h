// Raw requests to a qiaod over TLS, for what no well-behaved client sends: headers whose body
// never comes, broken framing, a missing Host header, many connections held open. One
// connection each; OpenSSL stays in raw_tls.cc.
#pragma once

#include <memory>
#include <string>

namespace qiao::testing {

struct RawTlsOptions {
  std::string endpoint;  // https://127.0.0.1:PORT
  std::string ca;        // the cluster CA the server's certificate must chain to
  std::string cert, key;  // "" for none
  std::string source;     // a loopback address to connect from (127.0.0.2, ...); "" any
  int timeout_ms = 10000;
};

class RawTls {
 public:
  // Connects and completes the handshake; nullptr (and `error`) when either fails.
  static std::unique_ptr<RawTls> connect(const RawTlsOptions& options, std::string* error);
  ~RawTls();
  RawTls(const RawTls&) = delete;
  RawTls& operator=(const RawTls&) = delete;

  // Sends all of `bytes`; false when the server closed or reset the connection first.
  bool send(const std::string& bytes);
  // Reads until the server closes the connection or `timeout_ms` passes; what came.
  std::string readUntilClosed(int timeout_ms);
  // Reads until `needle` has come (or the connection ends, or the time is up); what came.
  std::string readUntil(const std::string& needle, int timeout_ms);
  bool closedByServer() const { return closed_; }

 private:
  RawTls() = default;
  struct Handles;
  std::unique_ptr<Handles> h_;
  bool closed_ = false;
};

// The status of the first HTTP response in `received` ("HTTP/1.1 403 ..."), 0 when none.
int httpStatusOf(const std::string& received);

}  // namespace qiao::testing
