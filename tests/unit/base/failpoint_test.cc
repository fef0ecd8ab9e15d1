// Failpoints are a node's, not the process's: two sets armed apart, hit apart; the daemon's
// set comes from QIAO_FAILPOINT as before.
#include "base/failpoint.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <csignal>
#include <string>
#include <vector>

namespace qiao {
namespace {

TEST(Failpoints, TwoNodesAreArmedAndHitApart) {
  std::vector<std::string> hits_a, hits_b;
  Failpoints a({"vm.create/define:after"},
               [&](std::string_view name) { hits_a.emplace_back(name); });
  Failpoints b({}, [&](std::string_view name) { hits_b.emplace_back(name); });
  a.hit("vm.create/define:after");
  b.hit("vm.create/define:after");  // armed in a only
  a.hit("vm.create/start:after");   // armed nowhere
  b.arm("volume.create/create:before");
  b.hit("volume.create/create:before");
  a.hit("volume.create/create:before");
  EXPECT_EQ(hits_a, std::vector<std::string>{"vm.create/define:after"});
  EXPECT_EQ(hits_b, std::vector<std::string>{"volume.create/create:before"});
  a.disarm("vm.create/define:after");
  a.hit("vm.create/define:after");
  EXPECT_EQ(hits_a.size(), 1u);
  Failpoints::none().hit("vm.create/define:after");  // nothing armed: nothing happens
}

TEST(Failpoints, TheDaemonsComeFromTheEnvironment) {
  ::setenv("QIAO_FAILPOINT", "vm.create/define:after,,vm.delete/undefine:before", 1);
  EXPECT_EQ(Failpoints::fromEnvironment(),
            (std::vector<std::string>{"vm.create/define:after", "vm.delete/undefine:before"}));
  ::unsetenv("QIAO_FAILPOINT");
  EXPECT_TRUE(Failpoints::fromEnvironment().empty());
}

TEST(FailpointsDeathTest, AnArmedFailpointKillsTheProcessByDefault) {
  Failpoints armed({"vm.create/define:after"});
  EXPECT_EXIT(armed.hit("vm.create/define:after"), ::testing::KilledBySignal(SIGKILL), "");
}

}  // namespace
}  // namespace qiao
