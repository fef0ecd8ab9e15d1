// The API's routing, identity and authorization, called directly (no TLS) over the node as
// qiaod builds it (NodeServices) on libvirt's test driver: who may do what, 404 for other tenants'
// objects, 401/403/404/405, strict query parameters, and an audit entry for every mutating call.
#include "node/api/api.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "node/api/metrics.h"
#include "node/api/route_context.h"
#include "node/node_services.h"
#include "node/pki/pki.h"
#include "node/state/store.h"
#include "node/vm/hypervisor.h"
#include "tests/doubles/test_node.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qiao-api-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto node = buildTestNode(dir_);
    ASSERT_TRUE(node) << node.error().describe();
    node_ = std::move(*node);
    node_->start();
    store_ = &node_->store();
    api_ = &node_->api();
    fs::create_directories(node_->uploadDir());

    bind("qiao://c1/user/admin", "admin", {});
    bind("qiao://c1/user/op-a", "operator", {"ta"});
    bind("qiao://c1/user/op-b", "operator", {"tb"});
    bind("qiao://c1/user/view-a", "viewer", {"ta"});
  }
  void TearDown() override {
    node_.reset();
    fs::remove_all(dir_);
  }
  void bind(const std::string& uri, const std::string& role, std::vector<std::string> tenants) {
    Binding b;
    b.identity = uri;
    b.role = role;
    b.tenants = std::move(tenants);
    ASSERT_TRUE(store_->bindings().put(b).has_value());
  }
  ApiResponse call(const std::string& who, const std::string& method, const std::string& path,
                   std::multimap<std::string, std::string> query = {}, std::string body = {}) {
    ApiRequest r;
    r.method = method;
    r.path = path;
    r.target = path;
    r.query = std::move(query);
    r.body = std::move(body);
    r.peer_identity_uri = who.empty() ? "" : "qiao://c1/user/" + who;
    auto response = api_->handle(r);
    node_->waitIdle();
    return response;
  }
  void createVm(const std::string& tenant, const std::string& name) {
    auto r = call("admin", "POST", "/v1/vms", {{"start", "false"}},
                  json({{"name", name}, {"tenant", tenant}, {"memory_mib", 128}}).dump());
    ASSERT_EQ(r.status, 202) << r.body;
  }

  fs::path dir_;
  std::unique_ptr<NodeServices> node_;
  Store* store_ = nullptr;
  Api* api_ = nullptr;
};

TEST_F(ApiTest, RequiresAKnownIdentityOfThisCluster) {
  EXPECT_EQ(call("", "GET", "/v1/vms").status, 401);
  EXPECT_EQ(call("stranger", "GET", "/v1/vms").status, 403);
  ApiRequest r;
  r.method = "GET";
  r.path = r.target = "/v1/vms";
  r.peer_identity_uri = "qiao://other-cluster/user/admin";
  EXPECT_EQ(api_->handle(r).status, 403);
  r.peer_identity_uri = "qiao://c1/user/bad name";
  EXPECT_EQ(api_->handle(r).status, 401);
  EXPECT_EQ(call("admin", "GET", "/v1/healthz").status, 200);
}

TEST_F(ApiTest, RoutesMethodsAndQueryParameters) {
  EXPECT_EQ(call("admin", "GET", "/v1/nope").status, 404);
  auto r = call("admin", "PATCH", "/v1/vms");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(call("admin", "GET", "/v1/vms", {{"bogus", "1"}}).status, 400);
  EXPECT_EQ(call("admin", "GET", "/v1/vms", {{"limit", "0"}}).status, 400);
  EXPECT_EQ(call("admin", "GET", "/v1/vms", {{"limit", "5"}, {"limit", "6"}}).status, 400);
  EXPECT_EQ(call("admin", "GET", "/v1/vms/Bad_Name").status, 400);
  auto error = json::parse(call("admin", "GET", "/v1/vms/Bad_Name").body);
  EXPECT_EQ(error["error"]["code"], "invalid_argument");
  EXPECT_TRUE(error["error"].contains("details"));
}

