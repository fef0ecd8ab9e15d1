// First fit (cluster/placement.h): the first ready host of the VM's arch with room, in name
// order, overcommit applied; no room anywhere is an error saying why for each host.
#include "cluster/placement.h"

#include <gtest/gtest.h>

namespace qiao {
namespace {

HostLoad host(const std::string& name, int vcpus, int64_t memory_mib, int used_vcpus = 0,
              int64_t used_memory_mib = 0, const std::string& arch = "x86_64") {
  HostLoad h;
  h.name = name;
  h.arch = arch;
  h.ready = true;
  h.vcpus = vcpus;
  h.memory_mib = memory_mib;
  h.used_vcpus = used_vcpus;
  h.used_memory_mib = used_memory_mib;
  return h;
}

TEST(PlacementTest, TheFirstHostInNameOrderWithRoom) {
  PlacementPolicy policy{100, 100};
  auto placed = firstFit({host("c", 8, 8192), host("a", 2, 1024, 2), host("b", 4, 4096)},
                         {"x86_64", 2, 2048}, policy);
  ASSERT_TRUE(placed) << placed.error().message;
  EXPECT_EQ(*placed, "b");  // a is full, b comes before c
}

TEST(PlacementTest, OvercommitMultipliesTheCoresNotTheMemory) {
  auto placed = firstFit({host("a", 2, 4096, 7, 0)}, {"", 1, 512}, {400, 100});
  ASSERT_TRUE(placed);
  EXPECT_EQ(*placed, "a");  // 2 cores x 400% = 8 vCPUs, 7 used
  auto full = firstFit({host("a", 2, 4096, 8, 0)}, {"", 1, 512}, {400, 100});
  ASSERT_FALSE(full);
  auto memory = firstFit({host("a", 2, 4096, 0, 3800)}, {"", 1, 512}, {400, 100});
  ASSERT_FALSE(memory);
  EXPECT_NE(memory.error().message.find("296 MiB free"), std::string::npos)
      << memory.error().message;
}

TEST(PlacementTest, OnlyReadyHostsOfTheArch) {
  HostLoad down = host("a", 64, 65536);
  down.ready = false;
  auto placed = firstFit({down, host("b", 64, 65536, 0, 0, "aarch64"), host("c", 64, 65536)},
                         {"x86_64", 1, 512}, {});
  ASSERT_TRUE(placed);
  EXPECT_EQ(*placed, "c");
  auto none = firstFit({down, host("b", 64, 65536, 0, 0, "aarch64")}, {"x86_64", 1, 512}, {});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kResourceExhausted);
  EXPECT_NE(none.error().message.find("a: not ready; b: arch aarch64"), std::string::npos)
      << none.error().message;
  auto empty = firstFit({}, {"", 1, 512}, {});
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message.find("no hosts"), std::string::npos);
}

}  // namespace
}  // namespace qiao
