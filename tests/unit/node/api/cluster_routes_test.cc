// The cluster module's changes on MemoryCeph, called as the Api dispatches them: join tokens
// carry the CA's pin and are bounded; a host with VMs in the cluster's VM table is not removed
// (409 naming them); a host without is removed: its certificate revoked in the published CRL,
// its Ceph user deleted, its record marked removed, its lease object gone.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "cluster/cluster_member.h"
#include "cluster/join_tokens.h"
#include "node/api/route_context.h"
#include "node/api/routes.h"
#include "node/host/baseline.h"
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

// The join (open: no caller), on a member whose baseline wants 64 huge pages and whose
// ceph.conf names its monitors.
class JoinRouteTest : public ClusterRoutesTest {
 protected:
  void SetUp() override {
    ClusterRoutesTest::SetUp();
    writeFileAtomic((dir_ / "ceph.conf").string(),
                    "[global]\nfsid = 1\nmon_host = [v2:198.18.1.1:3300,v1:198.18.1.1:6789]\n",
                    0644);
    writeFileAtomic((dir_ / "baseline.toml").string(), "[host]\nmin_hugepages = 64\n", 0644);
    ClusterRouteFacts facts{"c1", "h1", "x86_64", 4, 8192, pki()};
    facts.baseline_file = (dir_ / "baseline.toml").string();
    facts.ceph_conf = (dir_ / "ceph.conf").string();
    facts.rbd_pools = {"qiao", "qiao-b"};
    facts.cluster_pool = "qiao-cluster";
    facts.bind_node = [this](const std::string& identity, const std::string& serial) -> Status {
      bound_[identity] = serial;
      return {};
    };
    addClusterRoutes(join_routes_, member_.get(), crl_.get(), facts);
    fs::create_directories(dir_ / "joiner");
    csr_ = *makeKeyAndCsr((dir_ / "joiner" / "node.key").string(), "h3", false);
    facts_.libvirt_connected = true;
    facts_.libvirt_version = "9.0.0";
    facts_.qemu_version = "7.2.0";
    facts_.accelerator = "kvm";
    facts_.time_sync = "synchronized";
    facts_.hugepages = 128;
  }

  std::string token(const std::string& extra = "") {
    auto made = call(routes_, "POST", "/v1/cluster/tokens",
                     R"({"expires":"10m","site":"s2","labels":{"rack":"r7"})" + extra + "}");
    EXPECT_EQ(made.status, 201) << made.body;
    return json::parse(made.body)["token"].get<std::string>();
  }
  json joinBody(const std::string& token, const std::string& name = "h3") {
    return {{"token", token}, {"name", name},       {"addresses", {"198.18.3.13", "127.0.0.1"}},
            {"port", 8443},   {"csr", csr_},        {"arch", "x86_64"},
            {"vcpus", 2},     {"memory_mib", 4096}, {"facts", json::parse(factsToJson(facts_))}};
  }
  ApiResponse join(const json& body) {
    ApiRequest request;
    request.method = "POST";
    request.path = request.target = "/v1/cluster/join";
    request.body = body.dump();
    request.content_type = "application/json";
    auto match = join_routes_.match("POST", "/v1/cluster/join");
    EXPECT_TRUE(match.route && match.route->info.open);
    RequestContext ctx{request, std::nullopt, match.route, match.params, {}, {}};
    return match.route->handler(ctx);
  }
  bool used(const std::string& text) {
    JoinTokens tokens(*b_, pool_, systemClock());
    auto checked = tokens.check(*parseJoinToken(text));
    return !checked;
  }

  RouteTable join_routes_;
  std::map<std::string, std::string> bound_;  // the node bindings recorded: identity -> serial
  std::string csr_;
  BaselineFacts facts_;
};

TEST_F(JoinRouteTest, AValidTokenIssuesTheCertificateTheCephUserAndTheRecordOnce) {
  const std::string t = token();
  auto joined = join(joinBody(t));
  ASSERT_EQ(joined.status, 201) << joined.body;
  json body = json::parse(joined.body);
  EXPECT_EQ(body["cluster"], "c1");
  EXPECT_EQ(body["identity"], "qiao://c1/node/h3");
  EXPECT_EQ(*identityUriOfCertPem(body["certificate"].get<std::string>()), "qiao://c1/node/h3");
  EXPECT_EQ(body["ca"].get<std::string>(), *readFileBytes(pki() + "/ca.crt"));
  EXPECT_EQ(body["ceph"]["user"], "client.qiao-host-h3");
  EXPECT_EQ(body["ceph"]["mon_host"], "[v2:198.18.1.1:3300,v1:198.18.1.1:6789]");
  EXPECT_EQ(body["ceph"]["pools"], json::array({"qiao", "qiao-b"}));
  EXPECT_EQ(body["endpoint"], "https://198.18.3.13:8443");
  // The cephx user exists with its caps (the key returned is its key).
  auto caps = ceph_.userCaps("client.qiao-host-h3");
  ASSERT_TRUE(caps.has_value());
  EXPECT_EQ(caps->at("osd"),
            "profile rbd pool=qiao, profile rbd pool=qiao-b, allow rwx pool=qiao-cluster");
  EXPECT_EQ(*a_->authGetOrCreate("client.qiao-host-h3", *caps), body["ceph"]["key"]);
  // The record: joining, with the token's site and labels.
  auto host = member_->membership().get("h3");
  ASSERT_TRUE(host) << host.error().message;
  EXPECT_EQ(host->record.state, HostState::kJoining);
  EXPECT_EQ(host->record.site, "s2");
  EXPECT_EQ(host->record.labels.at("rack"), "r7");
  EXPECT_EQ(host->record.endpoint, "https://198.18.3.13:8443");
  // Its certificate is recorded (host remove revokes it).
  auto cert = crl_->revocations().nodeCert("h3");
  ASSERT_TRUE(cert && *cert);
  EXPECT_EQ((*cert)->serial, body["serial"]);
  // Its binding (admin, to this certificate) is the cluster's, as `qiaod pki issue` makes it.
  EXPECT_EQ(bound_, (std::map<std::string, std::string>{
                        {"qiao://c1/node/h3", body["serial"].get<std::string>()}}));
  EXPECT_TRUE(used(t));
  // Used once: the same token again is refused, for this host or another.
  EXPECT_EQ(join(joinBody(t)).status, 403);
  EXPECT_EQ(join(joinBody(t, "h4")).status, 403);
  EXPECT_FALSE(member_->membership().get("h4"));
  // A member's name is not taken again, even with a new token (which stays unused).
  const std::string t2 = token();
  EXPECT_EQ(join(joinBody(t2)).status, 409);
  EXPECT_FALSE(used(t2));
}

