#include "node/qmp/libvirt_event_loop.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <mutex>
#include <thread>

#include "base/log.h"

namespace qiao {
namespace {

const Logger kLog("libvirt");

// libvirt prints every error to stderr unless told otherwise; Qiao reads them with
// virGetLastError where they happen.
void ignoreLibvirtError(void*, virErrorPtr) {}

}  // namespace

bool ensureLibvirtEventLoop() {
  static std::once_flag once;
  static bool running = false;
  std::call_once(once, [] {
    virSetErrorFunc(nullptr, ignoreLibvirtError);
    virInitialize();
    if (virEventRegisterDefaultImpl() < 0) {
      kLog.error("cannot register libvirt's event loop");
      return;
    }
    // A periodic no-op timer keeps the loop turning, so that it never sleeps forever on an
    // empty set of handles.
    virEventAddTimeout(
        1000, [](int, void*) {}, nullptr, nullptr);
    std::thread([] {
      for (;;) virEventRunDefaultImpl();
    }).detach();
    running = true;
  });
  return running;
}

}  // namespace qiao
