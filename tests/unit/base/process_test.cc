#include "base/process.h"

#include <gtest/gtest.h>

#include <chrono>

namespace qiao {
namespace {

TEST(Process, CapturesOutputAndExitCode) {
  auto r = runProcess({.argv = {"sh", "-c", "echo out; echo err >&2; exit 3"}});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_FALSE(r->timed_out);
}

TEST(Process, ArgumentsAreNeverInterpretedByAShell) {
  std::string hostile = "a'b\"c; rm -rf / $(id) `id` && echo pwned";
  auto r = runProcess({.argv = {"printf", "%s", hostile}});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->out, hostile);
}

TEST(Process, FeedsStdin) {
  std::string big(3 << 20, 'x');
  auto r = runProcess({.argv = {"wc", "-c"}, .stdin_data = big});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::stoul(r->out), big.size());
}

TEST(Process, KillsAtTheTimeout) {
  auto start = std::chrono::steady_clock::now();
  auto r = runProcess({.argv = {"sleep", "10"}, .timeout_ms = 200});
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->timed_out);
  EXPECT_LT(took, std::chrono::seconds(4));
}

TEST(Process, CapsOutputButLetsTheProgramFinish) {
  auto r = runProcess({.argv = {"sh", "-c", "head -c 5000000 /dev/zero; echo done >&2"},
                       .max_output_bytes = 1000});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->out.size(), 1000u);
  EXPECT_EQ(r->err, "done\n");
  EXPECT_EQ(r->exit_code, 0);
}

TEST(Process, MissingProgramIsNotFound) {
  auto r = runProcess({.argv = {"/nonexistent/program"}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(runProcess({.argv = {}}).has_value());
}

TEST(Process, ExtraEnvironment) {
  auto r = runProcess({.argv = {"sh", "-c", "echo $QIAO_X"}, .extra_env = {"QIAO_X=42"}});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->out, "42\n");
}

}  // namespace
}  // namespace qiao