TEST_F(ApiTest, TenantsAreApart) {
  createVm("ta", "vm1");
  createVm("tb", "vm1");
  auto a = json::parse(call("op-a", "GET", "/v1/vms").body);
  ASSERT_EQ(a["items"].size(), 1u);
  EXPECT_EQ(a["items"][0]["tenant"], "ta");
  EXPECT_EQ(call("op-a", "GET", "/v1/vms/vm1").status, 200);
  EXPECT_EQ(call("op-a", "GET", "/v1/vms/vm1", {{"tenant", "tb"}}).status, 404);
  EXPECT_EQ(call("op-a", "DELETE", "/v1/vms/vm1", {{"tenant", "tb"}}).status, 404);
  EXPECT_EQ(call("op-a", "POST", "/v1/vms/vm1/actions/start", {{"tenant", "tb"}}).status, 404);
  EXPECT_EQ(
      call("op-a", "POST", "/v1/vms", {}, json({{"name", "x"}, {"tenant", "tb"}}).dump()).status,
      403);
  // The admin sees both, and must say which one it means.
  EXPECT_EQ(call("admin", "GET", "/v1/vms/vm1").status, 409);
  EXPECT_EQ(call("admin", "GET", "/v1/vms/vm1", {{"tenant", "tb"}}).status, 200);
  // Viewers read, never write.
  EXPECT_EQ(call("view-a", "GET", "/v1/vms/vm1").status, 200);
  EXPECT_EQ(call("view-a", "POST", "/v1/vms/vm1/actions/start").status, 403);
  EXPECT_EQ(call("view-a", "DELETE", "/v1/vms/vm1").status, 403);
  // An operator with one tenant may leave it out of the spec.
  auto created = call("op-a", "POST", "/v1/vms", {{"start", "false"}},
                      json({{"name", "vm2"}, {"memory_mib", 128}}).dump());
  EXPECT_EQ(created.status, 202) << created.body;
  EXPECT_TRUE(store_->vms().get("ta", "vm2").has_value());
}

TEST_F(ApiTest, OnlyAdminsBootHostKernels) {
  json spec = {{"name", "k"}, {"boot", {{"kernel", "/definitely/not/here"}}}};
  // An operator learns nothing about host paths: 403, not "file missing".
  auto r = call("op-a", "POST", "/v1/vms", {}, spec.dump());
  EXPECT_EQ(r.status, 403) << r.body;
  spec["tenant"] = "ta";
  r = call("admin", "POST", "/v1/vms", {}, spec.dump());
  EXPECT_EQ(r.status, 400) << r.body;
}

TEST_F(ApiTest, EveryMutatingCallIsAudited) {
  createVm("ta", "vm1");
  call("view-a", "DELETE", "/v1/vms/vm1");            // refused
  call("op-a", "POST", "/v1/vms/vm1/actions/start");  // allowed
  call("op-a", "GET", "/v1/vms");                     // not mutating
  auto entries = store_->audit().list(0, 100);
  ASSERT_TRUE(entries.has_value());
  ASSERT_EQ(entries->size(), 3u);
  EXPECT_EQ((*entries)[1].status, 403);
  EXPECT_EQ((*entries)[1].identity, "qiao://c1/user/view-a");
  EXPECT_EQ((*entries)[2].status, 202);
  EXPECT_EQ((*entries)[2].tenant, "ta");
  auto verify = store_->audit().verify();
  ASSERT_TRUE(verify.has_value());
  EXPECT_TRUE(verify->ok);
}

TEST_F(ApiTest, HostFirmwareListsBuilds) {
  auto r = call("view-a", "GET", "/v1/host/firmware");
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = json::parse(r.body);
  EXPECT_TRUE(body["builds"].is_array());
  EXPECT_TRUE(body["warnings"].is_array());
  EXPECT_TRUE(body["host"]["boot_mode"] == "uefi" || body["host"]["boot_mode"] == "bios");
  EXPECT_EQ(call("", "GET", "/v1/host/firmware").status, 401);
}

TEST_F(ApiTest, MetricsCountRequests) {
  call("admin", "GET", "/v1/vms");
  auto m = call("admin", "GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(
      m.body.find("qiao_api_requests_total{method=\"GET\",route=\"/v1/vms\",status=\"200\"} 1"),
      std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("qiao_api_request_duration_seconds_bucket"), std::string::npos);
  EXPECT_EQ(call("op-a", "GET", "/metrics").status, 403);
}

// A request as the server hands it to the admission: the line and headers, no body yet.
ApiRequest head(const std::string& who, const std::string& method, const std::string& path,
                std::multimap<std::string, std::string> query = {}, int64_t length = 100) {
  ApiRequest r;
  r.method = method;
  r.path = r.target = path;
  r.query = std::move(query);
  r.declared_length = length;
  r.peer_identity_uri = who.empty() ? "" : "qiao://c1/user/" + who;
  r.remote = "10.1.2.3:40000";
  return r;
}

