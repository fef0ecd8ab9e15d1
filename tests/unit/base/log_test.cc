#include "base/log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

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
}

}  // namespace
}  // namespace qiao
