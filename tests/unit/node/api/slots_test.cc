// Slots: taken under the caller's check of the counts, given back when the handle goes.
#include "node/api/slots.h"

#include <gtest/gtest.h>

#include <vector>

namespace qiao {
namespace {

TEST(Slots, ASlotIsTakenOnlyWhenTheCheckAllowsAndComesBackWithItsHandle) {
  Slots slots;
  Slots::Counts seen;
  auto twoEach = [](Slots::Counts c) { return c.mine < 2 && c.total < 3; };
  auto a1 = slots.take("a", twoEach, &seen);
  auto a2 = slots.take("a", twoEach, &seen);
  ASSERT_TRUE(a1 && a2);
  EXPECT_EQ(slots.take("a", twoEach, &seen), nullptr);
  EXPECT_EQ(seen.mine, 2);
  EXPECT_EQ(seen.total, 2);
  auto b1 = slots.take("b", twoEach, &seen);
  ASSERT_TRUE(b1);
  EXPECT_EQ(slots.take("b", twoEach, &seen), nullptr) << "three in all";
  EXPECT_EQ(seen.total, 3);
  auto copy = a1;
  a1.reset();
  EXPECT_EQ(slots.take("b", twoEach, &seen), nullptr) << "a copy still holds it";
  copy.reset();
  auto b2 = slots.take("b", twoEach, &seen);
  EXPECT_TRUE(b2);
  EXPECT_EQ(seen.mine, 1);
  EXPECT_EQ(seen.total, 2);
}

}  // namespace
}  // namespace qiao
