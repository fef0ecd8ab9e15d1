// Forwarder: how a cluster member sends a call to the member that must answer it (the host of
// the VM it names, the leader for a placement). It speaks the node API over mutual TLS with
// this host's node certificate, naming the caller in Qiao-On-Behalf-Of; the member that
// receives it trusts that header only from a node certificate of the cluster, reads the
// caller's role again from the cluster's bindings, and audits the call as "<caller> via
// <node>". The answer, errors included, is the other member's, passed back as it came; a
// member that cannot be reached is a 503 naming it. Connections are kept, a few per host.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "node/api/http.h"

namespace qiao {

class ApiClient;
class Membership;
struct RequestContext;

struct ForwarderOptions {
  std::string ca_file, cert_file, key_file;  // the cluster CA; this node's certificate and key
  int timeout_ms = 60000;
};

class Forwarder {
 public:
  Forwarder(Membership& membership, ForwarderOptions options);
  ~Forwarder();
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  ApiResponse forward(const std::string& host, const RequestContext& ctx);

 private:
  std::unique_ptr<ApiClient> take(const std::string& endpoint, ApiResponse* refused);
  void give(const std::string& endpoint, std::unique_ptr<ApiClient> client);

  Membership& membership_;
  const ForwarderOptions options_;
  std::mutex mutex_;
  std::map<std::string, std::vector<std::unique_ptr<ApiClient>>> idle_;  // by endpoint
};

}  // namespace qiao
