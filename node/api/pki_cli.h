// `qiaod pki init|issue`: the command line over pki.h. The caller supplies how a freshly
// issued identity is bound to its role (qiaod writes it to its store).
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "base/error.h"
#include "node/api/identity.h"

namespace qiao {

using BindIdentity = std::function<Status(const std::string& identity_uri, Role role,
                                          const std::vector<std::string>& tenants)>;

// Exit codes: 0 ok, 1 failure, 2 usage error.
int pkiCommand(const std::vector<std::string>& args, const BindIdentity& bind, std::FILE* out,
               std::FILE* err);

}  // namespace qiao
