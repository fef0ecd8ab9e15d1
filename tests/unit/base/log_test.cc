#include "base/log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "base/work_queue.h"

namespace qiao {
namespace {

TEST(Log, OneValidJsonObjectPerLineWithComponentAndIds) {
  std::FILE* f = std::tmpfile();
  Logger::setSink(f);
  Logger::setLevel(LogLevel::kInfo);
  Logger log("vm");
  log.info("hostile \"text\"\n\x01 \xff end", {{"vm", "acme/web1"}, {"task", "t-1"}});
  log.debug("not written");
  Logger::setSink(nullptr);
  std::rewind(f);
  char buf[4096] = {};
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  std::string text(buf, n);
  ASSERT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["component"], "vm");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["vm"], "acme/web1");
  EXPECT_EQ(j["task"], "t-1");
  EXPECT_NE(j["msg"].get<std::string>().find("hostile \"text\""), std::string::npos);
  EXPECT_FALSE(j.contains("node")) << "the process's sink names no node: the daemon's format";
}

std::vector<nlohmann::json> linesOf(std::FILE* f) {
  std::rewind(f);
  std::vector<nlohmann::json> out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, f) != nullptr) out.push_back(nlohmann::json::parse(buf));
  return out;
}

// Two simulated hosts in one process: each node's lines go to its own sink, named, from the
// thread that built it and from the workers it started; the process's sink gets none of them.
TEST(Log, TwoNodeSinksInOneProcessAreApart) {
  std::FILE* process = std::tmpfile();
  std::FILE* fa = std::tmpfile();
  std::FILE* fb = std::tmpfile();
  Logger::setSink(process);
  LogSink a("host-a", fa);
  LogSink b("host-b", fb, LogLevel::kWarn);
  const Logger log("vm");  // as a component's file-level logger: names no sink
  {
    LogScope scope(a);
    log.info("built a");
    WorkQueue workers("a-workers", 2);
    workers.post([&] { log.info("worker of a"); });
    workers.drain();
    std::thread other(withLogScope([&] { log.info("thread of a"); }));
    other.join();
    {
      LogScope inner(b);
      log.info("below b's level");
      log.warn("warned in b");
    }
    log.info("back in a");
  }
  log.info("no node");
  Logger("vm", b).error("bound to b");
  Logger::setSink(nullptr);

  auto in_a = linesOf(fa);
  ASSERT_EQ(in_a.size(), 4u);
  for (const auto& line : in_a) EXPECT_EQ(line["node"], "host-a") << line.dump();
  EXPECT_EQ(in_a[0]["msg"], "built a");
  EXPECT_EQ(in_a[1]["msg"], "worker of a");
  EXPECT_EQ(in_a[2]["msg"], "thread of a");
  EXPECT_EQ(in_a[3]["msg"], "back in a");
  auto in_b = linesOf(fb);
  ASSERT_EQ(in_b.size(), 2u);
  EXPECT_EQ(in_b[0]["msg"], "warned in b");
  EXPECT_EQ(in_b[1]["msg"], "bound to b");
  EXPECT_EQ(in_b[1]["node"], "host-b");
  auto in_process = linesOf(process);
  ASSERT_EQ(in_process.size(), 1u);
  EXPECT_EQ(in_process[0]["msg"], "no node");
  EXPECT_FALSE(in_process[0].contains("node"));
  for (std::FILE* f : {process, fa, fb}) std::fclose(f);
}

}  // namespace
}  // namespace qiao