TEST_F(ApiTest, AnUploadIsAdmittedOnlyForTheRightCallerImageAndState) {
  ASSERT_EQ(call("op-a", "POST", "/v1/images", {}, json({{"name", "disk"}}).dump()).status, 201);
  ASSERT_EQ(call("op-b", "POST", "/v1/images", {}, json({{"name", "other"}}).dump()).status, 201);
  auto refusedWith = [&](ApiRequest r) {
    auto refused = api_->admit(r);
    return refused ? refused->status : 0;
  };
  EXPECT_EQ(refusedWith(head("", "PUT", "/v1/images/disk/data")), 401);
  EXPECT_EQ(refusedWith(head("stranger", "PUT", "/v1/images/disk/data")), 403);  // no role
  EXPECT_EQ(refusedWith(head("view-a", "PUT", "/v1/images/disk/data")), 403);
  EXPECT_EQ(refusedWith(head("op-a", "PUT", "/v1/images/other/data")), 404);  // tenant tb's
  EXPECT_EQ(refusedWith(head("op-a", "PUT", "/v1/images/missing/data")), 404);
  EXPECT_EQ(refusedWith(head("op-a", "PUT", "/v1/images/disk/data", {{"bogus", "1"}})), 400);
  EXPECT_EQ(refusedWith(head("op-a", "PUT", "/v1/images/disk/data")), 0);
  // An image that took its data already answers 409 before the next upload is read.
  auto image = store_->images().get("ta", "disk");
  ASSERT_TRUE(image.has_value());
  image->state = ImageState::kReady;
  ASSERT_TRUE(store_->images().update(*image).has_value());
  EXPECT_EQ(refusedWith(head("op-a", "PUT", "/v1/images/disk/data")), 409);
  // Other requests with a body are checked the same way before it is read.
  EXPECT_EQ(refusedWith(head("view-a", "POST", "/v1/vms")), 403);
  EXPECT_EQ(refusedWith(head("op-a", "POST", "/v1/vms")), 0);
  // Each refusal of a known caller is audited in full.
  auto entries = store_->audit().list(0, 100);
  ASSERT_TRUE(entries.has_value());
  int refused_puts = 0;
  for (const auto& e : *entries) refused_puts += e.method == "PUT" && e.status >= 400;
  EXPECT_GE(refused_puts, 4);
}

TEST_F(ApiTest, ATenantsParallelUploadsAreCappedAndTheDiskReserveIsKept) {
  for (const char* name : {"i1", "i2", "i3"}) {
    ASSERT_EQ(call("op-a", "POST", "/v1/images", {}, json({{"name", name}}).dump()).status, 201);
  }
  ApiRequest first = head("op-a", "PUT", "/v1/images/i1/data");
  ApiRequest second = head("op-a", "PUT", "/v1/images/i2/data");
  ASSERT_FALSE(api_->admit(first).has_value());
  ASSERT_FALSE(api_->admit(second).has_value());
  ApiRequest third = head("op-a", "PUT", "/v1/images/i3/data");
  auto busy = api_->admit(third);
  ASSERT_TRUE(busy.has_value());
  EXPECT_EQ(busy->status, 429) << busy->body;
  EXPECT_NE(busy->body.find("2 uploads in progress"), std::string::npos) << busy->body;
  bool retry_after = false;
  for (const auto& [k, v] : busy->headers) retry_after = retry_after || k == "Retry-After";
  EXPECT_TRUE(retry_after);
  first.admission.reset();  // the first upload ended
  ApiRequest again = head("op-a", "PUT", "/v1/images/i3/data");
  EXPECT_FALSE(api_->admit(again).has_value());
  // An upload whose length would leave less than the reserve free: 507, naming the figures.
  ApiRequest huge = head("op-a", "PUT", "/v1/images/i1/data", {}, int64_t{1} << 60);
  second.admission.reset();
  auto full = api_->admit(huge);
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(full->status, 507) << full->body;
  EXPECT_NE(full->body.find("images.upload_reserve_mib"), std::string::npos) << full->body;
}

