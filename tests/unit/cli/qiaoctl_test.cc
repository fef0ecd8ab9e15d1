#include "node/cli/qiaoctl.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "node/cli/client.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;

int run(std::vector<std::string> args, std::string* out = nullptr) {
  CliIo io;
  std::FILE* o = std::tmpfile();
  std::FILE* e = std::tmpfile();
  io.out = o;
  io.err = e;
  int rc = runQiaoctl(args, io);
  if (out != nullptr) {
    std::rewind(o);
    char buf[8192] = {};
    *out = std::string(buf, std::fread(buf, 1, sizeof buf - 1, o));
  }
  std::fclose(o);
  std::fclose(e);
  return rc;
}

TEST(Qiaoctl, UsageErrorsExitTwoWithoutTouchingTheNetwork) {
  EXPECT_EQ(run({}), 2);
  EXPECT_EQ(run({"frobnicate"}), 2);
  EXPECT_EQ(run({"vm"}), 2);
  EXPECT_EQ(run({"vm", "explode", "x"}), 2);
  EXPECT_EQ(run({"vm", "list", "--bogus"}), 2);
  EXPECT_EQ(run({"task", "list", "--state"}), 2);
  EXPECT_EQ(run({"-o", "yaml", "vm", "list"}), 2);
  EXPECT_EQ(run({"host", "extra"}), 2);
}

TEST(Qiaoctl, HelpIsEverywhere) {
  std::string out;
  EXPECT_EQ(run({"--help"}, &out), 0);
  EXPECT_NE(out.find("vm list"), std::string::npos);
  EXPECT_EQ(run({"vm", "--help"}, &out), 0);
  EXPECT_NE(out.find("console-log"), std::string::npos);
  EXPECT_EQ(run({"vm", "create", "--help"}, &out), 0);
  EXPECT_EQ(run({"task", "wait", "--help"}, &out), 0);
  EXPECT_NE(out.find("--timeout"), std::string::npos);
  EXPECT_EQ(run({"host", "--help"}, &out), 0);
  EXPECT_EQ(run({"--version"}, &out), 0);
  EXPECT_NE(out.find("qiaoctl"), std::string::npos);
}

TEST(Qiaoctl, ConfigurationErrorsAreClear) {
  auto dir = fs::temp_directory_path() / ("qiaoctl-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "bad.toml") << "endpoint = \"https://127.0.0.1:1\"\nsurprise = \"x\"\n";
  auto bad = loadClientConfig((dir / "bad.toml").string());
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("surprise"), std::string::npos);
  std::ofstream(dir / "ok.toml") << "endpoint = \"https://[::1]:9\"\nca = \"ca.crt\"\ncert = \"/abs/c\"\nkey = \"k\"\n";
  auto ok = loadClientConfig((dir / "ok.toml").string());
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->ca, (dir / "ca.crt").string());
  EXPECT_EQ(ok->cert, "/abs/c");
  setenv("QIAO_CONFIG", (dir / "ok.toml").c_str(), 1);
  EXPECT_TRUE(loadClientConfig("").has_value());
  unsetenv("QIAO_CONFIG");
  EXPECT_EQ(run({"--config", (dir / "missing.toml").string(), "vm", "list"}), 1);
  auto missing_ca = ApiClient::create(*ok);
  ASSERT_FALSE(missing_ca.has_value());
  EXPECT_NE(missing_ca.error().message.find("ca.crt"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Qiaoctl, TablesAndAges) {
  EXPECT_EQ(formatTable({{"A", "BB"}, {"ccc", "d"}}), "A    BB\nccc  d\n");
  long long now = 1700000000;
  EXPECT_EQ(ageSince("2023-11-14T22:13:10.000Z", now), "10s");
  EXPECT_EQ(ageSince("2023-11-14T20:13:20Z", now), "2h");
  EXPECT_EQ(ageSince("garbage", now), "-");
}

TEST(Client, ErrorBodiesBecomeErrors) {
  HttpResponse r;
  r.status = 409;
  r.body = R"({"error":{"code":"conflict","message":"vm a/b is busy","details":{"subsystem":"store"}}})";
  Error e = errorFromResponse(r);
  EXPECT_EQ(e.code, ErrorCode::kConflict);
  EXPECT_EQ(e.message, "vm a/b is busy");
  EXPECT_EQ(e.subsystem, "store");
  r.status = 502;
  r.body = "<html>";
  EXPECT_EQ(errorFromResponse(r).message, "HTTP 502");
}

TEST(Client, RefusesBadEndpoints) {
  ClientConfig c;
  c.endpoint = "http://127.0.0.1:8443";
  EXPECT_FALSE(ApiClient::create(c).has_value());
  c.endpoint = "https://[::1";
  EXPECT_FALSE(ApiClient::create(c).has_value());
}

}  // namespace
}  // namespace qiao
