#include "node/pki/identity.h"

#include "base/names.h"

namespace qiao {

std::string Identity::uri() const {
  return "qiao://" + cluster + "/" + std::string(identityKindName(kind)) + "/" + name;
}

std::string_view identityKindName(IdentityKind kind) {
  switch (kind) {
    case IdentityKind::kNode: return "node";
    case IdentityKind::kUser: return "user";
    case IdentityKind::kPeer: return "peer";
    case IdentityKind::kInstaller: return "installer";
  }
  return "user";
}

Result<IdentityKind> parseIdentityKind(std::string_view text) {
  for (auto k : {IdentityKind::kNode, IdentityKind::kUser, IdentityKind::kPeer,
                 IdentityKind::kInstaller}) {
    if (text == identityKindName(k)) return k;
  }
  return makeError(ErrorCode::kInvalidArgument, "pki",
                   "kind " + quoteForMessage(text) + " is not one of node, user, peer, installer");
}

std::string_view roleName(Role role) {
  switch (role) {
    case Role::kAdmin: return "admin";
    case Role::kOperator: return "operator";
    case Role::kViewer: return "viewer";
  }
  return "viewer";
}

Result<Role> parseRole(std::string_view text) {
  for (auto r : {Role::kAdmin, Role::kOperator, Role::kViewer}) {
    if (text == roleName(r)) return r;
  }
  return makeError(ErrorCode::kInvalidArgument, "pki",
                   "role " + quoteForMessage(text) + " is not one of admin, operator, viewer");
}

Result<Identity> parseIdentityUri(std::string_view uri) {
  constexpr std::string_view kScheme = "qiao://";
  auto bad = [&](const std::string& why) {
    return makeError(ErrorCode::kInvalidArgument, "pki",
                     "identity " + quoteForMessage(uri) + " is not valid: " + why);
  };
  if (!uri.starts_with(kScheme)) return bad("it must start with qiao://");
  std::string_view rest = uri.substr(kScheme.size());
  auto first = rest.find('/');
  if (first == std::string_view::npos) return bad("it must be qiao://<cluster>/<kind>/<name>");
  auto second = rest.find('/', first + 1);
  if (second == std::string_view::npos) return bad("it must be qiao://<cluster>/<kind>/<name>");
  Identity id;
  id.cluster = std::string(rest.substr(0, first));
  std::string_view kind = rest.substr(first + 1, second - first - 1);
  id.name = std::string(rest.substr(second + 1));
  if (!isDnsLabel(id.cluster)) return bad("the cluster must be a DNS label");
  auto parsed_kind = parseIdentityKind(kind);
  if (!parsed_kind) return bad("the kind must be node, user, peer or installer");
  id.kind = *parsed_kind;
  if (!isDnsLabel(id.name)) return bad("the name must be a DNS label");
  return id;
}

}  // namespace qiao