// Without a client certificate only the enrollment routes answer: the cluster CA (public) and
// the join (its token is its credential). Every other route of the table refuses with 401, and
// a route registered open that is not one of those two is a programming error (abort).
TEST_F(ApiTest, OnlyTheEnrollmentRoutesAnswerWithoutAClientCertificate) {
  std::set<std::string> open;
  for (const auto& route : api_->routes().routes()) {
    std::string path = route.info.pattern;
    for (size_t at; (at = path.find('{')) != std::string::npos;) {
      path.replace(at, path.find('}', at) - at + 1, "x1");
    }
    ApiRequest r;
    r.method = route.info.method;
    r.path = r.target = path;
    r.remote = "127.0.0.1:4000";
    r.body = "{}";
    r.content_type = "application/json";
    const std::string what = route.info.method + " " + route.info.pattern;
    if (route.info.streams_body) {
      auto refused = api_->admit(r);
      ASSERT_TRUE(refused.has_value()) << what;
      EXPECT_EQ(refused->status, 401) << what;
      continue;
    }
    auto response = api_->handle(r);
    if (route.info.open) {
      open.insert(what);
      EXPECT_NE(response.status, 401) << what;
      EXPECT_EQ(route.info.min_role, "none") << what;
    } else {
      EXPECT_EQ(response.status, 401) << what << ": " << response.body;
    }
  }
  EXPECT_EQ(open, (std::set<std::string>{"GET /v1/cluster/ca", "POST /v1/cluster/join"}));
  // The CA answers (the test node has none yet: one is made), and says nothing else.
  ASSERT_TRUE(initPki({.cluster = "c1", .dir = (dir_ / "ca").string(), .hostname = "n1"}));
  fs::copy_file(dir_ / "ca" / "ca.crt", dir_ / "pki" / "ca.crt");
  ApiRequest ca;
  ca.method = "GET";
  ca.path = ca.target = "/v1/cluster/ca";
  auto answer = api_->handle(ca);
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_NE(json::parse(answer.body)["ca"].get<std::string>().find("BEGIN CERTIFICATE"),
            std::string::npos);
  EXPECT_EQ(json::parse(answer.body).size(), 2u) << "the cluster's name and its CA, nothing more";
  ca.query.emplace("tenant", "x");
  EXPECT_EQ(api_->handle(ca).status, 400);

  RouteTable table;
  auto handler = [](RequestContext&) { return ApiResponse{}; };
  EXPECT_DEATH(table.add({{"GET", "/v1/vms", "none", {}, false, true}, handler}), "");
  EXPECT_DEATH(table.add({{"GET", "/v1/cluster/ca", "admin", {}, false, true}, handler}), "");
  EXPECT_DEATH(table.add({{"GET", "/v1/vms", "none", {}}, handler}), "");
}

TEST_F(ApiTest, StrangersRefusalsAreSummarisedPerAddressAndKnownCallersInFull) {
  const auto before = store_->audit().list(0, 100000)->size();
  for (int i = 0; i < 2000; ++i) {
    ApiRequest r = head("", "POST", "/v1/vms", {{std::string(2000, 'x'), ""}});
    r.target = "/v1/vms?" + std::string(2000, 'x');
    r.remote = "10.9.8.7:" + std::to_string(20000 + i);
    EXPECT_EQ(api_->handle(r).status, 401);
  }
  for (int i = 0; i < 10; ++i) {
    ApiRequest r = head("", "DELETE", "/v1/vms/x");
    r.remote = "[fd00::7]:" + std::to_string(30000 + i);
    api_->handle(r);
  }
  auto entries = *store_->audit().list(0, 100000);
  ASSERT_EQ(entries.size() - before, 2u) << "one entry in full per address";
  EXPECT_LE(entries.back().path.size(), 300u) << "the path is capped";
  api_->flushAudit(true);
  entries = *store_->audit().list(0, 100000);
  ASSERT_EQ(entries.size() - before, 4u) << "and one summary per address";
  std::map<std::string, std::string> summaries;
  for (const auto& e : entries) {
    if (e.method == "SUMMARY") summaries[e.target] = e.path;
  }
  ASSERT_EQ(summaries.size(), 2u);
  EXPECT_NE(summaries["10.9.8.7"].find("1999 more refused calls"), std::string::npos)
      << summaries["10.9.8.7"];
  EXPECT_NE(summaries["fd00::7"].find("9 more refused calls"), std::string::npos)
      << summaries["fd00::7"];
  EXPECT_TRUE(store_->audit().verify()->ok);
}

