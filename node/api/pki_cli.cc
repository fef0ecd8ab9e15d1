#include "node/api/pki_cli.h"

#include <algorithm>
#include <map>

#include "base/names.h"
#include "node/api/pki.h"

namespace qiao {
namespace {

constexpr const char* kPkiUsage =
    "Usage: qiaod pki init --cluster NAME --dir DIR [--hostname HOST] [--force]\n"
    "       qiaod pki issue --kind KIND --name NAME [--role ROLE] [--tenant T]... [--out DIR]\n"
    "                       [--dir CA_DIR] [--days N] [--force]\n"
    "Run `qiaod pki init --help` or `qiaod pki issue --help` for details.\n";

constexpr const char* kInitUsage =
    "Usage: qiaod pki init --cluster NAME --dir DIR [--hostname HOST] [--force]\n"
    "\n"
    "Creates the cluster CA (DIR/ca.crt, DIR/ca.key) and this node's server certificate\n"
    "(DIR/node.crt, DIR/node.key; SANs: the host name, localhost, 127.0.0.1, ::1 and\n"
    "qiao://NAME/node/HOST), and records the cluster name in DIR/cluster. Keys are 0600.\n"
    "\n"
    "  --cluster NAME   the cluster's name (a DNS label)\n"
    "  --dir DIR        where to write (qiaod's pki.dir, default /etc/qiao/pki)\n"
    "  --hostname HOST  this node's DNS name (default: the host name)\n"
    "  --force          replace an existing CA (every certificate it issued stops working)\n";

constexpr const char* kIssueUsage =
    "Usage: qiaod pki issue --kind KIND --name NAME [--role ROLE] [--tenant T]...\n"
    "                       [--out DIR] [--dir CA_DIR] [--days N] [--force]\n"
    "\n"
    "Issues a client certificate for qiao://<cluster>/KIND/NAME, signed by the cluster CA,\n"
    "writes OUT/NAME.crt and OUT/NAME.key (0600), and binds the identity to ROLE (and the\n"
    "tenants) in this node's store. Issuing again replaces the binding.\n"
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
    "  --force          overwrite existing files\n";

struct Parsed {
  std::map<std::string, std::string> values;
  std::vector<std::string> tenants;
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

}  // namespace

int pkiCommand(const std::vector<std::string>& args, const BindIdentity& bind, std::FILE* out,
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
    auto p = parse(args, 1, {"--kind", "--name", "--role", "--tenant", "--out", "--dir", "--days"});
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
    auto issued = issueCert(o);
    if (!issued) {
      std::fprintf(err, "qiaod pki issue: %s\n", issued.error().message.c_str());
      return 1;
    }
    if (auto ok = bind(issued->identity_uri, *role, p.tenants); !ok) {
      std::fprintf(err, "qiaod pki issue: certificate written, but the binding failed: %s\n",
                   ok.error().describe().c_str());
      return 1;
    }
    std::string tenants;
    for (const auto& t : p.tenants) tenants += (tenants.empty() ? "" : ",") + t;
    std::fprintf(out, "identity %s (%s%s)\ncertificate %s\nkey %s\nca %s\n",
                 issued->identity_uri.c_str(), role_text.c_str(),
                 tenants.empty() ? "" : (" of " + tenants).c_str(), issued->cert_path.c_str(),
                 issued->key_path.c_str(), issued->ca_path.c_str());
    return 0;
  }
  std::fprintf(err, "qiaod pki: unknown command %s\n\n%s", quoteForMessage(args[0]).c_str(),
               kPkiUsage);
  return 2;
}

}  // namespace qiao
