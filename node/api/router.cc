#include "node/api/router.h"

#include <cstdlib>
#include <utility>

#include "base/log.h"

namespace qiao {
namespace {

std::vector<std::string> splitPath(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 1;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

// Matches "/v1/vms/{name}" against a path; fills the {params}.
bool matchPattern(const std::string& pattern, const std::vector<std::string>& parts,
                  std::map<std::string, std::string>* params) {
  auto want = splitPath(pattern);
  if (want.size() != parts.size()) return false;
  std::map<std::string, std::string> found;
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i].size() > 2 && want[i].front() == '{' && want[i].back() == '}') {
      if (parts[i].empty()) return false;
      found[want[i].substr(1, want[i].size() - 2)] = parts[i];
    } else if (want[i] != parts[i]) {
      return false;
    }
  }
  *params = std::move(found);
  return true;
}

}  // namespace

int roleRank(std::string_view role) {
  if (role == "admin") return 3;
  if (role == "operator") return 2;
  if (role == "viewer") return 1;
  return 0;
}

void RouteTable::add(Route route) {
  // A second route of one method and pattern, or one without a handler, is a programming
  // error of a module: caught by every test that builds the table.
  for (const auto& r : routes_) {
    if (r.info.method == route.info.method && r.info.pattern == route.info.pattern) {
      Logger("api").error("route registered twice",
                          {{"method", route.info.method}, {"pattern", route.info.pattern}});
      std::abort();
    }
  }
  // The routes served without a client certificate are these two and no others, whatever a
  // module registers: the CA's certificate (public) and the join (its token is the credential).
  const bool may_be_open =
      (route.info.method == "GET" && route.info.pattern == "/v1/cluster/ca") ||
      (route.info.method == "POST" && route.info.pattern == "/v1/cluster/join");
  if (route.info.open != (route.info.min_role == "none") || (route.info.open && !may_be_open)) {
    Logger("api").error("an open route must be min_role none and one of the enrollment routes",
                        {{"method", route.info.method}, {"pattern", route.info.pattern}});
    std::abort();
  }
  if (!route.handler || (!route.info.open && roleRank(route.info.min_role) == 0)) {
    Logger("api").error("route without a handler or a role",
                        {{"method", route.info.method}, {"pattern", route.info.pattern}});
    std::abort();
  }
  routes_.push_back(std::move(route));
}

RouteTable::Match RouteTable::match(const std::string& method, const std::string& path) const {
  Match out;
  auto parts = splitPath(path);
  for (const auto& route : routes_) {
    std::map<std::string, std::string> params;
    if (!matchPattern(route.info.pattern, parts, &params)) continue;
    out.path_known = true;
    out.allowed_methods.insert(route.info.method);
    if (route.info.method == method) {
      out.route = &route;
      out.params = std::move(params);
      break;
    }
  }
  return out;
}

bool RouteTable::streamsBody(const std::string& method, const std::string& path) const {
  const Route* route = match(method, path).route;
  return route != nullptr && route->info.streams_body;
}

std::vector<RouteInfo> RouteTable::infos() const {
  std::vector<RouteInfo> out;
  out.reserve(routes_.size());
  for (const auto& r : routes_) out.push_back(r.info);
  return out;
}

}  // namespace qiao
