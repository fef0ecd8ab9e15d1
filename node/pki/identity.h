// Identities and roles. A caller is named by its client certificate's URI SAN,
// qiao://<cluster>/<kind>/<name>; its role and tenants are bound to that identity in the store.
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"

namespace qiao {

enum class IdentityKind { kNode, kUser, kPeer, kInstaller };
enum class Role { kAdmin, kOperator, kViewer };

struct Identity {
  std::string cluster;
  IdentityKind kind = IdentityKind::kUser;
  std::string name;
  std::string uri() const;  // qiao://cluster/user/alice
};

// Strict: scheme qiao, cluster and name DNS labels, one of the four kinds, nothing else.
Result<Identity> parseIdentityUri(std::string_view uri);
std::string_view identityKindName(IdentityKind kind);
Result<IdentityKind> parseIdentityKind(std::string_view text);
std::string_view roleName(Role role);
Result<Role> parseRole(std::string_view text);

}  // namespace qiao
