// What each qiaoctl command does with the node API: the requests it makes and what it prints.
// commands.cc also holds the table of commands (commandSpecs), each row beside its function.
// It owns the ApiClient for the length of one command; no Boost here (client.h hides it).
#pragma once

#include <string>

#include "node/cli/cli_args.h"
#include "node/cli/qiaoctl.h"

namespace qiao {

// Loads the configuration, connects and runs a valid Invocation. 0 ok, 1 failed.
int runInvocation(const Invocation& invocation, const CliIo& io);

// s with every byte but [A-Za-z0-9-_.~] percent-encoded, for a path segment or query value.
std::string urlEncode(const std::string& s);

}  // namespace qiao
