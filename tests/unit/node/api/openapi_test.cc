// docs/api/openapi.yaml and the route table the node serves (its modules' registrations, as
// NodeServices makes them) must agree: every route served is documented with its method,
// minimum role and query parameters, and nothing is documented that is not served.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "node/api/api.h"
#include "node/state/states.h"
#include "tests/doubles/test_node.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;

struct DocumentedRoute {
  std::string method, path, min_role;
  std::set<std::string> query;  // the query parameters declared, path-level ones included
  bool operator<(const DocumentedRoute& o) const {
    return std::tie(method, path, min_role, query) <
           std::tie(o.method, o.path, o.min_role, o.query);
  }
};

// A parameter as the spec declares it: its name and whether it is in the query.
struct Parameter {
  std::string name;
  bool in_query = false;
};

// The spec's reusable parameters (components/parameters), by the name a $ref uses.
std::map<std::string, Parameter> readComponentParameters(const std::vector<std::string>& lines) {
  std::map<std::string, Parameter> out;
  const std::regex key_re(R"(^    (\w+):\s*$)");
  const std::regex name_re(R"(^      name:\s*(\S+)\s*$)");
  const std::regex in_re(R"(^      in:\s*(\w+)\s*$)");
  bool in_components = false, in_parameters = false;
  std::string key;
  for (const auto& line : lines) {
    if (line == "components:") in_components = true;
    if (!in_components) continue;
    if (line == "  parameters:") {
      in_parameters = true;
      continue;
    }
    if (in_parameters && line.size() > 2 && line[2] != ' ') break;
    if (!in_parameters) continue;
    std::smatch m;
    if (std::regex_match(line, m, key_re)) {
      key = m[1];
    } else if (std::regex_match(line, m, name_re)) {
      out[key].name = m[1];
    } else if (std::regex_match(line, m, in_re)) {
      out[key].in_query = m[1] == "query";
    }
  }
  return out;
}

