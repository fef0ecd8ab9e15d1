// libvirt's event loop for the whole process: registered once (virEventRegisterDefaultImpl)
// and run by one thread (virEventRunDefaultImpl) until stopLibvirtEventLoop(). libvirt delivers
// every callback (domain events, QEMU monitor events, connection close) on that thread, and a
// connection opened before the loop was registered never gets any, so every component that
// wants libvirt callbacks calls ensureLibvirtEventLoop() before its first virConnectOpen.
//
// Two components must not each register and run their own loop: a second thread running
// virEventRunDefaultImpl would compete for the same GLib main context: this is the one place
// (the hypervisor's connection and the QMP passthrough channels both call it).
#pragma once

namespace qiao {

// Idempotent and thread-safe. False when libvirt refused to register its loop (logged): no
// callbacks will arrive, calls still work.
bool ensureLibvirtEventLoop();

// Stops the loop's thread and joins it, at the end of the process: every connection that
// wanted callbacks is closed by then. The loop does not start again.
void stopLibvirtEventLoop();

}  // namespace qiao
