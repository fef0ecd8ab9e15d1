// Every route's refusals against a real qiaod, so that the api_contract test (tests/contract)
// sees each operation answer with its errors as well as with success (the other integration
// tests make the successes): no certificate (401), a role too small (403), an unknown query
// parameter (400), an object that does not exist (404). Each answer is the one error body,
// whose code names its status. The routes come from the router's own table, so a new route
// is covered the day it is served: the test builds the node in process (on libvirt's test
// driver) only to read the table its modules register.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>

#include "node/api/api.h"
#include "tests/doubles/test_node.h"
#include "tests/integration/harness.h"

namespace qiao::testing {
namespace {

using nlohmann::json;

// The routes the node serves, as its modules register them.
const std::vector<RouteInfo>& servedRoutes() {
  static const std::vector<RouteInfo> routes = [] {
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("qiao-contract-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::vector<RouteInfo> out;
    if (auto node = buildTestNode(dir)) {
      out = (*node)->api().routes().infos();
    } else {
      ADD_FAILURE() << "cannot build the node to read its routes: " << node.error().describe();
    }
    std::filesystem::remove_all(dir);
    return out;
  }();
  return routes;
}

// The route's pattern with its parameters filled by values that name nothing.
std::string targetOf(const RouteInfo& route) {
  static const std::map<std::string, std::string> kValues = {
      {"{name}", "contract-missing"},
      {"{volume}", "contract-missing"},
      {"{action}", "start"},
      {"{mac}", "02:00:00:00:00:01"},
      {"{id}", "00000000-0000-4000-8000-000000000000"},
      {"{tenant}", "contract-missing"},
  };
  std::string target = route.pattern;
  for (const auto& [param, value] : kValues) {
    if (auto at = target.find(param); at != std::string::npos) target.replace(at, param.size(), value);
  }
  EXPECT_EQ(target.find('{'), std::string::npos) << "a parameter this test cannot fill: " << target;
  return target;
}

// A body the route's parser takes, so that what is refused is the thing tested.
std::string bodyOf(const RouteInfo& route) {
  static const std::map<std::string, std::string> kBodies = {
      {"/v1/vms/{name}/disks", R"({"volume": "contract-missing"})"},
      {"/v1/vms/{name}/nics", R"({"network": "contract-missing"})"},
      {"/v1/vms/{name}/resize", R"({"vcpus": 1})"},
      {"/v1/volumes/{name}/resize", R"({"size_gib": 1})"},
      {"/v1/volumes/{name}/copy", R"({"name": "contract-copy"})"},
      {"/v1/security-groups/{name}", R"({"rules": []})"},
      {"/v1/quotas/{tenant}", R"({"vms": 1})"},
      {"/v1/images/{name}/data", "raw bytes"},
  };
  if (route.method == "GET" || route.method == "DELETE") return {};
  auto body = kBodies.find(route.pattern);
  return body == kBodies.end() ? "{}" : body->second;
}

void expectError(const Result<HttpResponse>& r, int status, const std::string& what) {
  ASSERT_TRUE(r.has_value()) << what << ": " << r.error().describe();
  EXPECT_EQ(r->status, status) << what << ": " << r->body;
  auto body = json::parse(r->body, nullptr, false);
  ASSERT_TRUE(body.is_object() && body.contains("error")) << what << ": " << r->body;
  EXPECT_TRUE(body["error"]["message"].is_string()) << what << ": " << r->body;
  EXPECT_TRUE(body["error"]["details"].is_object()) << what << ": " << r->body;
  static const std::map<int, std::string> kCodes = {{400, "invalid_argument"},
                                                    {401, "unauthenticated"},
                                                    {403, "permission_denied"},
                                                    {404, "not_found"}};
  if (auto code = kCodes.find(status); code != kCodes.end()) {
    EXPECT_EQ(body["error"]["code"], code->second) << what << ": " << r->body;
  }
}

class ApiContractTest : public ::testing::Test {
 protected:
  // With a bridge of its own on the stack's Open vSwitch: the network routes are served.
  static void SetUpTestSuite() {
    bridge_ = "qct-" + randomSuffix(6);
    q_ = new Qiaod(stackNetworkConfig(bridge_));
    q_->start();
  }
  static void TearDownTestSuite() {
    delete q_;
    q_ = nullptr;
    runCommand({"ovs-vsctl", "--timeout=10", "--if-exists", "del-br", bridge_});
  }

  // One request; the upload route takes its bytes as a stream of octets.
  static Result<HttpResponse> send(ApiClient& client, const RouteInfo& route,
                                   const std::string& target) {
    const std::string body = bodyOf(route);
    const bool octets = route.pattern == "/v1/images/{name}/data";
    return client.request(route.method, target, body,
                          octets ? "application/octet-stream" : "application/json");
  }

  static Qiaod* q_;
  static std::string bridge_;
};
Qiaod* ApiContractTest::q_ = nullptr;
std::string ApiContractTest::bridge_;

TEST_F(ApiContractTest, EveryRouteRefusesACallerWithoutACertificate) {
  const Identity& admin = q_->identity("contract-admin", "admin");
  ClientConfig config;
  config.endpoint = q_->endpoint();
  config.ca = admin.ca;
  auto client = ApiClient::create(config);
  ASSERT_TRUE(client) << client.error().describe();
  std::vector<std::string> open;
  for (const auto& route : servedRoutes()) {
    const std::string target = targetOf(route);
    if (route.open) {  // the enrollment routes: no certificate is asked for (api_test)
      open.push_back(route.method + " " + route.pattern);
      continue;
    }
    expectError(send(*client, route, target), 401, route.method + " " + target);
  }
  EXPECT_EQ(open, (std::vector<std::string>{"GET /v1/cluster/ca", "POST /v1/cluster/join"}));
}

TEST_F(ApiContractTest, EveryRouteRefusesARoleBelowItsMinimum) {
  // A viewer of a tenant for the operator routes, an operator for the admin routes.
  auto viewer = q_->client(q_->identity("contract-viewer", "viewer", {"contract"}));
  auto op = q_->client(q_->identity("contract-operator", "operator", {"contract"}));
  int checked = 0;
  for (const auto& route : servedRoutes()) {
    if (route.min_role == "viewer" || route.open) continue;
    ApiClient& caller = route.min_role == "admin" ? op : viewer;
    const std::string target =
        targetOf(route) + (route.pattern.starts_with("/v1/quotas/") ? "" : "?tenant=contract");
    expectError(send(caller, route, target), 403, route.method + " " + target);
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

TEST_F(ApiContractTest, EveryRouteRefusesAnUnknownQueryParameter) {
  auto admin = q_->adminClient();
  for (const auto& route : servedRoutes()) {
    const std::string target = targetOf(route) + "?contract-bogus=1";
    auto r = send(admin, route, target);
    expectError(r, 400, route.method + " " + target);
    if (r) {
      EXPECT_NE(r->body.find("contract-bogus"), std::string::npos)
          << route.method << " " << target << ": the message should name the parameter: "
          << r->body;
    }
  }
}

TEST_F(ApiContractTest, EveryRouteOnAnObjectAnswers404WhenItDoesNotExist) {
  auto admin = q_->adminClient();
  int checked = 0;
  for (const auto& route : servedRoutes()) {
    if (route.pattern.find('{') == std::string::npos) continue;
    // A tenant's quotas exist for an admin whatever the tenant (its defaults).
    if (route.pattern.starts_with("/v1/quotas/")) continue;
    // Tenants' objects are named within a tenant; a task (by id) or a host is not.
    const bool in_tenant = std::ranges::find(route.allowed_query, "tenant") !=
                           route.allowed_query.end();
    const std::string target = targetOf(route) + (in_tenant ? "?tenant=contract" : "");
    expectError(send(admin, route, target), 404, route.method + " " + target);
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

// Successes no other integration test needs: they are checked against the spec all the same.
TEST_F(ApiContractTest, ReadsThatOnlyTheContractAsksForAnswer200) {
  auto admin = q_->adminClient();
  for (const std::string target : {"/v1/host/firmware", "/v1/security-groups",
                                   "/v1/security-groups?tenant=contract"}) {
    auto r = call(admin, "GET", target);
    EXPECT_EQ(r.status, 200) << target << ": " << r.raw;
  }
}

// Quotas: an admin sets one, the tenant's operator reads it, an outsider does not see it.
TEST_F(ApiContractTest, QuotasAreSetByAdminsAndReadByTheTenant) {
  auto admin = q_->adminClient();
  auto set = call(admin, "PUT", "/v1/quotas/contract", R"({"vms": 3, "vcpus": null})");
  ASSERT_EQ(set.status, 200) << set.raw;
  EXPECT_EQ(set.body["limits"]["vms"], 3);
  EXPECT_EQ(set.body["limits"]["vcpus"], -1);
  auto op = q_->client(q_->identity("contract-operator", "operator", {"contract"}));
  auto mine = call(op, "GET", "/v1/quotas/contract");
  EXPECT_EQ(mine.status, 200) << mine.raw;
  EXPECT_EQ(mine.body["usage"]["vms"], 0);
  auto listed = call(op, "GET", "/v1/quotas");
  ASSERT_EQ(listed.status, 200) << listed.raw;
  EXPECT_EQ(listed.body["items"].size(), 1u);
  EXPECT_EQ(call(op, "GET", "/v1/quotas/other").status, 404);
  EXPECT_EQ(call(admin, "GET", "/v1/quotas").status, 200);
  EXPECT_EQ(call(admin, "PUT", "/v1/quotas/contract", R"({"cpus": 1})").status, 400);
  EXPECT_EQ(call(admin, "PUT", "/v1/quotas/contract", R"({"vms": -2})").status, 400);
}

TEST_F(ApiContractTest, AnUnknownRouteAndAnUnservedMethodAreErrorsOfTheSameShape) {
  auto admin = q_->adminClient();
  expectError(admin.request("GET", "/v1/contract-missing"), 404, "GET /v1/contract-missing");
  auto r = admin.request("PATCH", "/v1/vms");
  expectError(r, 405, "PATCH /v1/vms");
  if (r) {
    auto body = json::parse(r->body, nullptr, false);
    EXPECT_EQ(body["error"]["code"], "method_not_allowed") << r->body;
  }
}

}  // namespace
}  // namespace qiao::testing
