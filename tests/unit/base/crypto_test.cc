#include "base/crypto.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>

namespace qiao {
namespace {

TEST(Crypto, Sha256KnownVectors) {
  EXPECT_EQ(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 inc;
  inc.update("a");
  inc.update("bc");
  EXPECT_EQ(inc.finishHex(), sha256Hex("abc"));
}

TEST(Crypto, UuidsAreVersion4AndDistinct) {
  std::regex re("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto u = newUuid();
    EXPECT_TRUE(std::regex_match(u, re)) << u;
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_EQ(randomHex(16).size(), 32u);
}

}  // namespace
}  // namespace qiao
