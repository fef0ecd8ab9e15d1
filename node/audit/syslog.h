// Shipping the audit log to the site's collector as RFC 5424 syslog messages, octet-counted
// (RFC 6587 3.4.1, the framing RFC 5425 prescribes for TLS), over TLS to host:port or over a
// local stream socket. Every entry is sent in order, and an entry counts as delivered only when
// the collector's side has acknowledged its bytes (the socket's unacknowledged count reached
// them) and the connection then stayed up for `confirm` more: a collector that dies with
// entries read but not written, or still in its socket, breaks the connection within that time
// and they are sent again. The last delivered entry is kept in the store per destination, so
// a restart of qiaod or of the collector resumes after it; a collector may see an entry twice
// (its seq tells), never miss one.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "base/error.h"
#include "node/state/store.h"

namespace qiao {

struct SyslogDestination {
  enum class Kind { kUnix, kTls } kind = Kind::kTls;
  std::string path;  // kUnix
  std::string host;  // kTls: a DNS name or an IP address (v6 in brackets in the text)
  uint16_t port = 0;
};

// "unix:/run/rsyslog/qiao.sock" or "tls://collector.example:6514" / "tls://[::1]:6514".
Result<SyslogDestination> parseSyslogDestination(const std::string& text);

// The RFC 5424 message of an entry (facility 13, log audit; severity warning for a refusal,
// notice otherwise), prefixed by its length.
std::string syslogFrame(const AuditEntry& entry, const std::string& hostname, int pid);

// Which sent entries count as delivered, given what the socket reports. Pure: time is passed
// in, so its rules are tested without a connection or a sleep.
class DeliveryTracker {
 public:
  using Clock = std::chrono::steady_clock;
  explicit DeliveryTracker(std::chrono::milliseconds confirm) : confirm_(confirm) {}
  // An entry's last byte is the `end`th written on this connection.
  void written(int64_t seq, uint64_t end);
  // The socket says `unacked` of the `total` bytes written are not yet acknowledged.
  void acknowledged(Clock::time_point now, uint64_t total, uint64_t unacked);
  // With the connection seen alive at `now`: the last entry delivered by now, if any is new.
  std::optional<int64_t> confirm(Clock::time_point now);
  // The connection broke: what was in flight is forgotten (it will be sent again).
  void reset() { pending_.clear(); }
  size_t inFlight() const { return pending_.size(); }

 private:
  struct Pending {
    int64_t seq;
    uint64_t end;
    std::optional<Clock::time_point> acked_at;
  };
  std::chrono::milliseconds confirm_;
  std::deque<Pending> pending_;
};

}  // namespace qiao

namespace qiao {

struct ShipperOptions {
  std::string destination;          // as parseSyslogDestination takes it; also its key in the store
  std::string ca_file;              // "" = the system's trust store
  std::string cert_file, key_file;  // this node's client certificate ("" = none)
  std::chrono::milliseconds confirm{5000};
  std::chrono::milliseconds io_timeout{10000};
  std::string hostname;  // HOSTNAME of the messages
};

class SyslogShipper {
 public:
  // Checks the destination and loads the TLS material: a bad file fails here, at start.
  static Result<std::unique_ptr<SyslogShipper>> create(Store& store, ShipperOptions options);
  ~SyslogShipper();
  SyslogShipper(const SyslogShipper&) = delete;
  SyslogShipper& operator=(const SyslogShipper&) = delete;

  // Connects when needed, sends the entries after the last sent, confirms what is delivered.
  // Returns how long to wait before the next step (longer after a failure, backing off).
  std::chrono::milliseconds step();
  // From another thread: breaks a connect or write in progress (stop).
  void interrupt();
  // The last delivered entry (the store's figure, kept in step()).
  int64_t confirmed() const;

 private:
  struct Impl;
  explicit SyslogShipper(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qiao
