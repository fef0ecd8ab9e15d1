// qiaod: argument handling around the composition root. `run` builds the node's services
// (NodeServices, node_services.h), starts them and the HTTPS server, and stops them in order on
// SIGTERM/SIGINT. Also the offline admin commands: pki, audit verify|rotate, journal verify,
// config.
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "base/config.h"
#include "base/event_bus.h"
#include "base/files.h"
#include "base/log.h"
#include "node/api/api.h"
#include "node/api/server.h"
#include "node/audit/audit_service.h"
#include "node/join.h"
#include "node/node_services.h"
#include "node/pki/pki.h"
#include "node/pki/pki_cli.h"
#include "node/state/store.h"
#include "node/vm/hypervisor.h"
#include "node/vm/qmp/libvirt_event_loop.h"
#include "storage/volume_driver.h"

namespace {

using namespace qiao;

constexpr const char* kDefaultConfig = "/etc/qiao/qiaod.toml";

const char* kUsage =
    "Usage: qiaod [--config FILE] [COMMAND]\n"
    "\n"
    "The Qiao node daemon: manages this host's VMs through libvirt and serves the node API\n"
    "over HTTPS with mutual TLS.\n"
    "\n"
    "Commands:\n"
    "  run                 serve (the default)\n"
    "  join --endpoint URL --token TOKEN --address IP [...]\n"
    "                      enroll this server into a cluster with a join token and write its\n"
    "                      PKI, Ceph keyring and configuration (--config); `qiaod join --help`\n"
    "                      for its options and exit codes (0 joined, 3 CA not the token's, 4\n"
    "                      token refused, 5 baseline not met)\n"
    "  pki init ...        create the cluster CA and this node's certificate\n"
    "  pki issue ...       issue a client certificate and bind it to a role\n"
    "  pki revoke ...      revoke a certificate (by serial) or an identity's certificates\n"
    "  pki unbind ...      remove an identity's role on this node\n"
    "  pki list            identities, their roles and certificates, valid or revoked\n"
    "  audit verify        prove the audit log's hash chain: the exported segments (files\n"
    "                      present, hashes as recorded) then the database; name the first\n"
    "                      broken entry. Exit 1 when broken\n"
    "  audit verify --segment FILE...\n"
    "                      verify exported segment files on their own (an archive), in order\n"
    "  audit rotate [--max-entries N]\n"
    "                      export the oldest entries now (all by default, never past what\n"
    "                      the syslog collector confirmed) and remove them from the database\n"
    "  journal verify      check that every task's journal is whole\n"
    "  config reference    print every configuration key (Markdown)\n"
    "  config default      print the default configuration file\n"
    "  config check        load the configuration and report the first error\n"
    "\n"
    "Options:\n"
    "  --config FILE       configuration file (default /etc/qiao/qiaod.toml; a missing\n"
    "                      default file means all defaults)\n"
    "  --version           print the version\n"
    "  -h, --help          this help; `qiaod pki init --help` etc. for a command's options\n"
    "\n"
    "Exit codes: 0 ok, 1 failure, 2 usage error.\n";

int fail(const std::string& message) {
  std::fprintf(stderr, "qiaod: %s\n", message.c_str());
  return 1;
}

int runDaemon(const Config& config) {
  // Signals go to one waiting thread; block them before any other thread exists.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::FILE* log_file = nullptr;
  if (!config.log.file.empty()) {
    log_file = std::fopen(config.log.file.c_str(), "a");
    if (log_file == nullptr) {
      return fail("cannot open log file " + config.log.file + ": " + std::strerror(errno));
    }
    Logger::setSink(log_file);
  }
  LogLevel level = LogLevel::kInfo;
  parseLogLevel(config.log.level, &level);
  Logger::setLevel(level);
  Logger log("qiaod");

  auto node = NodeServices::build(config);
  if (!node) return fail(node.error().describe());
  (*node)->start();
  Api& api = (*node)->api();
  const int64_t upload_reserve_bytes = config.images.upload_reserve_mib << 20;

  {  // the server and its signal thread end before the services they call
    ServerOptions server_options;
    server_options.listen = config.api.listen;
    server_options.ca_file = config.pki.dir + "/ca.crt";
    server_options.cert_file = config.pki.dir + "/node.crt";
    server_options.key_file = config.pki.dir + "/node.key";
    server_options.crl_file = PkiPaths{config.pki.dir}.crl();
    server_options.max_body_bytes = config.api.max_body_bytes;
    server_options.max_connections = config.api.max_connections;
    server_options.max_per_source = config.api.max_connections_per_source;
    server_options.max_per_identity = config.api.max_connections_per_identity;
    server_options.admin_reserve = config.api.admin_reserved_connections;
    server_options.event_stream_max_s = config.api.event_stream_max_s;
    server_options.request_timeout_s = config.api.request_timeout_s;
    server_options.upload_dir = (*node)->uploadDir();
    server_options.max_upload_bytes = config.images.max_upload_bytes;
    server_options.upload_reserve_bytes = upload_reserve_bytes;
    server_options.streams_body = [&api](const std::string& method, const std::string& path) {
      return api.streamsBody(method, path);
    };
    server_options.admit = [&api](ApiRequest& r) { return api.admit(r); };
    server_options.is_admin = [&api](const std::string& uri, const std::string& serial) {
      return api.isAdmin(uri, serial);
    };
    server_options.on_tick = [&api] { api.flushAudit(false); };
    server_options.tick_interval_s = std::min(10, config.api.audit_summary_interval_s);
    ApiServer server(
        server_options, [&api](const ApiRequest& r) { return api.handle(r); }, (*node)->events());
    auto bound = server.listen();
    if (!bound) return fail(bound.error().describe());
    std::string addr_text;
    for (const auto& a : *bound) addr_text += a + "\n";
    if (!writeFileAtomic(config.state.dir + "/qiaod.addr", addr_text, 0644)) {
      log.warn("cannot write qiaod.addr", {{"dir", config.state.dir}});
    }
    log.info("qiaod serving", {{"listen", addr_text.substr(0, addr_text.find('\n'))},
                               {"cluster", (*node)->cluster()},
                               {"version", QIAO_VERSION}});

    std::thread signal_thread([&server, signals, &log] {
      int sig = 0;
      sigwait(&signals, &sig);
      log.info("stopping", {{"signal", strsignal(sig)}});
      server.stop();
    });
    server.run();
    (*node)->stop();
    // Wake the signal thread if run() returned for another reason.
    pthread_kill(signal_thread.native_handle(), SIGTERM);
    signal_thread.join();
  }
  node->reset();  // every service and libvirt connection gone: the event loop can stop
  stopLibvirtEventLoop();
  std::error_code ec;
  std::filesystem::remove(config.state.dir + "/qiaod.addr", ec);
  log.info("qiaod stopped");
  if (log_file != nullptr) std::fclose(log_file);
  return 0;
}

// `qiaod pki`'s records in the node's store, opened (and the state directory made) on first
// use: `pki init` runs before there is any.
class StorePkiRecords final : public PkiRecords {
 public:
  explicit StorePkiRecords(const Config& config)
      : config_(config), dir_(config.state.dir), db_(dbPath(config)) {}
  Status bind(const Binding& b) override {
    return withBindings([&](Store& s) { return s.bindings().put(b); });
  }
  Result<Binding> binding(const std::string& uri) override {
    return with([&](Store& s) { return s.bindings().get(uri); });
  }
  Status unbind(const std::string& uri) override {
    return withBindings([&](Store& s) { return s.bindings().remove(uri); });
  }
  Status recordCertificate(const CertificateRecord& c) override {
    return with([&](Store& s) { return s.certificates().record(c); });
  }
  Result<int> revoke(const std::string& serial, const std::string& uri,
                     const std::string& reason) override {
    return with([&](Store& s) { return s.certificates().revoke(serial, uri, reason); });
  }
  Result<std::vector<Binding>> bindings() override {
    return with([&](Store& s) { return s.bindings().list(); });
  }
  Result<std::vector<CertificateRecord>> certificates() override {
    return with([&](Store& s) { return s.certificates().list(); });
  }