TEST_F(JoinRouteTest, ForgedExpiredAndMalformedTokensAreRefusedAndTellNothing) {
  const std::string t = token();
  auto parsed = *parseJoinToken(t);
  // Forged: the right id, another secret; another CA pin; an id that does not exist.
  JoinTokenText forged = parsed;
  forged.secret = std::string(32, 'a');
  JoinTokenText unknown = parsed;
  unknown.id = std::string(16, 'f');
  for (const std::string& bad :
       {forged.text(), unknown.text(), std::string("qiao-join.x.y.z"), std::string("")}) {
    auto refused = join(joinBody(bad));
    EXPECT_EQ(refused.status, bad.empty() ? 403 : 403) << bad << " " << refused.body;
    EXPECT_EQ(refused.body.find("BEGIN"), std::string::npos);
    EXPECT_EQ(refused.body.find("checks"), std::string::npos) << "no baseline without a token";
  }
  // Expired: made an hour and a half ago for an hour.
  ManualClock past(std::chrono::system_clock::now() - std::chrono::minutes(90));
  JoinTokens old(*b_, pool_, past);
  auto expired =
      old.create({std::chrono::hours(1), "", {}, "test"}, *certSha256(pki() + "/ca.crt"));
  ASSERT_TRUE(expired);
  EXPECT_EQ(join(joinBody(expired->text())).status, 403);
  EXPECT_FALSE(member_->membership().get("h3"));
  EXPECT_FALSE(ceph_.userCaps("client.qiao-host-h3").has_value());
  EXPECT_FALSE(used(t)) << "the forgeries did not use the real token";
  EXPECT_TRUE(bound_.empty());
  // Input that is not what it must be: 400 before the token is looked at.
  for (auto edit : std::vector<std::pair<std::string, json>>{
           {"name", "H3 x"},
           {"addresses", json::array({"198.18.3.13; DNS:evil"})},
           {"addresses", json::array()},
           {"dns_names", json::array({"a b"})},
           {"csr", "not a csr"},
           {"port", 70000},
           {"arch", "sparc"}}) {
    json body = joinBody(t);
    body[edit.first] = edit.second;
    EXPECT_EQ(join(body).status, 400) << edit.first << " " << edit.second;
  }
  json extra = joinBody(t);
  extra["role"] = "admin";
  EXPECT_EQ(join(extra).status, 400);
  EXPECT_FALSE(used(t));
  ApiRequest none;
  RequestContext ctx{none, std::nullopt, nullptr, {}, {}, {}};
  auto match = standalone_.match("POST", "/v1/cluster/join");
  ASSERT_TRUE(match.route);
  ctx.route = match.route;
  none.body = joinBody(t).dump();
  none.content_type = "application/json";
  EXPECT_EQ(match.route->handler(ctx).status, 409) << "a standalone host enrolls nobody";
}

TEST_F(JoinRouteTest, AHostBelowTheBaselineDoesNotJoinAndKeepsTheToken) {
  const std::string t = token();
  facts_.hugepages = 0;
  auto refused = join(joinBody(t));
  ASSERT_EQ(refused.status, 409) << refused.body;
  json error = json::parse(refused.body)["error"];
  EXPECT_NE(error["message"].get<std::string>().find("hugepages"), std::string::npos);
  bool listed = false;
  for (const auto& c : error["details"]["checks"]) {
    listed = listed || (c["name"] == "hugepages" && c["verdict"] == "fail");
  }
  EXPECT_TRUE(listed) << error.dump();
  EXPECT_FALSE(used(t));
  EXPECT_FALSE(member_->membership().get("h3"));
  EXPECT_FALSE(ceph_.userCaps("client.qiao-host-h3").has_value());
  facts_.hugepages = 64;
  EXPECT_EQ(join(joinBody(t)).status, 201);
}

}  // namespace
}  // namespace qiao