std::set<DocumentedRoute> readOpenApi(const std::string& file) {
  std::ifstream in(file);
  EXPECT_TRUE(in.good()) << "cannot read " << file;
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  const auto components = readComponentParameters(lines);

  const std::regex path_re(R"(^  (/[^:]*):\s*$)");
  const std::regex method_re(R"(^    (get|post|put|patch|delete):\s*$)");
  const std::regex role_re(R"(^      x-min-role:\s*(\w+)\s*$)");
  // A parameter of the path (indent 6) or of an operation (indent 8): a $ref, or a name
  // whose `in` follows.
  const std::regex ref_re(R"re(^( {6}| {8})- \{\$ref: "#/components/parameters/(\w+)"\}\s*$)re");
  const std::regex named_re(R"(^( {6}| {8})- name:\s*(\S+)\s*$)");
  const std::regex in_re(R"(^( {8}| {10})in:\s*(\w+)\s*$)");

  struct Operation {
    std::string min_role;
    std::set<std::string> query;
  };
  std::map<std::pair<std::string, std::string>, Operation> operations;
  std::set<std::string> path_query;  // the current path's own query parameters
  bool in_paths = false;
  std::string path, method, pending_name;
  auto addQuery = [&](const std::string& name) {
    if (method.empty()) {
      path_query.insert(name);
    } else {
      operations[{method, path}].query.insert(name);
    }
  };
  for (const auto& line : lines) {
    if (line == "paths:") {
      in_paths = true;
      continue;
    }
    if (in_paths && !line.empty() && line[0] != ' ') break;
    if (!in_paths) continue;
    std::smatch m;
    if (std::regex_match(line, m, path_re)) {
      path = m[1];
      method.clear();
      path_query.clear();
    } else if (std::regex_match(line, m, method_re)) {
      method = m[1];
      for (auto& c : method) c = static_cast<char>(std::toupper(c));
      operations[{method, path}].query = path_query;
    } else if (std::regex_match(line, m, role_re)) {
      operations[{method, path}].min_role = m[1];
    } else if (std::regex_match(line, m, ref_re)) {
      auto p = components.find(m[2]);
      EXPECT_NE(p, components.end()) << "unknown parameter " << m[2] << " in " << path;
      if (p != components.end() && p->second.in_query) addQuery(p->second.name);
    } else if (std::regex_match(line, m, named_re)) {
      pending_name = m[2];
    } else if (std::regex_match(line, m, in_re)) {
      if (m[2] == "query") addQuery(pending_name);
      pending_name.clear();
    }
  }
  std::set<DocumentedRoute> out;
  for (const auto& [key, op] : operations) {
    if (!op.min_role.empty()) out.insert({key.first, key.second, op.min_role, op.query});
  }
  return out;
}

std::string describe(const DocumentedRoute& r) {
  std::string query;
  for (const auto& q : r.query) query += (query.empty() ? "" : ", ") + q;
  return r.method + " " + r.path + " (min role " + r.min_role +
         ", query parameters: " + (query.empty() ? "none" : query) + ")";
}

TEST(OpenApi, DocumentsExactlyTheServedRoutes) {
  const fs::path dir = fs::temp_directory_path() / ("qiao-openapi-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::set<DocumentedRoute> served;
  {
    auto node = buildTestNode(dir);
    ASSERT_TRUE(node) << node.error().describe();
    for (const auto& r : (*node)->api().routes().routes()) {
      const auto& q = r.info.allowed_query;
      served.insert({r.info.method, r.info.pattern, r.info.min_role, {q.begin(), q.end()}});
    }
  }
  fs::remove_all(dir);

  auto documented = readOpenApi(std::string(QIAO_TEST_SOURCE_DIR) + "/docs/api/openapi.yaml");
  for (const auto& r : served) {
    EXPECT_TRUE(documented.contains(r))
        << describe(r) << " is served but not documented so in docs/api/openapi.yaml";
  }
  for (const auto& r : documented) {
    EXPECT_TRUE(served.contains(r)) << describe(r) << " is documented but not served so";
  }
  EXPECT_GE(served.size(), 12u);
}

// The values a property of a schema (components/schemas/<schema>/properties/<property>) may
// take, as its `enum: [...]` lists them (on the property's line or below it); empty when none.
std::vector<std::string> schemaEnum(const std::vector<std::string>& lines,
                                    const std::string& schema, const std::string& property) {
  const std::regex list_re(R"(enum:\s*\[([^\]]*)\])");
  bool in_schema = false, in_property = false;
  for (const auto& line : lines) {
    if (line == "    " + schema + ":") {
      in_schema = true;
      continue;
    }
    if (!in_schema) continue;
    if (line.size() > 4 && line.starts_with("    ") && line[4] != ' ') break;  // next schema
    if (line.starts_with("        " + property + ":")) {
      in_property = true;
    } else if (in_property && !line.starts_with("          ")) {
      break;  // the property ended without an enum
    }
    std::smatch m;
    if (in_property && std::regex_search(line, m, list_re)) {
      std::vector<std::string> out;
      std::stringstream items(m[1].str());
      for (std::string item; std::getline(items, item, ',');) {
        item.erase(0, item.find_first_not_of(' '));
        item.erase(item.find_last_not_of(' ') + 1);
        out.push_back(item);
      }
      return out;
    }
  }
  return {};
}

template <typename E>
std::vector<std::string> namesOf() {
  std::vector<std::string> out;
  for (const auto& [value, name] : EnumNames<E>::kNames) out.emplace_back(name);
  return out;
}

// The states and kinds the API documents are exactly the names the node gives them
// (node/state/states.h), in the same order.
TEST(OpenApi, DocumentsTheNamesOfStatesAndKinds) {
  std::ifstream in(std::string(QIAO_TEST_SOURCE_DIR) + "/docs/api/openapi.yaml");
  ASSERT_TRUE(in.good());
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  EXPECT_EQ(schemaEnum(lines, "Vm", "state"), namesOf<VmState>());
  EXPECT_EQ(schemaEnum(lines, "Task", "kind"), namesOf<TaskKind>());
  EXPECT_EQ(schemaEnum(lines, "Task", "state"), namesOf<TaskState>());
  EXPECT_EQ(schemaEnum(lines, "Image", "state"), namesOf<ImageState>());
  EXPECT_EQ(schemaEnum(lines, "Network", "state"), namesOf<NetworkState>());
  // VolumeState's "resizing" is in the table but no volume is ever put in it, and the spec
  // leaves it out: every name the spec lists is the table's.
  for (const auto& name : schemaEnum(lines, "Volume", "state")) {
    EXPECT_TRUE(parseEnum<VolumeState>(name).has_value()) << name;
  }
  EXPECT_FALSE(schemaEnum(lines, "Volume", "state").empty());
}

}  // namespace
}  // namespace qiao
