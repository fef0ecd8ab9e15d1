// Validation of names that reach libvirt, OVSDB, Ceph or file paths. Everything a user names
// (VMs, tenants, networks, volumes, images) is a DNS label, checked here before anything else.
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"

namespace qiao {

// [a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?
bool isDnsLabel(std::string_view name);

// OK, or kInvalidArgument naming `what` ("vm name", "tenant") and saying what is allowed.
// The offending value is quoted with non-printable bytes escaped, so it is safe in a log line.
Status checkDnsLabel(std::string_view what, std::string_view name);

// An IPv4 or IPv6 address as inet_pton reads it (no port, no brackets).
bool isIpAddress(const std::string& text);

// A Ceph monitor list as ceph.conf's mon_host holds it: addresses, ports, brackets, commas,
// slashes, spaces and the v1:/v2: prefixes only (nothing that could end the line or quote),
// at most 1,024 bytes.
bool isMonHostList(std::string_view text);

// Printable, quote-safe rendering of untrusted text for error messages: at most 64
// characters, control and non-ASCII bytes as \xNN.
std::string quoteForMessage(std::string_view text);

}  // namespace qiao
