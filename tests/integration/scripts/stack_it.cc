// scripts/stack against the real stack: `up` right after qiaod was killed with SIGKILL brings
// it back, even while the dead daemon is still a zombie (on hosts whose PID 1 reaps late, a
// dead qiaod kept its pid file's /proc entry and used to count as running).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/integration/harness.h"

namespace qiao::testing {
namespace {

// The state letter of /proc/PID/stat ('Z' for a zombie), or '\0' when there is no such process.
char processState(pid_t pid) {
  std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  auto end = stat.rfind(") ");
  return end == std::string::npos || end + 2 >= stat.size() ? '\0' : stat[end + 2];
}

pid_t pidFromFile(const std::string& file) {
  std::string text = readFile(file);
  try {
    return static_cast<pid_t>(std::stol(text));
  } catch (...) {
    return -1;
  }
}

TEST(StackScript, UpRightAfterSigkillBringsQiaodBackWhileTheDeadOneIsAZombie) {
  // The daemons scripts/stack starts are orphaned when it exits; as their subreaper this
  // process adopts them and reaps the killed one only at the end, so the zombie that a slow
  // PID 1 leaves for a moment stays one for the whole test.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  Qiaod qiaod;  // its configuration and PKI; scripts/stack runs it
  const Identity& admin = qiaod.identity("stack-admin", "admin");
  const std::string pid_file = qiaod.dir() + "/qiaod.pid";
  const std::vector<std::string> env = {
      "QIAOD_BIN=" + qiaodBinary(), "QIAO_CONFIG_FILE=" + qiaod.configFile(),
      "QIAO_STATE_DIR=" + qiaod.dir() + "/state", "QIAOD_PIDFILE=" + pid_file,
      "QIAOD_LOG=" + qiaod.dir() + "/qiaod.log"};
  auto stack = [&](const std::string& command) {
    return runCommand({sourceDir() + "/scripts/stack", command, "--no-ceph", "--no-ovs"}, 120000,
                      {}, env);
  };

  auto up = stack("up");
  ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  const pid_t first = pidFromFile(pid_file);
  ASSERT_GT(first, 0);
  ASSERT_EQ(readFile("/proc/" + std::to_string(first) + "/comm"), "qiaod\n");

  ASSERT_EQ(::kill(first, SIGKILL), 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (processState(first) != 'Z' && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(processState(first), 'Z') << "the killed qiaod should be a zombie until reaped";

  auto status = stack("status");
  EXPECT_EQ(status.exit_code, 3) << status.out << status.err;
  EXPECT_NE(status.out.find("qiaod     stopped"), std::string::npos) << status.out;

  up = stack("up");
  EXPECT_EQ(up.exit_code, 0) << up.out << up.err;
  EXPECT_NE(up.out.find("qiaod started"), std::string::npos) << up.out << up.err;
  const pid_t second = pidFromFile(pid_file);
  EXPECT_GT(second, 0);
  EXPECT_NE(second, first);
  const char state = processState(second);
  EXPECT_TRUE(state != '\0' && state != 'Z') << "the new qiaod should be alive, is " << state;

  // The new one serves: its identity's healthz answers.
  std::string addr = readFile(qiaod.dir() + "/state/qiaod.addr");
  ASSERT_NE(addr.find('\n'), std::string::npos);
  ClientConfig config;
  config.endpoint = "https://" + addr.substr(0, addr.find('\n'));
  config.ca = admin.ca;
  config.cert = admin.cert;
  config.key = admin.key;
  auto client = ApiClient::create(config);
  ASSERT_TRUE(client) << client.error().describe();
  auto health = call(*client, "GET", "/v1/healthz");
  EXPECT_EQ(health.status, 200) << health.raw;

  // Stopped the way an operator would, then both reaped.
  auto down = runCommand({"kill", "-TERM", std::to_string(second)});
  EXPECT_EQ(down.exit_code, 0);
  int wstatus = 0;
  EXPECT_EQ(waitpid(first, &wstatus, 0), first);
  EXPECT_EQ(waitpid(second, &wstatus, 0), second);
}

}  // namespace
}  // namespace qiao::testing
