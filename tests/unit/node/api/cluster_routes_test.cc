// The cluster module's changes on MemoryCeph, called as the Api dispatches them: join tokens
// carry the CA's pin and are bounded; a host with VMs in the cluster's VM table is not removed
// (409 naming them); a host without is removed: its certificate revoked in the published CRL,
// its Ceph user deleted, its record marked removed, its lease object gone.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "cluster/cluster_member.h"
#include "cluster/join_tokens.h"
#include "node/api/route_context.h"
#include "node/api/routes.h"
#include "node/pki/cluster_crl.h"
#include "node/pki/pki.h"
#include "tests/doubles/memory_ceph.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ClusterRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qiao-cluster-routes-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    ASSERT_TRUE(initPki({.cluster = "c1", .dir = pki(), .hostname = "h1"}));
    ClusterMemberOptions options;
    options.pool = pool_;
    options.self.name = "h1";
    options.self.arch = "x86_64";
    options.cookie = "test";
    member_ = std::make_unique<ClusterMember>(*a_, options, clock_);
    crl_ = std::make_unique<ClusterCrl>(
        *a_, ClusterCrlOptions{pool_, pki(), "h1", "qiao://c1/node/h1"}, clock_);
    addClusterRoutes(routes_, member_.get(), crl_.get(), {"c1", "h1", "x86_64", 4, 8192, pki()});
    addClusterRoutes(standalone_, nullptr, nullptr, {"c1", "h1", "x86_64", 4, 8192, pki()});
    // h2 is a member with a recorded node certificate and its own Ceph user.
    Membership other(*b_, pool_, clock_);
    HostRecord h2;
    h2.name = "h2";
    h2.arch = "x86_64";
    ASSERT_TRUE(other.registerSelf(h2));
    ASSERT_TRUE(other.setState("h2", HostState::kReady, std::nullopt));
    ASSERT_TRUE(b_->lock(pool_.hostLease("h2"), Membership::kLeaseName, "c", "lease",
                         std::chrono::seconds(10)));
    ASSERT_TRUE(Revocations(*b_, pool_).setNodeCert({"h2", "qiao://c1/node/h2", "0A1B"}));
    ASSERT_TRUE(a_->authGetOrCreate("client.qiao-host-h2", {{"mon", "profile rbd"}}));
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string pki() const { return (dir_ / "pki").string(); }

  ApiResponse call(RouteTable& routes, const std::string& method, const std::string& path,
                   const std::string& body = "") {
    ApiRequest request;
    request.method = method;
    request.path = request.target = path;
    request.body = body;
    if (!body.empty()) request.content_type = "application/json";
    auto match = routes.match(method, path);
    EXPECT_NE(match.route, nullptr) << method << " " << path;
    if (!match.route) return {};
    RequestContext ctx{
        request, Caller{"qiao://c1/user/admin", "admin", {}}, match.route, match.params, {}, {}};
    return match.route->handler(ctx);
  }

  fs::path dir_;
  ManualClock clock_;
  MemoryCeph ceph_{clock_};
  std::unique_ptr<RadosCluster> a_ = ceph_.client("10.0.0.1");
  std::unique_ptr<RadosCluster> b_ = ceph_.client("10.0.0.2");
  ClusterPool pool_;
  std::unique_ptr<ClusterMember> member_;
  std::unique_ptr<ClusterCrl> crl_;
  RouteTable routes_, standalone_;
};

TEST_F(ClusterRoutesTest, ATokenPinsTheCaAndIsBounded) {
  auto made = call(routes_, "POST", "/v1/cluster/tokens",
                   R"({"expires":"10m","site":"s2","labels":{"rack":"r7"}})");
  ASSERT_EQ(made.status, 201) << made.body;
  json body = json::parse(made.body);
  auto token = parseJoinToken(body["token"].get<std::string>());
  ASSERT_TRUE(token);
  EXPECT_EQ(token->ca_sha256, *certSha256(pki() + "/ca.crt"));
  JoinTokens tokens(*b_, pool_, systemClock());
  auto record = tokens.check(*token);
  ASSERT_TRUE(record) << record.error().message;
  EXPECT_EQ(record->site, "s2");
  EXPECT_EQ(record->labels.at("rack"), "r7");
  EXPECT_EQ(record->creator, "qiao://c1/user/admin");
  for (const char* bad :
       {R"({"expires":"8d"})", R"({"expires":"10"})", R"({})",
        R"({"expires":"1h","site":"Not A Label"})", R"({"expires":"1h","labels":{"k":"a b"}})",
        R"({"expires":"1h","extra":1})"}) {
    EXPECT_EQ(call(routes_, "POST", "/v1/cluster/tokens", bad).status, 400) << bad;
  }
  EXPECT_EQ(call(standalone_, "POST", "/v1/cluster/tokens", R"({"expires":"1h"})").status, 409);
}

