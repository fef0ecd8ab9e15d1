// The node API's identity model against a real qiaod: no certificate, a certificate of
// another CA, an expired one, an identity with no role, a viewer mutating, an operator of
// tenant A touching tenant B. Every one is refused, and nothing changes: not the store, not
// libvirt. Refused mutations are in the audit log, whose chain still verifies.
#include <gtest/gtest.h>

#include <ctime>
#include <filesystem>

#include "node/pki/identity.h"
#include "node/pki/pki.h"
#include "tests/integration/harness.h"

namespace qiao::testing {
namespace {

using nlohmann::json;

ClientConfig configFor(const Qiaod& q, const std::string& cert, const std::string& key,
                       const std::string& ca) {
  ClientConfig config;
  config.endpoint = q.endpoint();
  config.ca = ca;
  config.cert = cert;
  config.key = key;
  config.timeout_ms = 10000;
  return config;
}

// A request that must not get an answer from the handlers: TLS refuses it.
void expectTlsRefused(const ClientConfig& config, const std::string& what) {
  auto client = ApiClient::create(config);
  ASSERT_TRUE(client.has_value()) << what << ": " << client.error().describe();
  auto r = client->request("GET", "/v1/vms");
  EXPECT_FALSE(r.has_value()) << what << ": the server answered " << r->status << " " << r->body;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    q_.start();
    admin_ = std::make_unique<ApiClient>(q_.adminClient());
    // A VM in each tenant, defined but not started (no guest needed here).
    for (const auto& tenant : {tenant_a_, tenant_b_}) {
      json spec = {{"name", "vm1"}, {"tenant", tenant}, {"vcpus", 1}, {"memory_mib", 128}};
      auto r = call(*admin_, "POST", "/v1/vms?start=false", spec.dump());
      ASSERT_EQ(r.status, 202) << r.raw;
      ASSERT_EQ(waitTask(*admin_, r.body["id"])["state"], "succeeded");
    }
    domains_before_ = libvirtDomains();
  }

  void expectNothingChanged() {
    EXPECT_EQ(libvirtDomains(), domains_before_);
    for (const auto& tenant : {tenant_a_, tenant_b_}) {
      auto vm = call(*admin_, "GET", "/v1/vms/vm1?tenant=" + tenant);
      EXPECT_EQ(vm.status, 200);
      EXPECT_EQ(vm.body["state"], "shutoff");
    }
    auto list = call(*admin_, "GET", "/v1/vms");
    EXPECT_EQ(list.body["items"].size(), 2u) << list.raw;
  }

  Qiaod q_;
  std::unique_ptr<ApiClient> admin_;
  std::string tenant_a_ = "sa" + randomSuffix(4);
  std::string tenant_b_ = "sb" + randomSuffix(4);
  std::vector<std::string> domains_before_;
};

TEST_F(SecurityTest, NoClientCertificateGets401) {
  const auto& admin = q_.identity("admin", "admin");
  auto client = ApiClient::create(configFor(q_, "", "", admin.ca));
  ASSERT_TRUE(client.has_value()) << client.error().describe();
  for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/v1/vms"}, {"GET", "/v1/healthz"}, {"DELETE", "/v1/vms/vm1?tenant=" + tenant_a_}}) {
    auto r = client->request(method, target);
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    EXPECT_EQ(r->status, 401) << method << " " << target << ": " << r->body;
    auto body = json::parse(r->body, nullptr, false);
    EXPECT_EQ(body["error"]["code"], "unauthenticated");
  }
  expectNothingChanged();
}

TEST_F(SecurityTest, CertificateOfAnotherCaIsRefused) {
  std::string other = q_.dir() + "/other-pki";
  ASSERT_TRUE(initPki({.cluster = q_.cluster(), .dir = other, .hostname = "evil"}).has_value());
  auto identity = parseIdentityUri("qiao://" + q_.cluster() + "/user/admin");
  ASSERT_TRUE(identity.has_value());
  IssueOptions options;
  options.ca_dir = other;
  options.identity = *identity;
  options.out_dir = other + "/out";
  auto issued = issueCert(options);
  ASSERT_TRUE(issued.has_value()) << issued.error().describe();
  expectTlsRefused(configFor(q_, issued->cert_path, issued->key_path, q_.dir() + "/pki/ca.crt"),
                   "certificate of another CA");
  expectNothingChanged();
}

TEST_F(SecurityTest, ExpiredCertificateIsRefused) {
  auto identity = parseIdentityUri("qiao://" + q_.cluster() + "/user/admin");
  ASSERT_TRUE(identity.has_value());
  IssueOptions options;
  options.ca_dir = q_.dir() + "/pki";
  options.identity = *identity;
  options.out_dir = q_.dir() + "/expired";
  int64_t now = std::time(nullptr);
  options.not_before_unix = now - 10 * 86400;
  options.not_after_unix = now - 86400;
  auto issued = issueCert(options);
  ASSERT_TRUE(issued.has_value()) << issued.error().describe();
  expectTlsRefused(configFor(q_, issued->cert_path, issued->key_path, q_.dir() + "/pki/ca.crt"),
                   "expired certificate");
  expectNothingChanged();
}

