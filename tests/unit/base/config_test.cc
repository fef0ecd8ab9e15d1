#include "base/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace qiao {
namespace {

TEST(Config, EmptyFileGivesDefaults) {
  auto c = parseConfig("", "t.toml");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->api.listen, std::vector<std::string>{"127.0.0.1:8443"});
  EXPECT_EQ(c->api.max_body_bytes, 1 << 20);
  EXPECT_EQ(c->vm.accelerator, "auto");
  EXPECT_EQ(c->state.dir, "/var/lib/qiao");
}

TEST(Config, ReadsValues) {
  auto c = parseConfig(R"(
[api]
listen = ["0.0.0.0:9443", "[::1]:0"]
max_body_bytes = 4096
[vm]
accelerator = "tcg"
shutdown_timeout_s = 5
[log]
level = "debug"
)", "t.toml");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->api.listen.size(), 2u);
  EXPECT_EQ(c->api.max_body_bytes, 4096);
  EXPECT_EQ(c->vm.accelerator, "tcg");
  EXPECT_EQ(c->vm.shutdown_timeout_s, 5);
}

void expectError(const std::string& text, const std::string& needle) {
  auto c = parseConfig(text, "/etc/qiao/qiaod.toml");
  ASSERT_FALSE(c.has_value()) << text;
  EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(c.error().message.find(needle), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("/etc/qiao/qiaod.toml"), std::string::npos);
}

TEST(Config, RefusesWhatIsWrongNamingTheKey) {
  expectError("[api]\nmax_body_bytes = 5\n", "api.max_body_bytes: must be between 1024");
  expectError("[api]\nmax_body_bytes = \"big\"\n", "api.max_body_bytes: must be an integer");
  expectError("[api]\nbogus = 1\n", "api.bogus: unknown key");
  expectError("[nope]\nx = 1\n", "nope.x: unknown key");
  expectError("toplevel = 1\n", "toplevel");
  expectError("[vm]\naccelerator = \"hvf\"\n", "vm.accelerator: must be one of");
  expectError("[api]\nlisten = [\"localhost:80\"]\n", "api.listen");
  expectError("[api]\nlisten = [\"127.0.0.1:99999\"]\n", "api.listen");
  expectError("[api]\nlisten = []\n", "api.listen: must not be empty");
  expectError("[state]\ndir = \"relative\"\n", "state.dir: must be an absolute path");
  expectError("[api\n", "qiaod.toml:");
  expectError("[network]\ntunnel_ip = \"10.0.0.256\"\n", "network.tunnel_ip: must be an IPv4");
  expectError("[network]\ntunnel_ip = \"10.0.0.1\"\ntunnel_peers = [\"10.0.0.01\"]\n",
              "network.tunnel_peers: must be an IPv4");
  expectError("[network]\ntunnel_ip = \"10.0.0.1\"\ntunnel_peers = [\"10.0.0.2; rm\"]\n",
              "network.tunnel_peers: must be an IPv4");
  expectError("[network]\ntunnel_peers = [\"10.0.0.2\"]\n", "needs network.tunnel_ip");
  expectError("[network]\ntunnel_ip = \"127.0.0.1\"\n", "network.tunnel_ip: must be a unicast");
  expectError("[network]\ntunnel_ip = \"10.0.0.1\"\ntunnel_peers = [\"239.1.1.1\"]\n",
              "network.tunnel_peers: must be a unicast");
  expectError("[network]\nvlan_bridge = \"br-int\"\n", "another bridge");
  expectError("[network]\ntunnel_ip = \"10.0.0.1\"\ntunnel_peers = [\"10.0.0.1\"]\n",
              "this host's own");
  expectError("[network]\ntunnel_ip = \"10.0.0.1\"\ntunnel_peers = [\"10.0.0.2\", \"10.0.0.2\"]\n",
              "listed twice");
  expectError(
      "[cluster]\nmode = \"member\"\n[network]\ntunnel_ip = \"10.0.0.1\"\n"
      "tunnel_peers = [\"10.0.0.2\"]\n",
      "network.tunnel_peers is not allowed with cluster.mode member");
}

TEST(Config, TunnelPeers) {
  auto c = parseConfig("[network]\ntunnel_ip = \"192.0.2.1\"\ntunnel_peers = []\n", "t.toml");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_TRUE(c->network.tunnel_peers.empty());
  c = parseConfig(
      "[network]\ntunnel_ip = \"192.0.2.1\"\ntunnel_peers = [\"192.0.2.2\", \"192.0.2.3\"]\n",
      "t.toml");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->network.tunnel_ip, "192.0.2.1");
  EXPECT_EQ(c->network.tunnel_peers, (std::vector<std::string>{"192.0.2.2", "192.0.2.3"}));
}

TEST(Config, DefaultFileParsesBackToDefaults) {
  auto c = parseConfig(defaultConfigToml(), "default");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  Config d;
  EXPECT_EQ(c->api.listen, d.api.listen);
  EXPECT_EQ(c->vm.max_memory_mib, d.vm.max_memory_mib);
  // Uncommenting every key gives a valid file too.
  std::string text = defaultConfigToml();
  std::string uncommented;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.size() > 1 && line[0] == '#' && line[1] != ' ' && line[1] != '(') line = line.substr(1);
    uncommented += line + "\n";
  }
  auto u = parseConfig(uncommented, "uncommented");
  ASSERT_TRUE(u.has_value()) << u.error().message << "\n" << uncommented;
}

TEST(Config, MissingFile) {
  EXPECT_TRUE(loadConfig("/nonexistent/qiaod.toml", false).has_value());
  EXPECT_FALSE(loadConfig("/nonexistent/qiaod.toml", true).has_value());
}

TEST(Config, OperatorDocumentationIsTheGeneratedReference) {
  std::ifstream in(std::string(QIAO_TEST_SOURCE_DIR) + "/docs/operators/configuration.md");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), configReferenceMarkdown())
      << "docs/operators/configuration.md is stale: regenerate it with "
         "`qiaod config reference > docs/operators/configuration.md`";
  for (const char* key : {"listen", "max_body_bytes", "accelerator", "shutdown_timeout_s",
                          "console_log_max_bytes", "level", "uri", "workers"}) {
    EXPECT_NE(ss.str().find(std::string("`") + key + "`"), std::string::npos) << key;
  }
}

}  // namespace
}  // namespace qiao
