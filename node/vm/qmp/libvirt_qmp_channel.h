// LibvirtQmpChannel: the QmpChannel of a libvirt-run guest, through libvirt's QEMU passthrough
// (virDomainQemuMonitorCommand, and virConnectDomainQemuMonitorEventRegister for events).
//
// Used ONLY for what libvirt has no API for. libvirt owns the guest's monitor and keeps its
// own view of the guest: a command sent behind its back that changes what libvirt tracks
// (device_add/del, stop/cont, blockdev-*, migrate, ...) leaves that view wrong, and libvirt
// marks the domain "tainted: custom-monitor" on the first passthrough command. Anything the
// Hypervisor interface (node/vm/hypervisor.h) can do goes through it instead.
//
// libvirt's headers are included only in libvirt_qmp_channel.cc.
//
// Connection policy (as QmpSocketChannel's, on demand): the channel opens its own libvirt
// connection, looks the domain up and registers for its events when execute() or connect()
// finds none, within that caller's timeout. A call that fails because libvirtd went
// away (or libvirt's close callback reporting it) drops the connection; the next call opens a
// new one, with no retry loop. Events arrive only while a connection is open.
//
// Timeouts: libvirt's calls block, so each runs on one of the channel's own worker threads
// (options.call_threads) while the caller waits for at most its timeout. A call that misses
// the caller's deadline goes on in libvirt: its answer is dropped when it comes (logged at
// debug), and the command may still have taken effect in QEMU - exactly as with a late QMP
// reply on a socket. A worker stuck in libvirt delays the calls queued behind it; beyond
// options.max_queued_calls a call answers kUnavailable at once.
//
// Events: this channel calls ensureLibvirtEventLoop() (libvirt_event_loop.h) and registers no
// loop of its own; handlers run on libvirt's event-loop thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/error.h"
#include "node/vm/qmp/qmp_channel.h"
#include "node/vm/qmp/qmp_message.h"

namespace qiao {

struct LibvirtQmpOptions {
  std::string uri = "qemu:///system";
  std::string domain;  // the domain's UUID ("8-4-4-4-12" hex) or its name
  size_t call_threads = 2;
  size_t max_queued_calls = 64;  // calls waiting for or inside a worker
  QmpLimits limits;              // applied to libvirt's answer text
};

class LibvirtQmpChannel final : public QmpChannel {
 public:
  // Does not connect (see the policy above).
  explicit LibvirtQmpChannel(LibvirtQmpOptions options);
  // Waits for the libvirt calls in flight (libvirt bounds them when libvirtd is unreachable:
  // its keepalive), then deregisters the events and closes the connection.
  ~LibvirtQmpChannel() override;
  LibvirtQmpChannel(const LibvirtQmpChannel&) = delete;
  LibvirtQmpChannel& operator=(const LibvirtQmpChannel&) = delete;

  // Opens the connection, finds the domain and registers for its events, unless done already.
  // kNotFound when there is no such domain; kUnavailable when libvirtd cannot be reached.
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
  std::unique_ptr<Impl> impl_;
};

}  // namespace qiao