TEST_F(SecurityTest, IdentityWithoutRoleGets403) {
  auto identity = parseIdentityUri("qiao://" + q_.cluster() + "/user/nobody");
  ASSERT_TRUE(identity.has_value());
  IssueOptions options;
  options.ca_dir = q_.dir() + "/pki";
  options.identity = *identity;
  options.out_dir = q_.dir() + "/unbound";
  auto issued = issueCert(options);  // issued, but never bound to a role
  ASSERT_TRUE(issued.has_value());
  auto client = ApiClient::create(
      configFor(q_, issued->cert_path, issued->key_path, q_.dir() + "/pki/ca.crt"));
  ASSERT_TRUE(client.has_value());
  auto r = client->request("GET", "/v1/vms");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 403) << r->body;
  expectNothingChanged();
}

TEST_F(SecurityTest, ViewerCannotMutate) {
  auto viewer = q_.client(q_.identity("viewer-a", "viewer", {tenant_a_}));
  EXPECT_EQ(call(viewer, "GET", "/v1/vms/vm1?tenant=" + tenant_a_).status, 200);
  json spec = {{"name", "vm2"}, {"tenant", tenant_a_}};
  EXPECT_EQ(call(viewer, "POST", "/v1/vms?start=false", spec.dump()).status, 403);
  EXPECT_EQ(call(viewer, "POST", "/v1/vms/vm1/actions/start?tenant=" + tenant_a_).status, 403);
  EXPECT_EQ(call(viewer, "DELETE", "/v1/vms/vm1?tenant=" + tenant_a_ + "&force=true").status,
            403);
  EXPECT_EQ(call(viewer, "GET", "/metrics").status, 403);
  EXPECT_EQ(call(viewer, "POST", "/v1/vms/vm1/disks?tenant=" + tenant_a_, R"({"volume":"v1"})")
                .status,
            403);
  EXPECT_EQ(call(viewer, "POST", "/v1/vms/vm1/resize?tenant=" + tenant_a_, R"({"vcpus":1})")
                .status,
            403);
  expectNothingChanged();
}

TEST_F(SecurityTest, OperatorOfOneTenantCannotTouchAnother) {
  auto op = q_.client(q_.identity("op-a", "operator", {tenant_a_}));
  // Its own tenant works.
  EXPECT_EQ(call(op, "GET", "/v1/vms/vm1").status, 200);
  auto own = call(op, "GET", "/v1/vms");
  ASSERT_EQ(own.status, 200);
  ASSERT_EQ(own.body["items"].size(), 1u) << own.raw;
  EXPECT_EQ(own.body["items"][0]["tenant"], tenant_a_);

  // Tenant B's VM does not exist for it: 404, never its data.
  auto get = call(op, "GET", "/v1/vms/vm1?tenant=" + tenant_b_);
  EXPECT_EQ(get.status, 404);
  EXPECT_EQ(get.raw.find(tenant_b_ + ".vm1"), std::string::npos);
  EXPECT_EQ(call(op, "GET", "/v1/vms?tenant=" + tenant_b_).body["items"].size(), 0u);
  EXPECT_EQ(call(op, "DELETE", "/v1/vms/vm1?tenant=" + tenant_b_ + "&force=true").status, 404);
  EXPECT_EQ(call(op, "POST", "/v1/vms/vm1/actions/start?tenant=" + tenant_b_).status, 404);
  EXPECT_EQ(call(op, "GET", "/v1/vms/vm1/console-log?tenant=" + tenant_b_).status, 404);
  // Nor change it online, or read its figures.
  const std::string b_vm = "/v1/vms/vm1";
  const std::string in_b = "?tenant=" + tenant_b_;
  EXPECT_EQ(call(op, "POST", b_vm + "/disks" + in_b, R"({"volume":"v1"})").status, 404);
  EXPECT_EQ(call(op, "DELETE", b_vm + "/disks/v1" + in_b).status, 404);
  EXPECT_EQ(call(op, "POST", b_vm + "/nics" + in_b, R"({"network":"n1"})").status, 404);
  EXPECT_EQ(call(op, "DELETE", b_vm + "/nics/02:00:00:00:00:01" + in_b).status, 404);
  EXPECT_EQ(call(op, "POST", b_vm + "/resize" + in_b, R"({"vcpus":1})").status, 404);
  EXPECT_EQ(call(op, "GET", b_vm + "/stats" + in_b).status, 404);
  json spec = {{"name", "intruder"}, {"tenant", tenant_b_}};
  EXPECT_EQ(call(op, "POST", "/v1/vms?start=false", spec.dump()).status, 403);
  // Nor its tasks.
  auto tasks = call(*admin_, "GET", "/v1/tasks?tenant=" + tenant_b_);
  ASSERT_FALSE(tasks.body["items"].empty());
  std::string b_task = tasks.body["items"][0]["id"];
  EXPECT_EQ(call(op, "GET", "/v1/tasks/" + b_task).status, 404);
  EXPECT_EQ(call(op, "POST", "/v1/tasks/" + b_task + "/cancel").status, 404);
  EXPECT_EQ(call(op, "GET", "/v1/tasks?tenant=" + tenant_b_).body["items"].size(), 0u);
  // Operators may not boot host kernels.
  json boot = {{"name", "vm3"}, {"boot", {{"kernel", "/etc/hostname"}}}};
  EXPECT_EQ(call(op, "POST", "/v1/vms?start=false", boot.dump()).status, 403);
  expectNothingChanged();

  // Every refused mutation is in the audit log, and the chain holds.
  auto verify = q_.admin({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

}  // namespace
}  // namespace qiao::testing
