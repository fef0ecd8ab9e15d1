// Api: the node API's front: identity and authorization, the route table's dispatch, and the
// audit and metrics of every request. It turns an ApiRequest into an ApiResponse and never
// blocks the io thread: the server calls handle() on its handler threads. What each route
// does is its module's (routes.h); the Api only knows the table. Every request needs a client
// identity bound to a role; every mutating call, allowed or not, every refusal of a caller's
// identity or role, and everything the server could not read go to the hash-chained audit
// log (strangers' refusals as per-address summaries).
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "base/error.h"
#include "node/api/http.h"
#include "node/api/refusal_log.h"
#include "node/api/router.h"

namespace qiao {

class Store;
class Metrics;
struct AuditEntry;
struct Caller;
struct Identity;
struct RequestContext;

struct ApiOptions {
  Store& store;      // the identities' bindings, and the audit log
  Metrics& metrics;  // every request answered, by route and status
  std::string cluster;
  // Strangers' refusals: one entry in full, then a count, per address and interval.
  int audit_summary_interval_s = 60;
  // A cluster member's: sends the request to the member `host` for the caller (the answer is
  // that member's); unset on a standalone node, whose routes answer everything themselves.
  std::function<ApiResponse(const std::string& host, const RequestContext& ctx)> forward;
};

class Api {
 public:
  Api(ApiOptions options, RouteTable routes);
  ApiResponse handle(const ApiRequest& request);
  // The request line and headers, before the body is read (AdmitHandler): the route, the
  // caller, its role and the query are checked as handle() would, then the route's own
  // admission if it has one (an upload's). A refusal is counted and audited here.
  std::optional<ApiResponse> admit(ApiRequest& request);
  // Whether the request's body is streamed to a file (ServerOptions::streams_body).
  bool streamsBody(const std::string& method, const std::string& path) const;
  // Writes the audit log's summaries of strangers' refusals whose interval has ended (all of
  // them with `all`, at shutdown).
  void flushAudit(bool all);
  // Whether the identity is an admin of this node's cluster (the connection caps' reserve).
  bool isAdmin(const std::string& identity_uri, const std::string& serial);

  const RouteTable& routes() const { return routes_; }

 private:
  // Route, identity, role, query and names: what the request line and headers tell. An
  // answer refuses the request.
  std::optional<ApiResponse> authorize(RequestContext& ctx);
  // Metrics and audit of an answered request.
  void finish(const RequestContext& ctx, const ApiResponse& response,
              std::chrono::steady_clock::time_point started);
  Result<Caller> authenticate(const ApiRequest& request);
  Result<Caller> authenticateForwarded(const ApiRequest& request, const Identity& node);
  // The member that must answer this authorized request, when not this one.
  Result<std::optional<std::string>> locate(RequestContext& ctx);
  void audit(const RequestContext& ctx, int status);
  void writeSummaries(std::chrono::steady_clock::time_point now, bool all);
  void appendAudit(AuditEntry entry);

  ApiOptions options_;
  RouteTable routes_;
  RefusalLog strangers_;
};

}  // namespace qiao