TEST_F(ClusterRoutesTest, AHostWithVmsIsNotRemoved) {
  RecordTable vms(*b_, pool_.table("vms"));
  ASSERT_TRUE(vms.insert("t1/web", R"({"name":"web","tenant":"t1","host":"h2"})"));
  ASSERT_TRUE(vms.insert("t2/db", R"({"name":"db","tenant":"t2","host":"h2"})"));
  ASSERT_TRUE(vms.insert("t1/api", R"({"name":"api","tenant":"t1","host":"h1"})"));
  auto refused = call(routes_, "DELETE", "/v1/hosts/h2");
  ASSERT_EQ(refused.status, 409) << refused.body;
  json error = json::parse(refused.body)["error"];
  const std::string message = error["message"];
  EXPECT_NE(message.find("t1/web"), std::string::npos) << message;
  EXPECT_NE(message.find("t2/db"), std::string::npos) << message;
  EXPECT_EQ(message.find("t1/api"), std::string::npos) << message;
  EXPECT_EQ(error["details"]["vms"], json::array({"t1/web", "t2/db"}));
  // Nothing was changed.
  EXPECT_EQ(member_->membership().get("h2")->record.state, HostState::kReady);
  EXPECT_TRUE(ceph_.userCaps("client.qiao-host-h2"));
  EXPECT_FALSE(crl_->revocations().crl()->pem);

  ASSERT_TRUE(vms.remove("t1/web"));
  ASSERT_TRUE(vms.remove("t2/db"));
  auto removed = call(routes_, "DELETE", "/v1/hosts/h2");
  ASSERT_EQ(removed.status, 200) << removed.body;
  EXPECT_EQ(json::parse(removed.body)["revoked_serial"], "0A1B");
  auto h2 = member_->membership().get("h2");
  ASSERT_TRUE(h2);
  EXPECT_EQ(h2->state, HostState::kRemoved);
  EXPECT_FALSE(h2->lease_held);
  EXPECT_FALSE(ceph_.userCaps("client.qiao-host-h2"));
  auto published = crl_->revocations().crl();
  ASSERT_TRUE(published && published->pem);
  EXPECT_EQ(*published->pem, *readFileBytes(pki() + "/crl.pem"));
  auto revoked = crl_->revocations().list();
  ASSERT_TRUE(revoked);
  ASSERT_EQ(revoked->size(), 1u);
  EXPECT_EQ((*revoked)[0].serial, "0A1B");
  EXPECT_EQ((*revoked)[0].identity, "qiao://c1/node/h2");
  // A removed host cannot register again, and removing it again is no error.
  Membership other(*b_, pool_, clock_);
  HostRecord again;
  again.name = "h2";
  again.arch = "x86_64";
  EXPECT_FALSE(other.registerSelf(again));
  EXPECT_EQ(call(routes_, "DELETE", "/v1/hosts/h2").status, 200);
}

TEST_F(ClusterRoutesTest, RemovalsThatAreRefused) {
  EXPECT_EQ(call(routes_, "DELETE", "/v1/hosts/h1").status, 409);  // the answering member
  EXPECT_EQ(call(routes_, "DELETE", "/v1/hosts/h9").status, 404);
  // A standalone host knows no other host, and does not remove itself.
  EXPECT_EQ(call(standalone_, "DELETE", "/v1/hosts/h2").status, 404);
  EXPECT_EQ(call(standalone_, "DELETE", "/v1/hosts/h1").status, 409);
  // Without the CA key this member cannot revoke: nothing is changed.
  fs::remove(pki() + "/ca.key");
  auto refused = call(routes_, "DELETE", "/v1/hosts/h2");
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_NE(refused.body.find("CA key"), std::string::npos) << refused.body;
  EXPECT_EQ(member_->membership().get("h2")->record.state, HostState::kReady);
  EXPECT_TRUE(ceph_.userCaps("client.qiao-host-h2"));
}

}  // namespace
}  // namespace qiao
