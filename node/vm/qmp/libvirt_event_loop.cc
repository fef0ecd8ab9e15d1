#include "node/vm/qmp/libvirt_event_loop.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "base/log.h"

namespace qiao {
namespace {

const Logger kLog("libvirt");

// libvirt prints every error to stderr unless told otherwise; Qiao reads them with
// virGetLastError where they happen.
void ignoreLibvirtError(void*, virErrorPtr) {}

std::atomic<bool> stopping{false};
std::mutex thread_mutex;
// Never destroyed: a process that exits without stopping the loop (a failed start) must not
// meet a joinable std::thread's destructor.
std::thread* loop_thread = nullptr;

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
    std::lock_guard lock(thread_mutex);
    loop_thread = new std::thread([] {
      while (!stopping) virEventRunDefaultImpl();
    });
    running = true;
  });
  return running && !stopping;
}

void stopLibvirtEventLoop() {
  std::lock_guard lock(thread_mutex);
  if (loop_thread == nullptr || !loop_thread->joinable()) return;
  stopping = true;
  // Wake the loop now rather than at its next periodic turn.
  virEventAddTimeout(
      0, [](int timer, void*) { virEventRemoveTimeout(timer); }, nullptr, nullptr);
  loop_thread->join();
}

}  // namespace qiao
