#include "node/join.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/names.h"
#include "cluster/join_tokens.h"
#include "firmware/descriptor.h"
#include "node/client/client.h"
#include "node/host/host.h"
#include "node/pki/pki.h"
#include "node/vm/hypervisor.h"

namespace qiao {

const char* const kJoinUsageText =
    "Usage: qiaod [--config FILE] join --endpoint URL --token TOKEN --address IP [options]\n"
    "\n"
    "Enrolls this server into a cluster with a single-use token (`qiaoctl cluster token\n"
    "create` on a member). Makes this node's key and CSR, fetches the cluster CA from the\n"
    "endpoint and trusts it only when its SHA-256 is the token's pin, runs the host check and\n"
    "sends it with the CSR over verified TLS; a member judges the check against the cluster's\n"
    "baseline, uses the token up and signs the certificate. Nothing is written here before\n"
    "the cluster accepted the join. Then: the PKI directory (node.key 0600, node.crt, ca.crt,\n"
    "crl.pem, cluster), the Ceph keyring (0600) and ceph.conf, and the configuration file\n"
    "(--config, default /etc/qiao/qiaod.toml) with [cluster] mode = \"member\". Start qiaod.\n"
    "\n"
    "Options:\n"
    "  --endpoint URL      a member's API, https://ADDRESS:PORT (required)\n"
    "  --token TOKEN       qiao-join.ID.SECRET.CA_SHA256 (required; or $QIAO_JOIN_TOKEN)\n"
    "  --address IP        an address this host's API answers on (required; repeat for more;\n"
    "                      the first is its endpoint in the cluster)\n"
    "  --name NAME         this host's name in the cluster (a DNS label; default: the short\n"
    "                      host name)\n"
    "  --dns-name NAME     a DNS name its certificate also carries (repeatable)\n"
    "  --port N            its API's port (default 8443)\n"
    "  --tunnel-ip IP      its underlay address for tunnelled networks (network.tunnel_ip)\n"
    "  --accelerator A     auto | kvm | tcg: how the check finds the accelerator (default auto)\n"
    "  --libvirt-uri URI   (default qemu:///system)\n"
    "  --pki-dir DIR       (default /etc/qiao/pki)\n"
    "  --state-dir DIR     (default /var/lib/qiao)\n"
    "  --ceph-dir DIR      ceph.conf and the keyring (default /etc/qiao/ceph)\n"
    "  --timeout-ms N      each network step (default 30000)\n"
    "  --force             replace an existing configuration file and node key\n"
    "\n"
    "Exit codes: 0 joined; 1 failure (unreachable, refused for another reason, cannot write);\n"
    "2 usage error, or an existing configuration or node key without --force; 3 the\n"
    "endpoint's CA is not the token's (not trusted: nothing sent); 4 the token was refused\n"
    "(unknown, expired, used or forged); 5 this host does not meet the cluster's baseline\n"
    "(the failed items are printed).\n";

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string tomlString(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string tomlList(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + tomlString(items[i]);
  return out + "]";
}

bool isBase64(const std::string& text) {
  if (text.empty() || text.size() > 256) return false;
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') {
      return false;
    }
  }
  return true;
}

