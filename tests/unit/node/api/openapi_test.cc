// docs/api/openapi.yaml and the router must agree: every route served is documented with its
// method and minimum role, and nothing is documented that is not served.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "node/api/api.h"

namespace qiao {
namespace {

struct DocumentedRoute {
  std::string method, path, min_role;
  bool operator<(const DocumentedRoute& o) const {
    return std::tie(method, path, min_role) < std::tie(o.method, o.path, o.min_role);
  }
};

std::set<DocumentedRoute> readOpenApi(const std::string& file) {
  std::ifstream in(file);
  EXPECT_TRUE(in.good()) << "cannot read " << file;
  std::set<DocumentedRoute> out;
  const std::regex path_re(R"(^  (/[^:]*):\s*$)");
  const std::regex method_re(R"(^    (get|post|put|patch|delete):\s*$)");
  const std::regex role_re(R"(^      x-min-role:\s*(\w+)\s*$)");
  bool in_paths = false;
  std::string path, method;
  for (std::string line; std::getline(in, line);) {
    if (line == "paths:") {
      in_paths = true;
      continue;
    }
    if (in_paths && !line.empty() && line[0] != ' ') break;
    if (!in_paths) continue;
    std::smatch m;
    if (std::regex_match(line, m, path_re)) {
      path = m[1];
    } else if (std::regex_match(line, m, method_re)) {
      method = m[1];
      for (auto& c : method) c = static_cast<char>(std::toupper(c));
    } else if (std::regex_match(line, m, role_re)) {
      out.insert({method, path, m[1]});
    }
  }
  return out;
}

TEST(OpenApi, DocumentsExactlyTheServedRoutes) {
  auto documented = readOpenApi(std::string(QIAO_TEST_SOURCE_DIR) + "/docs/api/openapi.yaml");
  std::set<DocumentedRoute> served;
  for (const auto& r : routeTable()) served.insert({r.method, r.pattern, r.min_role});
  for (const auto& r : served) {
    EXPECT_TRUE(documented.contains(r))
        << r.method << " " << r.path << " (min role " << r.min_role
        << ") is served but not documented so in docs/api/openapi.yaml";
  }
  for (const auto& r : documented) {
    EXPECT_TRUE(served.contains(r))
        << r.method << " " << r.path << " (min role " << r.min_role
        << ") is documented but not served";
  }
  EXPECT_GE(served.size(), 12u);
}

}  // namespace
}  // namespace qiao
