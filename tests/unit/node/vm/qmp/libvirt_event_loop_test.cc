// libvirt's event loop ends when asked, at once (not at its next periodic turn), and does not
// start again. A binary of its own: the loop is the process's.
#include "node/vm/qmp/libvirt_event_loop.h"

#include <gtest/gtest.h>

#include <chrono>

namespace qiao {
namespace {

TEST(LibvirtEventLoop, StopsAtOnceAndStaysStopped) {
  ASSERT_TRUE(ensureLibvirtEventLoop());
  EXPECT_TRUE(ensureLibvirtEventLoop());  // idempotent
  const auto start = std::chrono::steady_clock::now();
  stopLibvirtEventLoop();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, std::chrono::milliseconds(500)) << "woken, not waiting for its 1 s timer";
  EXPECT_FALSE(ensureLibvirtEventLoop());
  stopLibvirtEventLoop();  // again: nothing to do
}

}  // namespace
}  // namespace qiao
