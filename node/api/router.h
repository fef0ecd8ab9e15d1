// RouteTable: every route the node API serves, each described once by the module that owns
// its resource (routes_*.cc): method, path pattern, minimum role, the query parameters it
// takes, whether its body is streamed to a file, and the handler (with, for a streamed route,
// the admission that runs before its body is read). The Api authorizes and dispatches from
// this table and the HTTPS server asks it which requests stream; nothing else matches paths.
// No Beast here: the table is plain values over http.h.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "node/api/http.h"

namespace qiao {

struct RequestContext;

// What a route is, as docs/api/openapi.yaml documents it.
struct RouteInfo {
  std::string method;                      // "GET", "POST", ...
  std::string pattern;                     // "/v1/vms/{name}/actions/{action}"
  std::string min_role;                    // "viewer" | "operator" | "admin" | "none" (open)
  std::vector<std::string> allowed_query;  // any other query parameter is refused (400)
  // The body goes to a file in the upload directory, not memory (ApiRequest::upload_*).
  bool streams_body = false;
  // Served without a client certificate (min_role "none"): only the cluster CA's certificate
  // and the join, whose token is its credential (routes_cluster.cc). The handler sees no
  // caller.
  bool open = false;
};

using RouteHandler = std::function<ApiResponse(RequestContext&)>;
// Runs once the caller is authorized, before the body is read: an answer refuses the request.
using RouteAdmission = std::function<std::optional<ApiResponse>(RequestContext&, ApiRequest&)>;
// Runs once the caller is authorized: the cluster member that must answer (the host of the VM
// the path names, say), or nullopt for this one; an error answers the request (a call
// forwarded to a member that does not hold the object). What the handler would refuse anyway
// (a VM that does not exist) is left to it.
using RouteLocator = std::function<Result<std::optional<std::string>>(RequestContext&)>;

struct Route {
  RouteInfo info;
  RouteHandler handler;
  RouteAdmission admit;  // optional
  RouteLocator locate;   // optional: answered here
};

// A role's rank: admin > operator > viewer > anything else (0).
int roleRank(std::string_view role);

class RouteTable {
 public:
  void add(Route route);

  struct Match {
    const Route* route = nullptr;               // null: no route of this method
    std::map<std::string, std::string> params;  // the pattern's {params}, from the path
    bool path_known = false;                    // some route has this path
    std::set<std::string> allowed_methods;      // the methods of the routes with this path
  };
  // The route of a percent-decoded path; {params} match one non-empty segment.
  Match match(const std::string& method, const std::string& path) const;
  // Whether that request's body is streamed (a route with streams_body).
  bool streamsBody(const std::string& method, const std::string& path) const;

  const std::vector<Route>& routes() const { return routes_; }
  std::vector<RouteInfo> infos() const;

 private:
  std::vector<Route> routes_;
};

}  // namespace qiao
