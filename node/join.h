// `qiaod join`: the new server's side of enrollment. With a single-use token an admin made
// (`qiaoctl cluster token create`), it makes its key and CSR, fetches the cluster CA over TLS
// without verification and trusts it only when its SHA-256 is the token's pin, then joins over
// verified TLS (POST /v1/cluster/join) sending its host check; a member judges it against the
// cluster's baseline, consumes the token, signs the CSR and makes the host's Ceph user. Only
// then is anything written here: the PKI directory, the Ceph keyring and ceph.conf, qiaod.toml
// (cluster.mode member). docs/operators/cluster.md "Enrollment".
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "base/error.h"
#include "node/host/baseline.h"

namespace qiao {

struct JoinOptions {
  std::string endpoint;  // https://ADDRESS:PORT of a member
  std::string token;
  std::string name;                    // "" = this machine's short host name
  std::vector<std::string> addresses;  // where this host's API answers (SANs, endpoint)
  std::vector<std::string> dns_names;  // further DNS SANs
  int port = 8443;
  std::string tunnel_ip;
  std::string accelerator = "auto";  // auto | kvm | tcg: how the host check's accelerator is found
  std::string libvirt_uri = "qemu:///system";
  std::string config_path = "/etc/qiao/qiaod.toml";
  std::string pki_dir = "/etc/qiao/pki";
  std::string state_dir = "/var/lib/qiao";
  std::string ceph_dir = "/etc/qiao/ceph";  // ceph.conf and the keyring
  bool force = false;                       // replace an existing config and PKI
  int timeout_ms = 30000;
  // Tests give the facts instead of reading this host's (nullptr: read them).
  const BaselineFacts* facts = nullptr;
};

// The exit codes, as `qiaod join --help` documents them.
enum JoinExit {
  kJoinOk = 0,
  kJoinFailed = 1,     // the cluster could not be reached or refused for another reason
  kJoinUsage = 2,      // bad arguments; an existing config or PKI without --force
  kJoinUntrusted = 3,  // the endpoint's CA is not the token's pin
  kJoinRefused = 4,    // the token was refused (unknown, expired, used, forged)
  kJoinBaseline = 5,   // the host does not meet the cluster's baseline
};

extern const char* const kJoinUsageText;

// Parses `qiaod join`'s arguments (after "join"); kInvalidArgument naming the bad one.
Result<JoinOptions> parseJoinArgs(const std::vector<std::string>& args);
// Runs the join, progress lines on `out`, the reason of a failure on `err`.
JoinExit runJoin(const JoinOptions& options, std::FILE* out, std::FILE* err);

}  // namespace qiao