 private:
  template <typename F>
  auto with(F f) -> decltype(f(std::declval<Store&>())) {
    if (!store_) {
      std::error_code ec;
      std::filesystem::create_directories(dir_, ec);
      auto opened = Store::open(db_);
      if (!opened) return std::unexpected(opened.error());
      store_ = std::move(*opened);
    }
    return f(*store_);
  }
  // A member's bindings are the cluster's: changed there first (a node's certificate, which
  // binds no role, is issued before the node has a Ceph identity).
  template <typename F>
  auto withBindings(F f) -> decltype(f(std::declval<Store&>())) {
    return with([&](Store& s) -> decltype(f(s)) {
      if (!ceph_) {
        auto ceph = shareIdentities(s, config_);
        if (!ceph) return std::unexpected(ceph.error());
        ceph_ = std::move(*ceph);
      }
      return f(s);
    });
  }
  const Config& config_;
  std::string dir_, db_;
  std::shared_ptr<RadosCluster> ceph_;  // declared before store_: destroyed after it
  std::unique_ptr<Store> store_;
};

int auditVerify(const Config& config, const std::vector<std::string>& args) {
  if (!args.empty()) {
    if (args[0] != "--segment" || args.size() < 2) {
      std::fprintf(stderr, "qiaod: usage: qiaod audit verify [--segment FILE...]\n");
      return 2;
    }
    auto result = verifySegmentFiles({args.begin() + 1, args.end()});
    for (const auto& line : result.lines) std::printf("%s\n", line.c_str());
    return result.ok ? 0 : 1;
  }
  auto store = Store::open(dbPath(config));
  if (!store) return fail(store.error().describe());
  auto result = verifyAuditLog(**store);
  if (!result) return fail(result.error().describe());
  for (const auto& line : result->lines) std::printf("%s\n", line.c_str());
  std::printf(result->ok ? "audit log ok: chain intact\n" : "audit log BROKEN\n");
  return result->ok ? 0 : 1;
}

int auditRotate(const Config& config, const std::vector<std::string>& args) {
  int64_t max_entries = INT64_MAX;
  if (!args.empty()) {
    char* end = nullptr;
    if (args.size() != 2 || args[0] != "--max-entries" || args[1].empty() ||
        (max_entries = std::strtoll(args[1].c_str(), &end, 10)) <= 0 || *end != '\0') {
      std::fprintf(stderr, "qiaod: usage: qiaod audit rotate [--max-entries N], N > 0\n");
      return 2;
    }
  }
  auto store = Store::open(dbPath(config));
  if (!store) return fail(store.error().describe());
  auto segment = rotateWithinShipping(**store, auditOptions(config), max_entries);
  if (!segment) return fail(segment.error().describe());
  if (segment->last_seq == 0) {
    std::printf("nothing to rotate%s\n",
                config.audit.syslog.empty() ? "" : " (entries wait for the syslog collector)");
    return 0;
  }
  std::printf("exported entries %lld-%lld to %s (sha256 %s)\n",
              static_cast<long long>(segment->first_seq), static_cast<long long>(segment->last_seq),
              segment->file.c_str(), segment->sha256.c_str());
  return 0;
}

int journalVerify(const Config& config) {
  auto store = Store::open(dbPath(config));
  if (!store) return fail(store.error().describe());
  auto report = (*store)->tasks().verifyJournal();
  if (!report) return fail(report.error().describe());
  if (report->ok) {
    std::printf("journal ok: %lld tasks checked\n", static_cast<long long>(report->tasks_checked));
    return 0;
  }
  std::printf("journal BROKEN: %s\n", report->first_problem.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string config_path = kDefaultConfig;
  bool explicit_config = false;
  std::vector<std::string> rest;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (rest.empty() && (a == "-h" || a == "--help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (rest.empty() && a == "--version") {
      std::printf("qiaod %s\n", QIAO_VERSION);
      return 0;
    }
    if (rest.empty() && (a == "--config" || a.starts_with("--config="))) {
      if (a == "--config") {
        if (i + 1 >= args.size()) {
          std::fputs("qiaod: --config needs a file\n", stderr);
          return 2;
        }
        config_path = args[++i];
      } else {
        config_path = a.substr(9);
      }
      explicit_config = true;
      continue;
    }
    if (rest.empty() && a.starts_with("-")) {
      std::fprintf(stderr, "qiaod: unknown option %s (see qiaod --help)\n", a.c_str());
      return 2;
    }
    rest.push_back(a);
  }
  if (const char* env = std::getenv("QIAO_CONFIG_FILE"); env != nullptr && !explicit_config) {
    config_path = env;
    explicit_config = true;
  }
  std::string command = rest.empty() ? "run" : rest[0];

  if (command == "config" && rest.size() == 2 && rest[1] == "reference") {
    std::fputs(configReferenceMarkdown().c_str(), stdout);
    return 0;
  }
  if (command == "config" && rest.size() == 2 && rest[1] == "default") {
    std::fputs(defaultConfigToml().c_str(), stdout);
    return 0;
  }

  if (command == "join") {
    std::vector<std::string> join_args(rest.begin() + 1, rest.end());
    for (const auto& a : join_args) {
      if (a == "-h" || a == "--help") {
        std::fputs(kJoinUsageText, stdout);
        return 0;
      }
    }
    auto options = parseJoinArgs(join_args);
    if (!options) {
      std::fprintf(stderr, "qiaod join: %s\n", options.error().message.c_str());
      return kJoinUsage;
    }
    options->config_path = config_path;  // where the configuration is written
    return runJoin(*options, stdout, stderr);
  }

  auto config = loadConfig(config_path, explicit_config);
  if (!config) {
    std::fprintf(stderr, "qiaod: %s\n", config.error().describe().c_str());
    return 1;
  }

  if (command == "run" && rest.size() <= 1) return runDaemon(*config);
  if (command == "config" && rest.size() == 2 && rest[1] == "check") {
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }
  if (command == "audit" && rest.size() >= 2 && (rest[1] == "verify" || rest[1] == "rotate")) {
    std::vector<std::string> args(rest.begin() + 2, rest.end());
    return rest[1] == "verify" ? auditVerify(*config, args) : auditRotate(*config, args);
  }
  if (command == "journal" && rest.size() == 2 && rest[1] == "verify") {
    return journalVerify(*config);
  }
  if (command == "pki") {
    std::vector<std::string> pki_args(rest.begin() + 1, rest.end());
    // `issue` and `revoke` default their CA dir to the configured one.
    if (!pki_args.empty() && (pki_args[0] == "issue" || pki_args[0] == "revoke")) {
      bool has_dir = false;
      for (const auto& a : pki_args) has_dir = has_dir || a == "--dir" || a.starts_with("--dir=");
      if (!has_dir) {
        pki_args.push_back("--dir");
        pki_args.push_back(config->pki.dir);
      }
    }
    // `init` needs no store; the others open it when they first need it.
    StorePkiRecords records(*config);
    return pkiCommand(pki_args, records, stdout, stderr);
  }
  std::fprintf(stderr, "qiaod: unknown command \"%s\" (see qiaod --help)\n", command.c_str());
  return 2;
}
