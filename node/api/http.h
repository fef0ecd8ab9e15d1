// The node API's request and response as the handlers see them: plain values, no Beast.
// The HTTPS server (server.cc) turns the wire into an ApiRequest and an ApiResponse back.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/event_bus.h"

namespace qiao {

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
  std::string peer_error;         // why the certificate yields no identity, when it does not
  std::string remote;             // "127.0.0.1:53422"
};

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Set for a stream of server-sent events (GET /v1/events): the server keeps the connection
  // and writes every published event for which this returns true.
  std::function<bool(const Event&)> event_filter;
};

using RequestHandler = std::function<ApiResponse(const ApiRequest&)>;

}  // namespace qiao