TEST_F(ApiTest, WhatTheServerCouldNotReadIsAnsweredAndAudited) {
  ApiRequest r = head("op-a", "POST", "/v1/vms");
  r.transport_error = Error{ErrorCode::kPayloadTooLarge, "api", "the request body is too large"};
  auto response = api_->handle(r);
  EXPECT_EQ(response.status, 413);
  auto entries = *store_->audit().list(0, 100);
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries.back().status, 413);
  EXPECT_EQ(entries.back().identity, "qiao://c1/user/op-a");
  // Even a GET whose target could not be read.
  ApiRequest bad = head("op-a", "GET", "");
  bad.target = "/v1/vms/a%00b";
  bad.transport_error = Error{ErrorCode::kInvalidArgument, "api", "malformed request target"};
  EXPECT_EQ(api_->handle(bad).status, 400);
  entries = *store_->audit().list(0, 100);
  EXPECT_EQ(entries.back().path, "/v1/vms/a%00b");
}

TEST_F(ApiTest, ClientErrorsAreFourHundreds) {
  std::multimap<std::string, std::string> labels;
  for (int i = 0; i < 1000; ++i) labels.emplace("label", "k" + std::to_string(i) + "=v");
  auto many = call("admin", "GET", "/v1/vms", labels);
  EXPECT_EQ(many.status, 400) << many.body;
  EXPECT_NE(many.body.find("at most 16 label filters"), std::string::npos) << many.body;
  ApiRequest r = head("admin", "POST", "/v1/volumes");
  r.content_type = "application/jsonx";
  r.body = R"({"name": "v", "tenant": "ta", "size_gib": 1})";
  auto jsonx = api_->handle(r);
  EXPECT_EQ(jsonx.status, 400) << jsonx.body;
  r.content_type = "application/json; charset=utf-8";
  EXPECT_EQ(api_->handle(r).status, 202);
}

// PUT /v1/quotas/{tenant}: the body parsed by parseQuotaChanges, the limits recorded by the
// node's QuotaService and enforced on the next create.
TEST_F(ApiTest, AnAdminSetsATenantsQuotasAndTheyHold) {
  auto set = call("admin", "PUT", "/v1/quotas/ta", {}, R"({"vms": 1, "images": null})");
  ASSERT_EQ(set.status, 200) << set.body;
  auto quota = json::parse(set.body);
  EXPECT_EQ(quota["limits"]["vms"], 1);
  EXPECT_EQ(quota["limits"]["images"], -1) << "null is the node's default";
  EXPECT_EQ(quota["usage"]["vms"], 0);
  createVm("ta", "vm1");
  auto over = call("op-a", "POST", "/v1/vms", {{"start", "false"}},
                   json({{"name", "vm2"}, {"memory_mib", 128}}).dump());
  EXPECT_EQ(over.status, 409) << over.body;
  EXPECT_NE(over.body.find("quota of vms is 1"), std::string::npos) << over.body;

  auto unknown = call("admin", "PUT", "/v1/quotas/ta", {}, R"({"cpus": 4})");
  EXPECT_EQ(unknown.status, 400);
  const std::string message = json::parse(unknown.body)["error"]["message"];
  EXPECT_NE(message.find(R"(unknown quota "cpus")"), std::string::npos) << message;
  EXPECT_EQ(call("admin", "PUT", "/v1/quotas/ta", {}, R"({"vms": -2})").status, 400);
  EXPECT_EQ(call("op-a", "PUT", "/v1/quotas/ta", {}, R"({"vms": 5})").status, 403);
  auto listed = json::parse(call("op-a", "GET", "/v1/quotas").body);
  ASSERT_EQ(listed["items"].size(), 1u) << listed.dump();
  EXPECT_EQ(listed["items"][0]["tenant"], "ta");
  EXPECT_EQ(listed["items"][0]["limits"]["vms"], 1) << "the refused bodies changed nothing";
  EXPECT_EQ(listed["items"][0]["usage"]["vms"], 1);
}

}  // namespace
}  // namespace qiao

