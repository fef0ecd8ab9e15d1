#include "node/pki/pki_cli.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>

#include "base/clock.h"
#include "base/names.h"
#include "node/pki/pki.h"

namespace qiao {
namespace {

constexpr const char* kPkiUsage =
    "Usage: qiaod pki init --cluster NAME --dir DIR [--hostname HOST] [--force]\n"
    "       qiaod pki issue --kind KIND --name NAME [--role ROLE] [--tenant T]... [--out DIR]\n"
    "                       [--dir CA_DIR] [--days N] [--ip ADDR]... [--dns NAME]... [--force]\n"
    "       qiaod pki revoke (--serial HEX | --identity URI) [--reason TEXT] [--dir CA_DIR]\n"
    "       qiaod pki unbind --identity URI\n"
    "       qiaod pki list\n"
    "Run `qiaod pki COMMAND --help` for details.\n";

constexpr const char* kRevokeUsage =
    "Usage: qiaod pki revoke (--serial HEX | --identity URI) [--reason TEXT] [--dir CA_DIR]\n"
    "\n"
    "Revokes a certificate (by its serial, as `qiaod pki list` shows it) or every certificate\n"
    "of an identity (qiao://CLUSTER/KIND/NAME), and writes the CA's revocation list anew\n"
    "(CA_DIR/crl.pem, signed by the CA). qiaod reads it at the next handshake: a revoked\n"
    "certificate's handshake fails. The binding stays (`qiaod pki unbind` removes it); issue\n"
    "the identity a new certificate to let it in again. Issuing a new certificate revokes the\n"
    "identity's previous one by itself (reason: superseded).\n"
    "\n"
    "  --serial HEX     the certificate's serial\n"
    "  --identity URI   every certificate of this identity\n"
    "  --reason TEXT    recorded with the revocation (default: revoked by an admin)\n"
    "  --dir CA_DIR     the CA's directory (default: qiaod's pki.dir)\n";

constexpr const char* kUnbindUsage =
    "Usage: qiaod pki unbind --identity URI\n"
    "\n"
    "Removes the identity's role and tenants from this node: its calls get 403 from then on\n"
    "(its certificate still completes a handshake until it is revoked).\n";

constexpr const char* kListUsage =
    "Usage: qiaod pki list\n"
    "\n"
    "Prints the identities bound on this node (role, tenants, current certificate) and every\n"
    "certificate issued here, valid, expired or revoked (with when and why).\n";

constexpr const char* kInitUsage =
    "Usage: qiaod pki init --cluster NAME --dir DIR [--hostname HOST] [--force]\n"
    "\n"
    "Creates the cluster CA (DIR/ca.crt, DIR/ca.key) and this node's server certificate\n"
    "(DIR/node.crt, DIR/node.key; SANs: the host name, localhost, 127.0.0.1, ::1 and\n"
    "qiao://NAME/node/HOST), an empty revocation list (DIR/crl.pem), and records the\n"
    "cluster name in DIR/cluster. Keys are 0600.\n"
    "\n"
    "  --cluster NAME   the cluster's name (a DNS label)\n"
    "  --dir DIR        where to write (qiaod's pki.dir, default /etc/qiao/pki)\n"
    "  --hostname HOST  this node's DNS name (default: the host name)\n"
    "  --force          replace an existing CA (every certificate it issued stops working)\n";

constexpr const char* kIssueUsage =
    "Usage: qiaod pki issue --kind KIND --name NAME [--role ROLE] [--tenant T]...\n"
    "                       [--out DIR] [--dir CA_DIR] [--days N] [--ip ADDR]... [--dns NAME]...\n"
    "                       [--force]\n"
    "\n"
    "Issues a client certificate for qiao://<cluster>/KIND/NAME, signed by the cluster CA,\n"
    "writes OUT/NAME.crt and OUT/NAME.key (0600), and binds the identity to ROLE (and the\n"
    "tenants) in this node's store, to this certificate: issuing again replaces the binding\n"
    "and revokes the identity's previous certificate (reason: superseded).\n"
    "\n"
    "  --kind KIND      user | peer | installer | node\n"
    "  --name NAME      the identity's name (a DNS label)\n"
    "  --role ROLE      admin | operator | viewer. Required for users and peers; installers\n"
    "                   default to viewer, nodes to admin.\n"
    "  --tenant T       a tenant an operator or viewer may act in (repeat for several);\n"
    "                   required for operators and viewers, refused for admins\n"
    "  --out DIR        where to write the files (default: the current directory)\n"
    "  --dir CA_DIR     the CA's directory (default: qiaod's pki.dir)\n"
    "  --days N         validity in days (default 365)\n"
    "  --ip ADDR        (nodes) an IP address the node's API answers on, for clients to check\n"
    "                   its certificate against (repeat for several)\n"
    "  --dns NAME       (nodes) a DNS name the node's API answers on (repeat for several)\n"
    "  --force          overwrite existing files\n";

struct Parsed {
  std::map<std::string, std::string> values;
  std::vector<std::string> tenants, ips, dns_names;
  bool force = false;
  bool help = false;
  std::string error;
};

Parsed parse(const std::vector<std::string>& args, size_t from,
             const std::vector<std::string>& with_value) {
  Parsed p;
  for (size_t i = from; i < args.size(); ++i) {
    std::string a = args[i];
    std::string value;
    bool inline_value = false;
    if (auto eq = a.find('='); a.starts_with("--") && eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      inline_value = true;
    }
    if (a == "-h" || a == "--help") {
      p.help = true;
    } else if (a == "--force") {
      p.force = true;
    } else if (std::find(with_value.begin(), with_value.end(), a) != with_value.end()) {
      if (!inline_value) {
        if (i + 1 >= args.size()) {
          p.error = a + " needs a value";
          return p;
        }
        value = args[++i];
      }
      if (a == "--tenant") {
        p.tenants.push_back(value);
      } else if (a == "--ip") {
        p.ips.push_back(value);
      } else if (a == "--dns") {
        p.dns_names.push_back(value);
      } else if (p.values.contains(a)) {
        p.error = a + " given twice";
        return p;
      } else {
        p.values[a] = value;
      }
    } else {
      p.error = "unknown argument " + quoteForMessage(a);
      return p;
    }
  }
  return p;
}

int usage(std::FILE* err, const std::string& message, const char* text) {
  std::fprintf(err, "qiaod pki: %s\n\n%s", message.c_str(), text);
  return 2;
}

// The CA's CRL written anew from the revoked certificates on record.
Status refreshCrl(const std::string& ca_dir, PkiRecords& records) {
  auto certs = records.certificates();
  if (!certs) return std::unexpected(certs.error());
  std::vector<Revoked> revoked;
  for (const auto& c : *certs) {
    if (c.revoked_at.empty()) continue;
    std::tm tm{};
    strptime(c.revoked_at.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    revoked.push_back({c.serial, static_cast<int64_t>(timegm(&tm))});
  }
  return writeCrl(ca_dir, revoked);
}

}  // namespace

int pkiCommand(const std::vector<std::string>& args, PkiRecords& records, std::FILE* out,
               std::FILE* err) {
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    std::fputs(kPkiUsage, args.empty() ? err : out);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "init") {
    auto p = parse(args, 1, {"--cluster", "--dir", "--hostname"});
    if (p.help) {
      std::fputs(kInitUsage, out);
      return 0;
    }
    if (!p.error.empty()) return usage(err, p.error, kInitUsage);
    if (!p.values.contains("--cluster") || !p.values.contains("--dir")) {
      return usage(err, "--cluster and --dir are required", kInitUsage);
    }
    InitOptions o;
    o.cluster = p.values["--cluster"];
    o.dir = p.values["--dir"];
    o.hostname = p.values["--hostname"];
    o.force = p.force;
    if (auto ok = initPki(o); !ok) {
      std::fprintf(err, "qiaod pki init: %s\n", ok.error().message.c_str());
      return 1;
    }
    PkiPaths paths{o.dir};
    std::fprintf(out, "cluster %s: CA %s, node certificate %s\n", o.cluster.c_str(),
                 paths.caCert().c_str(), paths.nodeCert().c_str());
    return 0;
  }
  if (args[0] == "issue") {
    auto p = parse(
        args, 1,
        {"--kind", "--name", "--role", "--tenant", "--out", "--dir", "--days", "--ip", "--dns"});
    if (p.help) {
      std::fputs(kIssueUsage, out);
      return 0;
    }
    if (!p.error.empty()) return usage(err, p.error, kIssueUsage);
    if (!p.values.contains("--kind") || !p.values.contains("--name")) {
      return usage(err, "--kind and --name are required", kIssueUsage);
    }
    auto kind = parseIdentityKind(p.values["--kind"]);
    if (!kind) return usage(err, kind.error().message, kIssueUsage);
    if (auto ok = checkDnsLabel("name", p.values["--name"]); !ok) {
      return usage(err, ok.error().message, kIssueUsage);
    }
    for (const auto& t : p.tenants) {
      if (auto ok = checkDnsLabel("tenant", t); !ok) return usage(err, ok.error().message, kIssueUsage);
    }
    std::string role_text = p.values["--role"];
    if (role_text.empty()) {
      if (*kind == IdentityKind::kInstaller) role_text = "viewer";
      else if (*kind == IdentityKind::kNode) role_text = "admin";
      else return usage(err, "--role is required for kind " + p.values["--kind"], kIssueUsage);
    }
    auto role = parseRole(role_text);
    if (!role) return usage(err, role.error().message, kIssueUsage);
    if (*role == Role::kAdmin && !p.tenants.empty()) {
      return usage(err, "admins act in every tenant; drop --tenant", kIssueUsage);
    }
    if (*role != Role::kAdmin && p.tenants.empty()) {
      return usage(err, "an " + role_text + " needs at least one --tenant", kIssueUsage);
    }
    if (*kind != IdentityKind::kNode && (!p.ips.empty() || !p.dns_names.empty())) {
      return usage(err, "--ip and --dns are for nodes (--kind node)", kIssueUsage);
    }
    int days = 365;
    if (p.values.contains("--days")) {
      const auto& d = p.values["--days"];
      if (d.empty() || d.size() > 5 || d.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(d) < 1) {
        return usage(err, "--days must be a positive number", kIssueUsage);
      }
      days = std::stoi(d);
    }
    std::string ca_dir = p.values.contains("--dir") ? p.values["--dir"] : "/etc/qiao/pki";
    auto cluster = readClusterName(ca_dir);
    if (!cluster) {
      std::fprintf(err, "qiaod pki issue: %s\n", cluster.error().message.c_str());
      return 1;
    }
    IssueOptions o;
    o.ca_dir = ca_dir;
    o.identity = Identity{*cluster, *kind, p.values["--name"]};
    o.out_dir = p.values.contains("--out") ? p.values["--out"] : ".";
    o.days = days;
    o.force = p.force;
    o.ips = p.ips;
    o.dns_names = p.dns_names;
    auto issued = issueCert(o);
    if (!issued) {
      std::fprintf(err, "qiaod pki issue: %s\n", issued.error().message.c_str());
      return 1;
    }
    // Recorded, bound to this certificate, and the one it replaces revoked.
    auto previous = records.binding(issued->identity_uri);
    Binding binding{issued->identity_uri, std::string(roleName(*role)), p.tenants, {},
                    issued->serial};
    Status stored = records.recordCertificate(
        CertificateRecord{issued->serial, issued->identity_uri, issued->not_after, {}, {}, {}});
    if (stored) stored = records.bind(binding);
    if (stored && previous && !previous->serial.empty()) {
      auto revoked = records.revoke(previous->serial, {}, "superseded by " + issued->serial);
      if (!revoked) stored = std::unexpected(revoked.error());
      if (stored && *revoked > 0) stored = refreshCrl(ca_dir, records);
    }
    if (!stored) {
      std::fprintf(err, "qiaod pki issue: certificate written, but recording it failed: %s\n",
                   stored.error().describe().c_str());
      return 1;
    }
    std::string tenants;
    for (const auto& t : p.tenants) tenants += (tenants.empty() ? "" : ",") + t;
    std::fprintf(out, "identity %s (%s%s)\ncertificate %s (serial %s, until %s)\nkey %s\nca %s\n",
                 issued->identity_uri.c_str(), role_text.c_str(),
                 tenants.empty() ? "" : (" of " + tenants).c_str(), issued->cert_path.c_str(),
                 issued->serial.c_str(), issued->not_after.c_str(), issued->key_path.c_str(),
                 issued->ca_path.c_str());
    return 0;
  }
  if (args[0] == "revoke") {
    auto p = parse(args, 1, {"--serial", "--identity", "--reason", "--dir"});
    if (p.help) {
      std::fputs(kRevokeUsage, out);
      return 0;
    }
    if (!p.error.empty()) return usage(err, p.error, kRevokeUsage);
    const std::string serial = p.values["--serial"];
    const std::string identity = p.values["--identity"];
    if (serial.empty() == identity.empty()) {
      return usage(err, "give --serial or --identity (one of them)", kRevokeUsage);
    }
    if (!serial.empty() && serial.find_first_not_of("0123456789ABCDEFabcdef") != std::string::npos) {
      return usage(err, "--serial must be hexadecimal, as `qiaod pki list` shows it", kRevokeUsage);
    }
    if (!identity.empty()) {
      if (auto id = parseIdentityUri(identity); !id) return usage(err, id.error().message, kRevokeUsage);
    }
    std::string upper = serial;
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const std::string reason =
        p.values.contains("--reason") ? p.values["--reason"] : "revoked by an admin";
    auto revoked = records.revoke(upper, identity, reason);
    if (!revoked) {
      std::fprintf(err, "qiaod pki revoke: %s\n", revoked.error().describe().c_str());
      return 1;
    }
    if (*revoked == 0) {
      std::fprintf(err, "qiaod pki revoke: no valid certificate %s (see `qiaod pki list`)\n",
                   serial.empty() ? ("of " + identity).c_str() : ("with serial " + serial).c_str());
      return 1;
    }
    const std::string ca_dir = p.values.contains("--dir") ? p.values["--dir"] : "/etc/qiao/pki";
    if (auto ok = refreshCrl(ca_dir, records); !ok) {
      std::fprintf(err, "qiaod pki revoke: revoked in the store, but the CRL was not written: %s\n",
                   ok.error().describe().c_str());
      return 1;
    }
    std::fprintf(out, "revoked %d certificate%s; %s lists it: qiaod refuses it at the next "
                      "handshake\n",
                 *revoked, *revoked == 1 ? "" : "s", PkiPaths{ca_dir}.crl().c_str());
    return 0;
  }
  if (args[0] == "unbind") {
    auto p = parse(args, 1, {"--identity"});
    if (p.help) {
      std::fputs(kUnbindUsage, out);
      return 0;
    }
    if (!p.error.empty()) return usage(err, p.error, kUnbindUsage);
    if (!p.values.contains("--identity")) return usage(err, "--identity is required", kUnbindUsage);
    if (auto ok = records.unbind(p.values["--identity"]); !ok) {
      std::fprintf(err, "qiaod pki unbind: %s\n", ok.error().message.c_str());
      return 1;
    }
    std::fprintf(out, "%s has no role on this node any more\n", p.values["--identity"].c_str());
    return 0;
  }
  if (args[0] == "list") {
    auto p = parse(args, 1, {});
    if (p.help) {
      std::fputs(kListUsage, out);
      return 0;
    }
    if (!p.error.empty()) return usage(err, p.error, kListUsage);
    auto bindings = records.bindings();
    auto certs = records.certificates();
    if (!bindings || !certs) {
      std::fprintf(err, "qiaod pki list: %s\n",
                   (!bindings ? bindings.error() : certs.error()).describe().c_str());
      return 1;
    }
    std::fprintf(out, "%-44s %-9s %-24s %s\n", "IDENTITY", "ROLE", "TENANTS", "CERTIFICATE");
    for (const auto& b : *bindings) {
      std::string tenants;
      for (const auto& t : b.tenants) tenants += (tenants.empty() ? "" : ",") + t;
      std::fprintf(out, "%-44s %-9s %-24s %s\n", b.identity.c_str(), b.role.c_str(),
                   tenants.empty() ? "*" : tenants.c_str(),
                   b.serial.empty() ? "any (bound before certificates were recorded)"
                                    : b.serial.c_str());
    }
    std::fprintf(out, "\n%-34s %-44s %-21s %s\n", "SERIAL", "IDENTITY", "NOT AFTER", "STATE");
    const std::string now = utcText(std::chrono::system_clock::now());
    for (const auto& c : *certs) {
      std::string state = !c.revoked_at.empty() ? "revoked " + c.revoked_at + " (" + c.reason + ")"
                          : c.not_after < now   ? std::string("expired")
                                                : std::string("valid");
      std::fprintf(out, "%-34s %-44s %-21s %s\n", c.serial.c_str(), c.identity.c_str(),
                   c.not_after.c_str(), state.c_str());
    }
    return 0;
  }
  std::fprintf(err, "qiaod pki: unknown command %s\n\n%s", quoteForMessage(args[0]).c_str(),
               kPkiUsage);
  return 2;
}

}  // namespace qiao
