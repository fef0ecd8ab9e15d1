#include "node/forwarder.h"

#include "base/log.h"
#include "cluster/hosts.h"
#include "node/api/route_context.h"
#include "node/client/client.h"

namespace qiao {
namespace {

const Logger kLog("cluster");
constexpr size_t kIdlePerHost = 4;

}  // namespace

Forwarder::Forwarder(Membership& membership, ForwarderOptions options)
    : membership_(membership), options_(std::move(options)) {}

Forwarder::~Forwarder() = default;

std::unique_ptr<ApiClient> Forwarder::take(const std::string& endpoint, ApiResponse* refused) {
  {
    std::lock_guard lock(mutex_);
    auto& idle = idle_[endpoint];
    if (!idle.empty()) {
      auto client = std::move(idle.back());
      idle.pop_back();
      return client;
    }
  }
  ClientConfig config;
  config.endpoint = endpoint;
  config.ca = options_.ca_file;
  config.cert = options_.cert_file;
  config.key = options_.key_file;
  config.timeout_ms = options_.timeout_ms;
  auto client = ApiClient::create(config);
  if (!client) {
    *refused = errorResponse(ErrorCode::kUnavailable,
                             "cannot forward to " + endpoint + ": " + client.error().message);
    return nullptr;
  }
  return std::make_unique<ApiClient>(std::move(*client));
}

void Forwarder::give(const std::string& endpoint, std::unique_ptr<ApiClient> client) {
  std::lock_guard lock(mutex_);
  auto& idle = idle_[endpoint];
  if (idle.size() < kIdlePerHost) idle.push_back(std::move(client));
}

ApiResponse Forwarder::forward(const std::string& host, const RequestContext& ctx) {
  auto member = membership_.get(host);
  if (!member) {
    return errorResponse(ErrorCode::kUnavailable,
                         "the call is for host " + host +
                             ", which this member cannot look up: " + member.error().message);
  }
  if (member->state != HostState::kReady || member->record.endpoint.empty()) {
    Error e{ErrorCode::kUnavailable, "cluster",
            "the call is for host " + host + ", which is " + std::string(toString(member->state)),
            ""};
    ApiResponse response = errorResponse(e);
    response.headers.emplace_back("Retry-After", "5");
    return response;
  }
  const std::string& endpoint = member->record.endpoint;
  ApiResponse refused;
  auto client = take(endpoint, &refused);
  if (!client) return refused;
  client->setOnBehalfOf(ctx.caller->uri);
  const std::string& body = ctx.forward_body ? *ctx.forward_body : ctx.request.body;
  auto answer = client->request(
      ctx.request.method, ctx.request.target, body,
      ctx.request.content_type.empty() ? "application/json" : ctx.request.content_type);
  if (!answer) {
    kLog.warn("a forwarded call got no answer",
              {{"host", host}, {"target", ctx.request.target}, {"error", answer.error().message}});
    return errorResponse(ErrorCode::kUnavailable,
                         "host " + host + " (" + endpoint +
                             ") did not answer the forwarded call: " + answer.error().message);
  }
  give(endpoint, std::move(client));
  ApiResponse response;
  response.status = answer->status;
  response.content_type = answer->content_type;
  response.body = std::move(answer->body);
  for (const auto& [name, value] : answer->headers) {
    if (name == "Location" || name == "Retry-After" || name == "Allow") {
      response.headers.emplace_back(name, value);
    }
  }
  return response;
}

}  // namespace qiao
