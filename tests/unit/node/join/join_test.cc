// `qiaod join`'s arguments: names and addresses are checked before anything is done, the token
// may come from the environment, and the steps that need no cluster refuse early (a token that
// is not one, an existing configuration without --force) with the documented exit codes.
#include "node/join.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace qiao {
namespace {

namespace fs = std::filesystem;

const std::string kToken =
    "qiao-join.0123456789abcdef.0123456789abcdef0123456789abcdef." + std::string(64, 'a');

TEST(JoinArgs, NamesAndAddressesAreCheckedAndTheTokenMayComeFromTheEnvironment) {
  auto ok = parseJoinArgs({"--endpoint", "https://10.0.0.1:8443", "--token", kToken, "--address",
                           "10.0.0.7", "--address", "fd00::7", "--name", "h7", "--port", "9443"});
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->addresses, (std::vector<std::string>{"10.0.0.7", "fd00::7"}));
  EXPECT_EQ(ok->port, 9443);
  EXPECT_EQ(ok->name, "h7");
  for (const auto& bad : std::vector<std::vector<std::string>>{
           {"--endpoint", "https://x", "--token", kToken, "--address", "10.0.0.7; rm -rf /"},
           {"--endpoint", "https://x", "--token", kToken, "--address", "10.0.0.7", "--name",
            "H7 x"},
           {"--endpoint", "https://x", "--token", kToken, "--address", "10.0.0.7", "--name",
            "../etc"},
           {"--endpoint", "https://x", "--token", kToken},
           {"--token", kToken, "--address", "10.0.0.7"},
           {"--endpoint", "https://x", "--token", kToken, "--address", "10.0.0.7", "--port", "0"},
           {"--endpoint", "https://x", "--token", kToken, "--address", "10.0.0.7", "--accelerator",
            "hvf"},
           {"--endpoint", "https://x", "--token", kToken, "--address", "10.0.0.7", "--bogus"},
           {"--endpoint", "https://x", "--token", kToken, "--address", "10.0.0.7", "--tunnel-ip",
            "x"}}) {
    EXPECT_FALSE(parseJoinArgs(bad)) << bad.back();
  }
  ::setenv("QIAO_JOIN_TOKEN", kToken.c_str(), 1);
  auto from_env =
      parseJoinArgs({"--endpoint", "https://x", "--address", "10.0.0.7", "--name", "h7"});
  ::unsetenv("QIAO_JOIN_TOKEN");
  ASSERT_TRUE(from_env) << from_env.error().message;
  EXPECT_EQ(from_env->token, kToken);
}

TEST(JoinRun, RefusesBeforeAnyNetworkStepAndWritesNothing) {
  const fs::path dir = fs::temp_directory_path() / ("qiao-join-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto options = *parseJoinArgs({"--endpoint", "https://127.0.0.1:1", "--token", kToken,
                                 "--address", "127.0.0.1", "--name", "h7"});
  options.config_path = (dir / "qiaod.toml").string();
  options.pki_dir = (dir / "pki").string();
  options.state_dir = (dir / "state").string();
  options.ceph_dir = (dir / "ceph").string();
  options.timeout_ms = 2000;
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  // An existing configuration is kept without --force.
  std::ofstream(options.config_path) << "# mine\n";
  EXPECT_EQ(runJoin(options, out, err), kJoinUsage);
  fs::remove(options.config_path);
  // A token that is not one.
  JoinOptions bad = options;
  bad.token = "qiao-join.x";
  EXPECT_EQ(runJoin(bad, out, err), kJoinUsage);
  // Nothing answers there: a failure, and the staged key is gone with its directory.
  EXPECT_EQ(runJoin(options, out, err), kJoinFailed);
  EXPECT_FALSE(fs::exists(options.config_path));
  EXPECT_FALSE(fs::exists(options.pki_dir));
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) entries += e.path().empty() ? 0 : 1;
  EXPECT_EQ(entries, 0u) << "no staging directory left";
  std::fclose(out);
  std::fclose(err);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qiao
