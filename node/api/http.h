// The node API's request and response as the handlers see them: plain values, no Beast.
// The HTTPS server (server.cc) turns the wire into an ApiRequest and an ApiResponse back.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/event_bus.h"

namespace qiao {

// The header with which a member forwards a request for the identity that sent it.
inline constexpr char kOnBehalfOfHeader[] = "Qiao-On-Behalf-Of";

struct ApiRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as received, with the query string
  std::string path;    // percent-decoded path, no query
  std::multimap<std::string, std::string> query;
  std::string content_type;
  std::string body;
  // A streamed upload (ServerOptions::streams_body): the file holding the body, its size and
  // SHA-256. The handler renames the file to keep it; the server deletes it otherwise.
  std::string upload_file;
  int64_t upload_bytes = 0;
  std::string upload_sha256;
  std::string peer_identity_uri;  // from the client certificate's URI SAN; "" without one
  std::string peer_serial;        // the client certificate's serial (hex); "" without one
  std::string peer_error;         // why the certificate yields no identity, when it does not
  // Qiao-On-Behalf-Of: the identity a member of the cluster forwards this request for (honoured
  // only when the certificate is a node's of this cluster; docs/operators/cluster.md).
  std::string on_behalf_of;
  std::string remote;  // "127.0.0.1:53422"
  // The body's length as the headers declare it; -1 when they do not (chunked, or none).
  int64_t declared_length = -1;
  // What the admission attached for as long as the request lives (an upload's slot).
  std::shared_ptr<void> admission;
  // Set when the server could not take the request as sent (413, broken framing, a bad
  // target, a cut-off upload): the handler answers with it, and audits it.
  std::optional<Error> transport_error;
};

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Set for a stream of server-sent events (GET /v1/events): the server keeps the connection
  // and writes every published event for which this returns true.
  std::function<bool(const Event&)> event_filter;
  // Held by the server for as long as it serves the response (an event stream's slot).
  std::shared_ptr<void> hold;
};

using RequestHandler = std::function<ApiResponse(const ApiRequest&)>;
// Called with the request line and headers only, before any byte of a body is read: an answer
// refuses the request (its body is never read, let alone stored); none lets it go on. It may
// attach to the request what must live as long as the request does (ApiRequest::admission).
using AdmitHandler = std::function<std::optional<ApiResponse>(ApiRequest&)>;

}  // namespace qiao
