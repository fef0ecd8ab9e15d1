// QMP over a unix stream socket: QmpRuntime (the one I/O thread and io_context that several
// channels share) and QmpSocketChannel (one QMP monitor: QEMU's `-qmp unix:PATH,server=on` or
// qemu-storage-daemon's `--chardev socket,path=PATH,server=on --monitor chardev=...`).
// Used for qemu-storage-daemon and standalone QEMU; libvirt-run guests go through
// LibvirtQmpChannel instead (libvirt owns their monitor socket).
//
// The I/O (Asio, C++20 coroutines) lives in qmp_socket.cc; this header has no Asio.
//
// Reconnection policy: on demand only, never in the background.
//   - A channel connects when execute() (or connect()) finds it without a connection: one
//     attempt - connect, read the greeting, negotiate with qmp_capabilities - bounded by
//     options.connect_timeout; each caller waits for it at most its own timeout (kTimeout,
//     and the attempt goes on for the others). Callers that arrive while an attempt runs
//     share it. A failed attempt answers kUnavailable; there is no retry loop and no backoff:
//     the next execute() makes the next attempt. A QEMU that exited is thus never polled by a
//     channel nobody uses.
//   - The connection is dropped when the peer closes it, on a read or write error, when a
//     write does not finish within options.write_timeout, and when the peer sends something
//     that is not a QMP message or a line over options.limits.max_message_bytes (the stream
//     cannot be trusted to resynchronise). Every command waiting for a reply on it then fails
//     with kUnavailable, naming the reason.
//   - Events are delivered only while connected; a QMP server keeps no backlog for a client
//     that was away, so subscribers that track state re-query after generation() changes.
//   - QMP servers take one client at a time: a second channel to the same socket waits in
//     the server's accept queue, gets no greeting while the first is connected, and so fails
//     its attempt (kUnavailable) after options.connect_timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/error.h"
#include "node/vm/qmp/qmp_channel.h"
#include "node/vm/qmp/qmp_message.h"

namespace qiao {

// One I/O thread running one io_context, shared by any number of QmpSocketChannels. Starts
// its thread in the constructor. stop() closes every channel's connection (their waiting
// commands fail with kUnavailable), lets the coroutines finish, and joins the thread; channels
// answer kUnavailable afterwards. The destructor stops. Must not be stopped or destroyed from
// its own thread (an event handler).
class QmpRuntime {
 public:
  QmpRuntime();
  ~QmpRuntime();
  QmpRuntime(const QmpRuntime&) = delete;
  QmpRuntime& operator=(const QmpRuntime&) = delete;

  void stop();
  // True on the runtime's I/O thread (where event handlers run).
  bool onIoThread() const;

  struct Impl;

 private:
  friend class QmpSocketChannel;
  std::shared_ptr<Impl> impl_;
};

struct QmpSocketOptions {
  std::string path;                                 // the QMP server's unix socket
  std::chrono::milliseconds connect_timeout{5000};  // connect + greeting + qmp_capabilities
  std::chrono::milliseconds write_timeout{5000};    // one queued write; then the link drops
  QmpLimits limits;
  std::string name;  // for logs: "qsd vm-12", "qemu acme.web1"; defaults to the path
};

class QmpSocketChannel final : public QmpChannel {
 public:
  // Does not connect (see the policy above). The channel may outlive `runtime`: it keeps a
  // share of the runtime's state, and answers kUnavailable once the runtime is stopped.
  QmpSocketChannel(QmpRuntime& runtime, QmpSocketOptions options);
  // Closes the connection; commands still waiting fail with kUnavailable.
  ~QmpSocketChannel() override;
  QmpSocketChannel(const QmpSocketChannel&) = delete;
  QmpSocketChannel& operator=(const QmpSocketChannel&) = delete;

  // Connects now unless connected (for callers that want events before any command).
  Status connect(std::chrono::milliseconds timeout = kQmpDefaultTimeout);
  bool connected() const;
  // The live connection's number (1 for the first, +1 for each reconnection); 0 while there
  // is none. A view built from events is current while this stays what it was.
  uint64_t generation() const;
  // The greeting of the live (or last) connection; null before any.
  nlohmann::json serverVersion() const;

  struct Impl;

 protected:
  Result<nlohmann::json> doExecute(std::string_view command, nlohmann::json arguments,
                                   std::chrono::milliseconds timeout) override;
  QmpSubscription doSubscribe(std::string event_name, QmpEventHandler handler) override;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace qiao