namespace qiao {
namespace {

// A cluster member's forwarding, on an Api of its own over the node's store: what a route's
// locate decides is forwarded (and the answer passed back), and a call forwarded here is the
// caller's only when a node of the cluster sent it.
class ApiForwardingTest : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    RouteTable routes;
    Route echo{{"POST", "/v1/things/{name}", "operator", {}}, [](RequestContext& ctx) {
                 json who = {{"caller", ctx.caller->uri}, {"via", ctx.caller->via}};
                 return jsonResponse(200, who);
               }};
    echo.locate = [](RequestContext& ctx) -> Result<std::optional<std::string>> {
      const std::string& name = ctx.params.at("name");
      if (name == "remote") return std::optional<std::string>{"host-b"};
      if (name == "moved") return makeError(ErrorCode::kConflict, "cluster", "it moved");
      return std::optional<std::string>{};
    };
    routes.add(std::move(echo));
    ApiOptions options{*store_, metrics_, "c1", 60};
    options.forward = [this](const std::string& host, const RequestContext& ctx) {
      forwarded_.push_back(host + " " + ctx.caller->uri);
      return jsonResponse(201, json{{"answered_by", host}});
    };
    member_ = std::make_unique<Api>(std::move(options), std::move(routes));
  }
  ApiResponse send(const std::string& peer, const std::string& name,
                   const std::string& on_behalf_of = "") {
    ApiRequest r;
    r.method = "POST";
    r.path = r.target = "/v1/things/" + name;
    r.peer_identity_uri = peer;
    r.on_behalf_of = on_behalf_of;
    return member_->handle(r);
  }

  Metrics metrics_;
  std::unique_ptr<Api> member_;
  std::vector<std::string> forwarded_;
};

TEST_F(ApiForwardingTest, WhatLocateSendsElsewhereIsForwardedAndItsAnswerPassedBack) {
  auto here = send("qiao://c1/user/op-a", "local");
  EXPECT_EQ(here.status, 200) << here.body;
  EXPECT_TRUE(forwarded_.empty());
  auto there = send("qiao://c1/user/op-a", "remote");
  EXPECT_EQ(there.status, 201);
  EXPECT_EQ(json::parse(there.body)["answered_by"], "host-b");
  ASSERT_EQ(forwarded_.size(), 1u);
  EXPECT_EQ(forwarded_[0], "host-b qiao://c1/user/op-a");
  auto moved = send("qiao://c1/user/op-a", "moved");
  EXPECT_EQ(moved.status, 409);
  // Roles are checked before anything is forwarded.
  auto viewer = send("qiao://c1/user/view-a", "remote");
  EXPECT_EQ(viewer.status, 403);
  EXPECT_EQ(forwarded_.size(), 1u);
  auto entries = store_->audit().list(0, 100);
  ASSERT_TRUE(entries);
  bool named = false;
  for (const auto& e : *entries) named = named || e.target == "remote (on host host-b)";
  EXPECT_TRUE(named);
}

TEST_F(ApiForwardingTest, OnlyANodeOfTheClusterCallsOnBehalfOfAnother) {
  auto forwarded = send("qiao://c1/node/host-a", "local", "qiao://c1/user/op-a");
  ASSERT_EQ(forwarded.status, 200) << forwarded.body;
  EXPECT_EQ(json::parse(forwarded.body)["caller"], "qiao://c1/user/op-a");
  EXPECT_EQ(json::parse(forwarded.body)["via"], "qiao://c1/node/host-a");
  auto entries = store_->audit().list(0, 100);
  ASSERT_TRUE(entries);
  ASSERT_FALSE(entries->empty());
  EXPECT_EQ(entries->back().identity, "qiao://c1/user/op-a via qiao://c1/node/host-a");

  // A user cannot pose as another one.
  EXPECT_EQ(send("qiao://c1/user/op-b", "local", "qiao://c1/user/admin").status, 403);
  // Nor may a node be named as the caller, or an identity of another cluster.
  EXPECT_EQ(send("qiao://c1/node/host-a", "local", "qiao://c1/node/host-b").status, 403);
  EXPECT_EQ(send("qiao://c1/node/host-a", "local", "qiao://c2/user/op-a").status, 403);
  EXPECT_EQ(send("qiao://c1/node/host-a", "local", "not a uri").status, 403);
  // The caller's role is read here again: a viewer forwarded is still a viewer.
  EXPECT_EQ(send("qiao://c1/node/host-a", "local", "qiao://c1/user/view-a").status, 403);
  // A node of another cluster is nobody here.
  EXPECT_EQ(send("qiao://c2/node/host-a", "local", "qiao://c1/user/op-a").status, 403);
  EXPECT_TRUE(forwarded_.empty());
}

}  // namespace
}  // namespace qiao
