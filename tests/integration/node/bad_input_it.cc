// Hostile and broken input against a real qiaod: names with markup, quotes, slashes, dots,
// non-ASCII, 300 characters or nothing; malformed, truncated, huge and deeply nested bodies.
// Each gets a 4xx with a clear message, and libvirt's domain list does not change.
#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace qiao::testing {
namespace {

using nlohmann::json;

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    q_.start();
    client_ = std::make_unique<ApiClient>(q_.adminClient());
    before_ = libvirtDomains();
  }
  void TearDown() override {
    EXPECT_EQ(libvirtDomains(), before_) << "libvirt's domains changed";
    auto list = call(*client_, "GET", "/v1/vms");
    EXPECT_EQ(list.body["items"].size(), 0u) << list.raw;
  }

  // Expects a 4xx JSON error whose message says something (and mentions `hint` if given).
  void expectRefused(const JsonResponse& r, int status, const std::string& hint = {}) {
    EXPECT_EQ(r.status, status) << r.raw;
    ASSERT_TRUE(r.body.is_object()) << r.raw;
    ASSERT_TRUE(r.body.contains("error")) << r.raw;
    std::string message = r.body["error"]["message"];
    EXPECT_FALSE(message.empty());
    EXPECT_TRUE(r.body["error"].contains("code"));
    EXPECT_TRUE(r.body["error"].contains("details"));
    if (!hint.empty()) {
      EXPECT_NE(message.find(hint), std::string::npos) << message;
    }
  }

  Qiaod q_;
  std::unique_ptr<ApiClient> client_;
  std::vector<std::string> before_;
};

TEST_F(BadInputTest, HostileNamesAreRefusedBeforeLibvirt) {
  const std::vector<std::string> names = {
      "<evil>",      "a\"b",       "it's",       "a/b",         "..",       "../etc",
      "ünïcode",     "名字",       std::string(300, 'a'),      "",         "UPPER",
      "-lead",       "trail-",     "a b",        "a;rm -rf",    "$(id)",    "a\nb",
      "a.b",         "%2e%2e",     "x]]><y"};
  for (const auto& name : names) {
    json spec = {{"name", name}, {"tenant", "acme"}, {"memory_mib", 128}};
    auto r = call(*client_, "POST", "/v1/vms?start=false", spec.dump());
    expectRefused(r, 400, "vm name");
    json tenant_spec = {{"name", "ok"}, {"tenant", name}, {"memory_mib", 128}};
    auto t = call(*client_, "POST", "/v1/vms?start=false", tenant_spec.dump());
    expectRefused(t, 400, "tenant");
  }
  // In the path too (percent-encoded as a client would send it).
  const std::vector<std::string> targets = {"/v1/vms/%3Cevil%3E", "/v1/vms/a%22b", "/v1/vms/..",
                                            "/v1/vms/%C3%BC", "/v1/vms/" + std::string(300, 'a')};
  for (const auto& target : targets) {
    expectRefused(call(*client_, "GET", target), 400);
    expectRefused(call(*client_, "DELETE", target + "?force=true"), 400);
  }
  // A NUL smuggled through percent-encoding is a malformed target.
  expectRefused(call(*client_, "GET", "/v1/vms/a%00b"), 400);
}

