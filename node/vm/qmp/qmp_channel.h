// QmpChannel: the domain-level interface to one QEMU monitor (QMP) - run a command and get its
// "return", and receive the monitor's events. Two implementations:
//   QmpSocketChannel (qmp_socket.h): QEMU's or qemu-storage-daemon's QMP unix socket;
//   LibvirtQmpChannel (libvirt_qmp_channel.h): a libvirt-run guest's monitor through libvirt.
// The scripted fake QMP server for tests is tests/unit/node/vm/qmp/fake_qmp_server.h.
//
// This header also owns the subscription bookkeeping both implementations share
// (QmpSubscribers), so that "destroying the handle unsubscribes" means the same everywhere.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>

#include "base/error.h"
#include "node/vm/qmp/qmp_message.h"

namespace qiao {

inline constexpr std::chrono::milliseconds kQmpDefaultTimeout{10000};

using QmpEventHandler = std::function<void(const QmpEvent&)>;

// A subscription's handle: move-only; destroying it (or reset()) unsubscribes. When reset()
// returns, the handler is not running and will not run again - unless reset() is called from
// inside that very handler, which is allowed (it then returns at once, and the handler is not
// called again). A handle may outlive its channel.
class QmpSubscription {
 public:
  QmpSubscription() = default;
  explicit QmpSubscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  ~QmpSubscription() { reset(); }
  QmpSubscription(QmpSubscription&& other) noexcept : cancel_(std::move(other.cancel_)) {
    other.cancel_ = nullptr;
  }
  QmpSubscription& operator=(QmpSubscription&& other) noexcept {
    if (this != &other) {
      reset();
      cancel_ = std::move(other.cancel_);
      other.cancel_ = nullptr;
    }
    return *this;
  }
  QmpSubscription(const QmpSubscription&) = delete;
  QmpSubscription& operator=(const QmpSubscription&) = delete;

  void reset() {
    if (auto cancel = std::move(cancel_)) {
      cancel_ = nullptr;
      cancel();
    }
  }
  bool active() const { return static_cast<bool>(cancel_); }

 private:
  std::function<void()> cancel_;
};

class QmpChannel {
 public:
  virtual ~QmpChannel() = default;

  // Runs `command` with `arguments` (an object, or null/{} for none) and returns QMP's
  // "return" value. Errors (subsystem "qmp" unless said otherwise):
  //   QEMU's "error" reply -> qmpErrorToError (class and desc in the message);
  //   no reply within `timeout` -> kTimeout (the command may still take effect in QEMU; its
  //     late reply is dropped and confuses nothing);
  //   no connection, or the connection lost before the reply -> kUnavailable;
  //   arguments that are not an object, or strings that are not UTF-8 -> kInvalidArgument.
  // Blocks the calling thread; safe from several threads at once. Must NOT be called from the
  // channel's own I/O thread - that is, from an event handler: the reply could never be read.
  // That answers kInternal at once.
  Result<nlohmann::json> execute(std::string_view command, nlohmann::json arguments = {},
                                 std::chrono::milliseconds timeout = kQmpDefaultTimeout) {
    return doExecute(command, std::move(arguments), timeout);
  }

  // Calls `handler` for each event named `event_name` ("STOP"; "" for every event), in the
  // order the monitor sent them, on the channel's I/O thread: handlers must be quick (hand the
  // event over to a queue) and must not call execute(). Events sent while the channel has no
  // connection are lost; a caller that tracks state from events re-reads it with a query after
  // a reconnection (see each implementation's reconnection policy).
  [[nodiscard]] QmpSubscription subscribe(std::string event_name, QmpEventHandler handler) {
    return doSubscribe(std::move(event_name), std::move(handler));
  }

 protected:
  virtual Result<nlohmann::json> doExecute(std::string_view command, nlohmann::json arguments,
                                           std::chrono::milliseconds timeout) = 0;
  virtual QmpSubscription doSubscribe(std::string event_name, QmpEventHandler handler) = 0;
};

// The subscribers of one channel. dispatch() runs on one thread at a time (the channel's I/O
// thread); subscribe and the handles' reset() from any thread. Outlives its channel while a
// handle holds it.
class QmpSubscribers : public std::enable_shared_from_this<QmpSubscribers> {
 public:
  QmpSubscription add(std::string event_name, QmpEventHandler handler);
  void dispatch(const QmpEvent& event);
  size_t size() const;

 private:
  struct Entry {
    std::string event_name;
    QmpEventHandler handler;
    std::mutex call_mu;  // held while the handler runs: remove() waits for it
    bool active = true;  // under call_mu
  };
  void remove(uint64_t id);

  mutable std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<Entry>> entries_;  // ordered: subscription order
  uint64_t next_id_ = 1;
  std::atomic<std::thread::id> dispatching_{};  // the thread inside dispatch(), if any
};

}  // namespace qiao
