// Join tokens on MemoryCeph with a ManualClock: a token is accepted once, before its expiry,
// with its own secret; the store never holds the secret; of concurrent joins with one token
// exactly one wins.
#include "cluster/join_tokens.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "base/crypto.h"
#include "tests/doubles/memory_ceph.h"

namespace qiao {
namespace {

const std::string kPin(64, 'a');

class JoinTokensTest : public ::testing::Test {
 protected:
  ManualClock clock_;
  MemoryCeph ceph_{clock_};
  std::unique_ptr<RadosCluster> a_ = ceph_.client("10.0.0.1");
  std::unique_ptr<RadosCluster> b_ = ceph_.client("10.0.0.2");
  ClusterPool pool_;
  JoinTokens tokens_a_{*a_, pool_, clock_};
  JoinTokens tokens_b_{*b_, pool_, clock_};

  JoinTokenText create(std::chrono::seconds ttl = std::chrono::hours(1)) {
    JoinTokenRequest request;
    request.ttl = ttl;
    request.site = "sh-a";
    request.labels = {{"rack", "r12"}};
    request.creator = "qiao://c1/user/admin";
    auto token = tokens_a_.create(request, kPin);
    EXPECT_TRUE(token) << token.error().message;
    return *token;
  }
};

TEST_F(JoinTokensTest, TextRoundTripsAndPinsTheCa) {
  JoinTokenText token = create();
  auto parsed = parseJoinToken(token.text());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->id, token.id);
  EXPECT_EQ(parsed->secret, token.secret);
  EXPECT_EQ(parsed->ca_sha256, kPin);
  for (std::string bad : {std::string(""), std::string("qiao-join.abc"), token.text() + "0",
                          "x" + token.text(), "qiao-join." + token.id + "." + token.secret,
                          "qiao-join." + token.id + ".ZZ" + token.secret.substr(2) + "." + kPin}) {
    auto refused = parseJoinToken(bad);
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(refused.error().message.find(token.secret), std::string::npos);
  }
}

TEST_F(JoinTokensTest, TheStoreHoldsOnlyTheSecretsHash) {
  JoinTokenText token = create();
  auto stored = tokens_b_.table().get(token.id);
  ASSERT_TRUE(stored && *stored);
  EXPECT_EQ((*stored)->find(token.secret), std::string::npos);
  auto record = tokenFromJson(**stored);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->secret_sha256, sha256Hex(token.secret));
  EXPECT_EQ(record->site, "sh-a");
  EXPECT_EQ(record->labels.at("rack"), "r12");
  EXPECT_EQ(record->creator, "qiao://c1/user/admin");
  EXPECT_TRUE(record->used_by.empty());
}

TEST_F(JoinTokensTest, ATokenIsConsumedOnce) {
  JoinTokenText token = create();
  ASSERT_TRUE(tokens_b_.check(token));
  auto first = tokens_b_.consume(token, "h2");
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->site, "sh-a");
  auto again = tokens_a_.consume(token, "h3");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kPermissionDenied);
  EXPECT_NE(again.error().message.find("used already, by host h2"), std::string::npos)
      << again.error().message;
  EXPECT_FALSE(tokens_a_.check(token));
}

TEST_F(JoinTokensTest, AnExpiredTokenIsRefused) {
  JoinTokenText token = create(std::chrono::seconds(600));
  clock_.advance(std::chrono::seconds(599));
  ASSERT_TRUE(tokens_b_.check(token));
  clock_.advance(std::chrono::seconds(1));
  auto refused = tokens_b_.consume(token, "h2");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kPermissionDenied);
  EXPECT_NE(refused.error().message.find("expired"), std::string::npos);
  // Nothing was written: the record still says unused.
  auto record = tokenFromJson(**tokens_a_.table().get(token.id));
  ASSERT_TRUE(record);
  EXPECT_TRUE(record->used_by.empty());
}

TEST_F(JoinTokensTest, AForgedTokenIsRefused) {
  JoinTokenText token = create();
  JoinTokenText wrong_secret = token;
  wrong_secret.secret = std::string(32, '0');
  JoinTokenText unknown_id = token;
  unknown_id.id = std::string(16, '0');
  for (const auto& forged : {wrong_secret, unknown_id}) {
    auto refused = tokens_b_.consume(forged, "h9");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, ErrorCode::kPermissionDenied);
    // The same words for both: a guesser does not learn which ids exist.
    EXPECT_NE(refused.error().message.find("not a token of this cluster"), std::string::npos);
  }
  EXPECT_FALSE(tokens_a_.table().get(unknown_id.id)->has_value());
  // The real one still works.
  EXPECT_TRUE(tokens_b_.consume(token, "h2"));
}

TEST_F(JoinTokensTest, TtlIsBounded) {
  JoinTokenRequest request;
  request.ttl = std::chrono::seconds(0);
  EXPECT_FALSE(tokens_a_.create(request, kPin));
  request.ttl = std::chrono::hours(24 * 8);
  EXPECT_FALSE(tokens_a_.create(request, kPin));
  request.ttl = std::chrono::hours(1);
  EXPECT_FALSE(tokens_a_.create(request, "not-a-pin"));
}

TEST_F(JoinTokensTest, OfConcurrentJoinsWithOneTokenExactlyOneWins) {
  for (int round = 0; round < 20; ++round) {
    JoinTokenText token = create();
    std::vector<std::unique_ptr<RadosCluster>> clients;
    std::vector<std::unique_ptr<JoinTokens>> joiners;
    for (int i = 0; i < 6; ++i) {
      clients.push_back(ceph_.client("10.0.1." + std::to_string(i + 1)));
      joiners.push_back(std::make_unique<JoinTokens>(*clients.back(), pool_, clock_));
    }
    std::atomic<int> won{0}, refused{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 6; ++i) {
      threads.emplace_back([&, i] {
        auto done = joiners[i]->consume(token, "h" + std::to_string(i));
        if (done) {
          ++won;
        } else if (done.error().code == ErrorCode::kPermissionDenied) {
          ++refused;
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(won.load(), 1);
    EXPECT_EQ(refused.load(), 5);
  }
}

}  // namespace
}  // namespace qiao