void say(std::FILE* out, const std::string& line) {
  std::fprintf(out, "%s\n", line.c_str());
  std::fflush(out);
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// This host's findings for the baseline (what GET /v1/host/check gathers in a running qiaod).
BaselineFacts gatherFacts(const JoinOptions& o, const HostFacts& host) {
  BaselineFacts facts;
  readKernelFacts(facts);
  facts.bios_date = isoDateFromSmbios(readHostFirmware().bios_date);
  LibvirtOptions libvirt;
  libvirt.uri = o.libvirt_uri;
  auto hypervisor = makeLibvirtHypervisor(libvirt);
  if (auto info = hypervisor->info()) {
    facts.libvirt_connected = true;
    facts.libvirt_version = info->libvirt_version;
    facts.qemu_version = info->qemu_version;
  }
  AccelProbe probe;
  if (o.accelerator != "tcg") {
    probe = probeKvm(host.arch, 15000);
  } else {
    probe.reason = "not probed: --accelerator tcg";
  }
  if (auto accel = chooseAccelerator(o.accelerator, probe)) {
    facts.accelerator = accel->accelerator;
    facts.accelerator_reason = accel->reason;
  } else {
    facts.accelerator = "tcg";
    facts.accelerator_reason = accel.error().message;
  }
  auto catalog = loadFirmwareDescriptors(defaultFirmwareDirs());
  for (const std::string arch : {"x86_64", "aarch64"}) {
    FirmwareRequest want{arch, arch == "aarch64" ? "virt" : "q35", "uefi", {}, {"enrolled-keys"}};
    if (selectFirmware(catalog, want)) facts.uefi_archs.insert(arch);
  }
  return facts;
}

// Files are staged in a directory beside the PKI directory (same filesystem: renamed into
// place) and removed when the join does not complete.
struct Staging {
  std::string dir;
  ~Staging() {
    if (!dir.empty()) {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  }
};

}  // namespace

Result<JoinOptions> parseJoinArgs(const std::vector<std::string>& args) {
  JoinOptions o;
  auto bad = [](const std::string& message) {
    return makeError(ErrorCode::kInvalidArgument, "join", message);
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--force") {
      o.force = true;
      continue;
    }
    static const std::vector<std::string> kValued = {
        "--endpoint",  "--token",     "--name",        "--address",     "--dns-name",
        "--port",      "--tunnel-ip", "--accelerator", "--libvirt-uri", "--pki-dir",
        "--state-dir", "--ceph-dir",  "--timeout-ms"};
    if (std::find(kValued.begin(), kValued.end(), a) == kValued.end()) {
      return bad("unknown argument " + quoteForMessage(a) + " (see qiaod join --help)");
    }
    if (i + 1 >= args.size()) return bad(a + " needs a value");
    const std::string& v = args[++i];
    if (a == "--endpoint")
      o.endpoint = v;
    else if (a == "--token")
      o.token = v;
    else if (a == "--name")
      o.name = v;
    else if (a == "--address")
      o.addresses.push_back(v);
    else if (a == "--dns-name")
      o.dns_names.push_back(v);
    else if (a == "--tunnel-ip")
      o.tunnel_ip = v;
    else if (a == "--accelerator")
      o.accelerator = v;
    else if (a == "--libvirt-uri")
      o.libvirt_uri = v;
    else if (a == "--pki-dir")
      o.pki_dir = v;
    else if (a == "--state-dir")
      o.state_dir = v;
    else if (a == "--ceph-dir")
      o.ceph_dir = v;
    else {
      char* end = nullptr;
      long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 1 || n > (a == "--port" ? 65535 : 600000)) {
        return bad(a + " must be a positive number" + (a == "--port" ? " up to 65535" : ""));
      }
      (a == "--port" ? o.port : o.timeout_ms) = static_cast<int>(n);
    }
  }
  if (o.token.empty()) {
    if (const char* env = std::getenv("QIAO_JOIN_TOKEN")) o.token = env;
  }
  if (o.endpoint.empty()) return bad("--endpoint is required");
  if (o.token.empty()) return bad("--token is required");
  if (o.addresses.empty()) return bad("--address is required (this host's API address)");
  for (const auto& ip : o.addresses) {
    if (!isIpAddress(ip)) return bad("--address " + quoteForMessage(ip) + " is not an IP address");
  }
  if (!o.tunnel_ip.empty() && !isIpAddress(o.tunnel_ip)) {
    return bad("--tunnel-ip " + quoteForMessage(o.tunnel_ip) + " is not an IP address");
  }
  if (o.accelerator != "auto" && o.accelerator != "kvm" && o.accelerator != "tcg") {
    return bad("--accelerator must be auto, kvm or tcg");
  }
  if (o.name.empty()) {
    char buf[256] = {};
    gethostname(buf, sizeof buf - 1);
    o.name = buf;
    o.name = o.name.substr(0, o.name.find('.'));
    for (auto& c : o.name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (auto ok = checkDnsLabel("--name", o.name); !ok) return std::unexpected(ok.error());
  for (const auto& d : {&o.config_path, &o.pki_dir, &o.state_dir, &o.ceph_dir}) {
    if (d->empty()) return bad("a directory or file option is empty");
  }
  return o;
}

JoinExit runJoin(const JoinOptions& o, std::FILE* out, std::FILE* err) {
  const auto started = std::chrono::steady_clock::now();
  auto fail = [&](JoinExit code, const std::string& message) {
    std::fprintf(err, "qiaod join: %s\n", message.c_str());
    return code;
  };
  auto token = parseJoinToken(o.token);
  if (!token) return fail(kJoinUsage, token.error().message);
  const PkiPaths pki{o.pki_dir};
  if (!o.force && fs::exists(o.config_path)) {
    return fail(kJoinUsage, o.config_path + " exists; pass --force to replace it");
  }
  if (!o.force && fs::exists(pki.nodeKey())) {
    return fail(kJoinUsage, pki.nodeKey() + " exists; pass --force to replace it");
  }

  // 1. The key and CSR, staged (0700 directory, key 0600 from creation).
  const fs::path pki_parent = fs::absolute(o.pki_dir).parent_path();
  std::error_code ec;
  fs::create_directories(pki_parent, ec);
  if (ec) return fail(kJoinFailed, "cannot create " + pki_parent.string() + ": " + ec.message());
  Staging staging;
  {
    std::string pattern = (pki_parent / ".qiao-join-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return fail(kJoinFailed, "cannot create a staging directory in " + pki_parent.string());
    }
    staging.dir = pattern;
  }
  const PkiPaths staged{staging.dir};
  auto csr = makeKeyAndCsr(staged.nodeKey(), o.name, /*overwrite=*/false);
  if (!csr) return fail(kJoinFailed, csr.error().message);
  say(out, "key and certificate request made for " + o.name);

  // 2. The cluster CA, over TLS without verification, trusted only when it is the token's pin.
  ClientConfig unverified;
  unverified.endpoint = o.endpoint;
  unverified.unverified_server = true;
  unverified.timeout_ms = o.timeout_ms;
  auto probe_client = ApiClient::create(unverified);
  if (!probe_client) return fail(kJoinUsage, probe_client.error().message);
  auto ca_response = probe_client->request("GET", "/v1/cluster/ca");
  if (!ca_response) return fail(kJoinFailed, ca_response.error().message);
  if (ca_response->status != 200) {
    return fail(kJoinFailed, "GET /v1/cluster/ca: " + errorFromResponse(*ca_response).message);
  }
  json ca_body = json::parse(ca_response->body, nullptr, false);
  if (!ca_body.is_object() || !ca_body.contains("ca") || !ca_body["ca"].is_string()) {
    return fail(kJoinFailed, "the endpoint's answer to GET /v1/cluster/ca is not the CA");
  }
  const std::string ca_pem = ca_body["ca"].get<std::string>();
  auto pin = certPemSha256(ca_pem);
  if (!pin || *pin != token->ca_sha256) {
    return fail(kJoinUntrusted, "the CA certificate of " + o.endpoint +
                                    " is not the one the token names (SHA-256 " +
                                    (pin ? *pin : "unknown") + ", token " + token->ca_sha256 +
                                    "): not trusted, nothing sent");
  }
  if (auto ok = writeFileAtomic(staged.caCert(), ca_pem, 0644); !ok) {
    return fail(kJoinFailed, ok.error().message);
  }
  say(out, "cluster CA verified against the token's pin (sha256 " + pin->substr(0, 16) + "...)");

  // 3. The host check, sent with the join.
  const HostFacts host = readHostFacts();
  BaselineFacts facts = o.facts ? *o.facts : gatherFacts(o, host);
  say(out, "host check gathered: libvirt " +
               (facts.libvirt_version.empty() ? "unreachable" : facts.libvirt_version) +
               ", accelerator " + facts.accelerator);

  // 4. The join, over TLS verified against that CA.
  ClientConfig verified;
  verified.endpoint = o.endpoint;
  verified.ca = staged.caCert();
  verified.timeout_ms = o.timeout_ms;
  auto client = ApiClient::create(verified);
  if (!client) return fail(kJoinFailed, client.error().message);
  json request = {{"token", o.token},
                  {"name", o.name},
                  {"addresses", o.addresses},
                  {"dns_names", o.dns_names},
                  {"port", o.port},
                  {"csr", *csr},
                  {"arch", host.arch},
                  {"vcpus", host.cores},
                  {"memory_mib", static_cast<int64_t>(host.memory_bytes >> 20)},
                  {"facts", json::parse(factsToJson(facts))}};
  if (!o.tunnel_ip.empty()) request["tunnel_ip"] = o.tunnel_ip;
  auto joined = client->request("POST", "/v1/cluster/join", request.dump());
  if (!joined) return fail(kJoinFailed, joined.error().message);
  if (joined->status != 201) {
    Error e = errorFromResponse(*joined);
    if (e.code == ErrorCode::kPermissionDenied) return fail(kJoinRefused, e.message);
    json details = json::parse(e.details_json.empty() ? "{}" : e.details_json, nullptr, false);
    if (e.code == ErrorCode::kConflict && details.is_object() && details.contains("checks") &&
        details["checks"].is_array()) {
      for (const auto& c : details["checks"]) {
        if (!c.is_object()) continue;
        std::fprintf(err, "  %-12s %-5s %s\n", c.value("name", "").c_str(),
                     c.value("verdict", "").c_str(), c.value("detail", "").c_str());
      }
      return fail(kJoinBaseline,
                  "this host does not meet the cluster's baseline; nothing was written");
    }
    return fail(kJoinFailed, e.message);
  }
  json body = json::parse(joined->body, nullptr, false);
  auto field = [&](const json& j, const char* key) {
    return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>()
                                                                  : std::string();
  };
  const std::string cluster = field(body, "cluster");
  const std::string cert_pem = field(body, "certificate");
  const json ceph = body.is_object() && body.contains("ceph") ? body["ceph"] : json::object();
  const std::string ceph_user = field(ceph, "user");
  const std::string ceph_key = field(ceph, "key");
  const std::string mon_host = field(ceph, "mon_host");
  const std::string cluster_pool = field(ceph, "cluster_pool");
  std::vector<std::string> pools;
  if (ceph.is_object() && ceph.contains("pools") && ceph["pools"].is_array()) {
    for (const auto& p : ceph["pools"]) {
      if (p.is_string() && checkDnsLabel("pool", p.get<std::string>())) pools.push_back(p);
    }
  }
  const std::string expected_user = "client.qiao-host-" + o.name;
  if (!checkDnsLabel("cluster", cluster) || ceph_user != expected_user || !isBase64(ceph_key) ||
      pools.empty() || !checkDnsLabel("pool", cluster_pool) ||
      (!mon_host.empty() && !isMonHostList(mon_host))) {
    return fail(kJoinFailed, "the member's answer to the join is not complete or not valid");
  }
  auto identity = identityUriOfCertPem(cert_pem);
  if (!identity || *identity != Identity{cluster, IdentityKind::kNode, o.name}.uri()) {
    return fail(kJoinFailed, "the certificate the member signed does not name this node");
  }
  say(out,
      "joined cluster " + cluster + " as " + *identity + " (serial " + field(body, "serial") + ")");

  // 5. Written: the PKI directory, the Ceph files, the configuration.
  std::string site = field(body, "site");
  std::vector<std::string> labels;
  if (body.contains("labels") && body["labels"].is_object()) {
    for (const auto& [k, v] : body["labels"].items()) {
      if (v.is_string()) labels.push_back(k + "=" + v.get<std::string>());
    }
  }
  for (auto [path, data, mode] : {std::tuple{staged.nodeCert(), cert_pem, mode_t{0644}},
                                  std::tuple{staged.crl(), field(body, "crl"), mode_t{0644}},
                                  std::tuple{staged.clusterFile(), cluster + "\n", mode_t{0644}}}) {
    if (data.empty()) continue;
    if (auto ok = writeFileAtomic(path, data, mode); !ok) {
      return fail(kJoinFailed, ok.error().message);
    }
  }
  fs::create_directories(o.pki_dir, ec);
  ::chmod(o.pki_dir.c_str(), 0700);
  for (const char* name : {"node.key", "node.crt", "ca.crt", "crl.pem", "cluster"}) {
    const fs::path from = fs::path(staging.dir) / name;
    if (!fs::exists(from)) continue;
    fs::rename(from, fs::path(o.pki_dir) / name, ec);
    if (ec) return fail(kJoinFailed, "cannot move " + std::string(name) + " into " + o.pki_dir);
  }
  say(out, "wrote " + o.pki_dir + " (node.key, node.crt, ca.crt, crl.pem, cluster)");

  fs::create_directories(o.ceph_dir, ec);
  const std::string keyring = (fs::path(o.ceph_dir) / (ceph_user + ".keyring")).string();
  const std::string ceph_conf = (fs::path(o.ceph_dir) / "ceph.conf").string();
  if (auto ok = writeFileAtomic(keyring, "[" + ceph_user + "]\n\tkey = " + ceph_key + "\n", 0600);
      !ok) {
    return fail(kJoinFailed, ok.error().message);
  }
  std::string conf = "# written by qiaod join\n[global]\n";
  if (!mon_host.empty()) conf += "mon_host = " + mon_host + "\n";
  if (auto ok = writeFileAtomic(ceph_conf, conf, 0644); !ok) {
    return fail(kJoinFailed, ok.error().message);
  }
  say(out, "wrote " + keyring + " and " + ceph_conf);

  std::vector<std::string> listen;
  for (const auto& a : o.addresses) {
    listen.push_back((a.find(':') != std::string::npos ? "[" + a + "]" : a) + ":" +
                     std::to_string(o.port));
  }
  std::vector<std::string> other_pools(pools.begin() + 1, pools.end());
  std::string toml = "# written by qiaod join: a member of cluster " + cluster + "\n";
  toml += "[api]\nlisten = " + tomlList(listen) + "\n";
  toml += "[pki]\ndir = " + tomlString(o.pki_dir) + "\n";
  toml += "[state]\ndir = " + tomlString(o.state_dir) + "\n";
  toml += "[libvirt]\nuri = " + tomlString(o.libvirt_uri) + "\n";
  toml += "[vm]\naccelerator = " + tomlString(o.accelerator) + "\n";
  toml += "[storage]\nbackend = \"rbd\"\nceph_conf = " + tomlString(ceph_conf) +
          "\nceph_user = " + tomlString(ceph_user.substr(7)) +
          "\nceph_keyring = " + tomlString(keyring) + "\nceph_pool = " + tomlString(pools.front()) +
          "\nceph_other_pools = " + tomlList(other_pools) + "\n";
  toml += "[cluster]\nmode = \"member\"\npool = " + tomlString(cluster_pool) +
          "\nhost = " + tomlString(o.name) + "\nsite = " + tomlString(site) +
          "\nlabels = " + tomlList(labels) + "\n";
  if (!o.tunnel_ip.empty()) toml += "[network]\ntunnel_ip = " + tomlString(o.tunnel_ip) + "\n";
  fs::create_directories(fs::absolute(o.config_path).parent_path(), ec);
  if (auto ok = writeFileAtomic(o.config_path, toml, 0644); !ok) {
    return fail(kJoinFailed, ok.error().message);
  }
  fs::create_directories(o.state_dir, ec);
  char elapsed[32];
  std::snprintf(elapsed, sizeof elapsed, "%.1f", secondsSince(started));
  say(out, "wrote " + o.config_path + "; joined in " + elapsed + " s: start qiaod");
  return kJoinOk;
}

}  // namespace qiao
