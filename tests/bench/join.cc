// bench_join: enrollment's time, from the token to the new host ready, against a running
// simulated cluster (`scripts/simcluster up NAME --hosts 1`; this program starts none). Each
// round: the admin makes a token (qiaoctl, through h1), `qiaod join` runs on this machine (its
// address on the cluster's subnet, libvirt's test driver, TCG, a scratch directory), the joined
// qiaod starts (network off) and the round ends when h1 shows the host ready. Then that qiaod is
// stopped and the host removed. Prints token->joined (files written) and token->ready.
// Bounded: --rounds rounds (default 3), 60 s each at most.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/bench/bench_util.h"
#include "tests/integration/harness.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using qiao::testing::runCommand;

std::string argOf(int argc, char** argv, const char* name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == name) return argv[i + 1];
  }
  return fallback;
}

double secondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace qiao::bench;
  if (argc > 1 && std::string(argv[1]) == "--help") {
    std::printf("Usage: bench_join [--cluster NAME (default benchj)] [--rounds N (default 3)]\n");
    return 0;
  }
  const std::string cluster = argOf(argc, argv, "--cluster", "benchj");
  const int rounds = std::atoi(argOf(argc, argv, "--rounds", "3").c_str());
  const std::string simcluster = qiao::testing::sourceDir() + "/scripts/simcluster";
  auto env_run = runCommand({simcluster, "env", cluster}, 30000);
  std::map<std::string, std::string> env;
  std::istringstream lines(env_run.out);
  for (std::string line; std::getline(lines, line);) {
    auto eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  if (env_run.exit_code != 0 || env["SIMC_h1_ADDR"].empty() || env["SIMC_ROOT_ADDR"].empty()) {
    std::fprintf(stderr, "no simulated cluster %s (scripts/simcluster up %s --hosts 1): %s\n",
                 cluster.c_str(), cluster.c_str(), env_run.err.c_str());
    return 1;
  }
  const std::string endpoint = "https://" + env["SIMC_h1_ADDR"] + ":8443";
  auto qiaoctl = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv_ = {qiao::testing::qiaoctlBinary(), "--config",
                                      env["SIMC_CONFIG"], "--endpoint", endpoint};
    argv_.insert(argv_.end(), args.begin(), args.end());
    return runCommand(argv_, 30000);
  };
  const fs::path scratch =
      fs::temp_directory_path() / ("qiao-bench-join-" + std::to_string(getpid()));
  std::vector<double> joined_s, ready_s;
  for (int round = 0; round < rounds; ++round) {
    const std::string name = "bj" + std::to_string(round + 1);
    const fs::path dir = scratch / name;
    fs::remove_all(dir);
    const auto t0 = std::chrono::steady_clock::now();
    auto token = qiaoctl({"cluster", "token", "create", "--expires", "5m"});
    if (token.exit_code != 0) {
      std::fprintf(stderr, "token: %s\n", token.err.c_str());
      return 1;
    }
    const std::string port = std::to_string(18443 + round);
    auto join =
        qiao::testing::joinFromHere(endpoint, name, env["SIMC_ROOT_ADDR"], dir.string(),
                                    token.out.substr(0, token.out.find('\n')), {"--port", port});
    if (join.exit_code != 0) {
      std::fprintf(stderr, "join: %s%s\n", join.out.c_str(), join.err.c_str());
      return 1;
    }
    joined_s.push_back(secondsSince(t0));
    std::ofstream(dir / "qiaod.toml", std::ios::app)
        << "[network]\nmode = \"off\"\n[log]\nfile = \"" << (dir / "qiaod.log").string() << "\"\n";
    pid_t pid = fork();
    if (pid == 0) {
      const std::string config = (dir / "qiaod.toml").string();
      execl(qiao::testing::qiaodBinary().c_str(), "qiaod", "--config", config.c_str(), "run",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    bool ready = false;
    while (secondsSince(t0) < 60) {
      auto host = qiaoctl({"-o", "json", "host", "get", name});
      json j = json::parse(host.out, nullptr, false);
      if (j.is_object() && j.value("state", "") == "ready") {
        ready = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    const double to_ready = secondsSince(t0);
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    auto removed = qiaoctl({"host", "remove", name});
    if (!ready) {
      std::fprintf(stderr, "%s did not become ready within 60 s (log %s)\n", name.c_str(),
                   (dir / "qiaod.log").c_str());
      return 1;
    }
    ready_s.push_back(to_ready);
    std::printf("round %d: token->joined %.2f s, token->ready %.2f s%s\n", round + 1,
                joined_s.back(), to_ready, removed.exit_code == 0 ? "" : " (remove failed)");
  }
  fs::remove_all(scratch);
  std::printf("token->joined (files written)  p50 %.2f s  max %.2f s\n", percentile(joined_s, 50),
              percentile(joined_s, 100));
  std::printf("token->ready (record ready)    p50 %.2f s  max %.2f s\n", percentile(ready_s, 50),
              percentile(ready_s, 100));
  return 0;
}
