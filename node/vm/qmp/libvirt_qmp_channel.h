// LibvirtQmpChannel: the QmpChannel of a libvirt-run guest, through libvirt's QEMU passthrough
// (virDomainQemuMonitorCommand, and virConnectDomainQemuMonitorEventRegister for events);
// LibvirtQmpConnection: the one libvirt connection and the bounded set of workers that the
// channels of every guest share.
//
// Used ONLY for what libvirt has no API for. libvirt owns the guest's monitor and keeps its
// own view of the guest: a command sent behind its back that changes what libvirt tracks
// (device_add/del, stop/cont, blockdev-*, migrate, ...) leaves that view wrong, and libvirt
// marks the domain "tainted: custom-monitor" on the first passthrough command. Anything the
// Hypervisor interface (node/vm/hypervisor.h) can do goes through it instead.
//
// libvirt's headers are included only in libvirt_qmp_channel.cc.
//
// Sharing: a node keeps one channel per running guest, so the channels do not own threads or
// connections: a LibvirtQmpConnection holds one libvirt connection, one registration for the
// QMP events of all domains (dispatched to the channels by domain UUID on libvirt's event-loop
// thread) and `call_threads` workers. A channel built on its own (LibvirtQmpChannel(options),
// for tools and tests) makes a private LibvirtQmpConnection.
//
// Connection policy (as QmpSocketChannel's, on demand): the connection is opened, and a
// channel's domain looked up, when a call finds none, within that caller's timeout. A call
// that fails because libvirtd went away (or libvirt's close callback reporting it) drops the
// connection and every channel's domain; the next call opens a new one, with no retry loop.
// Events arrive only while a connection is open and for a domain its channel has looked up.
//
// Timeouts: libvirt's calls block, so each runs on a worker while the caller waits for at
// most its timeout. A call that misses the caller's deadline goes on in libvirt: its answer is
// dropped when it comes (logged at debug), and the command may still have taken effect in
// QEMU - exactly as with a late QMP reply on a socket. One channel's calls run one at a time
// (libvirtd runs a domain's monitor commands one at a time anyway, under the domain's job), so
// a hung guest holds at most one worker and the others keep serving the other guests; beyond
// max_queued_calls waiting for one channel, its calls answer kUnavailable at once.
//
// Events: ensureLibvirtEventLoop() (libvirt_event_loop.h) runs them; no loop of its own.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/error.h"
#include "node/vm/qmp/qmp_channel.h"
#include "node/vm/qmp/qmp_message.h"

namespace qiao {

struct LibvirtQmpConnectionOptions {
  std::string uri = "qemu:///system";
  size_t call_threads = 4;       // shared by every channel
  size_t max_queued_calls = 64;  // per channel: calls waiting for or inside a worker
  QmpLimits limits;              // applied to libvirt's answer text and events
};

class LibvirtQmpChannel;

class LibvirtQmpConnection {
 public:
  // Starts the workers; does not connect (see the policy above).
  explicit LibvirtQmpConnection(LibvirtQmpConnectionOptions options);
  ~LibvirtQmpConnection();  // stop()
  LibvirtQmpConnection(const LibvirtQmpConnection&) = delete;
  LibvirtQmpConnection& operator=(const LibvirtQmpConnection&) = delete;

  // A channel to `domain` (its UUID, "8-4-4-4-12" hex, or its name). It may outlive this
  // object: after stop() its calls answer kUnavailable.
  std::shared_ptr<LibvirtQmpChannel> channel(std::string domain);

  // Answers the calls still queued kUnavailable, waits for the ones inside libvirt (libvirt
  // bounds them when libvirtd is unreachable: its keepalive), joins the workers, then
  // deregisters the events and closes the connection. Idempotent.
  void stop();

  bool connected() const;
  // How many libvirt connections this object has opened so far (tests, benchmarks).
  uint64_t connectionsOpened() const;

  struct Hub;

 private:
  friend class LibvirtQmpChannel;
  std::shared_ptr<Hub> hub_;
};

struct LibvirtQmpOptions {
  std::string uri = "qemu:///system";
  std::string domain;  // the domain's UUID ("8-4-4-4-12" hex) or its name
  size_t call_threads = 2;
  size_t max_queued_calls = 64;  // calls waiting for or inside a worker
  QmpLimits limits;              // applied to libvirt's answer text
};

class LibvirtQmpChannel final : public QmpChannel {
 public:
  // A channel with a connection and workers of its own. Does not connect.
  explicit LibvirtQmpChannel(LibvirtQmpOptions options);
  // Forgets the domain; a private connection is stopped (LibvirtQmpConnection::stop).
  ~LibvirtQmpChannel() override;
  LibvirtQmpChannel(const LibvirtQmpChannel&) = delete;
  LibvirtQmpChannel& operator=(const LibvirtQmpChannel&) = delete;

  // Opens the connection and finds the domain, unless done already. kNotFound when there is
  // no such domain; kUnavailable when libvirtd cannot be reached.
  Status connect(std::chrono::milliseconds timeout = kQmpDefaultTimeout);
  bool connected() const;

  struct Impl;

 protected:
  // Errors beyond QmpChannel's: libvirt's own failures have subsystem "libvirt" (kNotFound:
  // no such domain; kConflict: the domain is not running; kUnavailable: libvirtd is gone).
  Result<nlohmann::json> doExecute(std::string_view command, nlohmann::json arguments,
                                   std::chrono::milliseconds timeout) override;
  QmpSubscription doSubscribe(std::string event_name, QmpEventHandler handler) override;

 private:
  friend class LibvirtQmpConnection;
  explicit LibvirtQmpChannel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qiao