TEST_F(BadInputTest, BrokenBodiesGetClearErrors) {
  const json good = {{"name", "good"}, {"tenant", "acme"}, {"memory_mib", 128}};
  const std::string text = good.dump();
  struct Case {
    std::string body;
    int status;
    std::string hint;
  };
  std::vector<Case> cases = {
      {"", 400, ""},
      {"{", 400, ""},
      {text.substr(0, text.size() / 2), 400, ""},
      {"not json at all", 400, ""},
      {"[]", 400, ""},
      {"null", 400, ""},
      {R"({"name":"x","tenant":"acme","surprise":1})", 400, "surprise"},
      {R"({"name":"x","tenant":"acme","boot":{"kernel":"/k","evil":1}})", 400, "evil"},
      {R"({"name":"x","tenant":"acme","vcpus":"two"})", 400, "vcpus"},
      {R"({"name":"x","tenant":"acme","vcpus":100000})", 400, "vcpus"},
      {R"({"name":"x","tenant":"acme","memory_mib":-1})", 400, "memory_mib"},
      {R"({"name":"x","tenant":"acme","memory_mib":1e309})", 400, ""},
      {R"({"name":"x","tenant":"acme","arch":"sparc"})", 400, "arch"},
      {R"({"name":"x","tenant":"acme","firmware":"uefi-secure","boot":{"kernel":"/etc/hostname"}})",
       400, "uefi-secure"},
      {R"({"name":"x","tenant":"acme","firmware":"bios-9000"})", 400, "firmware"},
      {R"({"name":"x","tenant":"acme","disks":[{"volume":"v"}]})", 400, "disks"},
      {R"({"name":"x","tenant":"acme","labels":{"k":1}})", 400, "labels"},
      {R"({"name":"x","tenant":"acme","boot":{"kernel":"relative/path"}})", 400, "kernel"},
      {R"({"name":"x","tenant":"acme","boot":{"kernel":"/etc/../etc/hostname"}})", 400, "kernel"},
      {R"({"name":"x","tenant":"acme","boot":{"kernel":"/nonexistent/vmlinuz"}})", 400, "kernel"},
      {R"({"name":"x","tenant":"acme","boot":{"kernel":"/etc"}})", 400, "kernel"},
      {"{\"name\":\"x\",\"tenant\":\"acme\",\"name\":\"y\"}", 400, ""},
      {std::string(100000, '[') + std::string(100000, ']'), 400, ""},
      {"{\"a\":" + std::string(50000, '{'), 400, ""},
  };
  for (const auto& c : cases) {
    auto r = call(*client_, "POST", "/v1/vms?start=false", c.body);
    SCOPED_TRACE(c.body.substr(0, 120));
    expectRefused(r, c.status, c.hint);
  }
  // Over the 1 MiB limit: 413.
  std::string huge = R"({"name":"x","tenant":"acme","labels":{"k":")" + std::string(2 << 20, 'a') +
                     "\"}}";
  expectRefused(call(*client_, "POST", "/v1/vms?start=false", huge), 413);
  // Query parameters are checked as well.
  expectRefused(call(*client_, "POST", "/v1/vms?start=maybe", text), 400, "start");
  expectRefused(call(*client_, "POST", "/v1/vms?bogus=1", text), 400, "bogus");
  expectRefused(call(*client_, "GET", "/v1/vms?limit=0"), 400, "limit");
  expectRefused(call(*client_, "GET", "/v1/vms?limit=abc"), 400, "limit");
  expectRefused(call(*client_, "GET", "/v1/nothing"), 404);
  auto wrong_method = call(*client_, "PUT", "/v1/vms");
  EXPECT_EQ(wrong_method.status, 405) << wrong_method.raw;
  // The daemon is still healthy after all of it.
  EXPECT_EQ(call(*client_, "GET", "/v1/healthz").status, 200);
}

// The API listens where the configuration says, IPv6 included; the node certificate names ::1.
TEST(Listen, ServesOnIpv6AndIpv4AtOnce) {
  Qiaod q("", "\"[::1]:0\", \"127.0.0.1:0\"");
  q.start();
  auto addresses = runCommand({"cat", q.dir() + "/state/qiaod.addr"}).out;
  ASSERT_NE(addresses.find("[::1]:"), std::string::npos) << addresses;
  ASSERT_NE(addresses.find("127.0.0.1:"), std::string::npos) << addresses;
  std::string v6 = addresses.substr(addresses.find("[::1]:"));
  v6 = v6.substr(0, v6.find('\n'));
  const auto& admin = q.identity("admin", "admin");
  ClientConfig config;
  config.endpoint = "https://" + v6;
  config.ca = admin.ca;
  config.cert = admin.cert;
  config.key = admin.key;
  auto client = ApiClient::create(config);
  ASSERT_TRUE(client.has_value());
  auto r = client->request("GET", "/v1/healthz");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status, 200) << r->body;
}

}  // namespace
}  // namespace qiao::testing
