#include "node/cli/qiaoctl.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "node/cli/client.h"

namespace qiao {
namespace {

using nlohmann::json;

constexpr const char* kUsage =
    "Usage: qiaoctl [GLOBAL OPTIONS] COMMAND ...\n"
    "\n"
    "The command line of a Qiao node's API.\n"
    "\n"
    "Commands:\n"
    "  host [check]                      this host's facts; check: may it take guests?\n"
    "  vm list|get|create|delete|start|stop|force-stop|reboot|pause|resume|console-log\n"
    "  task list|get|wait\n"
    "\n"
    "Global options (anywhere on the line):\n"
    "  --config FILE     client configuration (default $QIAO_CONFIG, else\n"
    "                    ~/.config/qiao/config.toml; keys endpoint, ca, cert, key)\n"
    "  --endpoint URL    the node's API, overriding the configuration (https://host:port)\n"
    "  --tenant T        the tenant to act in (needed when a name exists in several)\n"
    "  -o, --output F    table (default) or json\n"
    "  --version         print qiaoctl's version\n"
    "  -h, --help        help; `qiaoctl vm --help`, `qiaoctl vm create --help`, ...\n"
    "\n"
    "Exit codes: 0 ok, 1 failed, 2 usage error.\n";

constexpr const char* kHostUsage =
    "Usage: qiaoctl host           show this host (arch, CPU, memory, accelerator, versions)\n"
    "       qiaoctl host check     check that this host may take guests: one line per item,\n"
    "                              pass/warn/fail; exit 1 when an item fails\n";

constexpr const char* kVmUsage =
    "Usage: qiaoctl vm list [--state S] [--label KEY=VALUE]... [--limit N] [--all]\n"
    "       qiaoctl vm get NAME\n"
    "       qiaoctl vm create -f FILE|- [--no-start] [--wait]\n"
    "       qiaoctl vm start|stop|force-stop|reboot|pause|resume NAME [--wait]\n"
    "       qiaoctl vm delete NAME [--force] [--wait]\n"
    "       qiaoctl vm console-log NAME [--tail BYTES]\n"
    "\n"
    "  list         VMs of the tenants you may see (--all follows every page)\n"
    "  get          one VM\n"
    "  create       a VM from a JSON spec (see docs/api/openapi.yaml, VmSpec); started\n"
    "               unless --no-start\n"
    "  stop         ACPI shutdown; force-stop powers off at once\n"
    "  delete       a running VM only with --force (powers it off first)\n"
    "  console-log  the end of the serial console output (default 64 KiB)\n"
    "  --wait       wait for the task and show its progress\n";

constexpr const char* kTaskUsage =
    "Usage: qiaoctl task list [--state S] [--vm NAME] [--limit N]\n"
    "       qiaoctl task get ID\n"
    "       qiaoctl task wait ID [--timeout SECONDS]\n"
    "\n"
    "  wait   follows the task until it ends (progress on a terminal); exit 0 when it\n"
    "         succeeded, 1 when it failed or the timeout (default 600 s) passed\n";

struct UsageError {
  std::string message;
  const char* help;
};

// Arguments of one command: positionals, flags with values, and switches.
struct Args {
  std::vector<std::string> positional;
  std::multimap<std::string, std::string> values;
  std::vector<std::string> switches;
  bool help = false;

  bool has(const std::string& s) const {
    return std::find(switches.begin(), switches.end(), s) != switches.end();
  }
  std::optional<std::string> value(const std::string& key) const {
    auto it = values.find(key);
    if (it == values.end()) return std::nullopt;
    return it->second;
  }
};

// Splits `in` into an Args, knowing which flags take a value and which are switches.
std::optional<UsageError> parseArgs(const std::vector<std::string>& in,
                                    const std::vector<std::string>& with_value,
                                    const std::vector<std::string>& switches, const char* help,
                                    Args* out) {
  for (size_t i = 0; i < in.size(); ++i) {
    std::string a = in[i];
    if (a == "-h" || a == "--help") {
      out->help = true;
      continue;
    }
    if (a.size() > 1 && a[0] == '-') {
      std::string value;
      bool inline_value = false;
      if (auto eq = a.find('='); eq != std::string::npos && a.starts_with("--")) {
        value = a.substr(eq + 1);
        a = a.substr(0, eq);
        inline_value = true;
      }
      if (std::find(with_value.begin(), with_value.end(), a) != with_value.end()) {
        if (!inline_value) {
          if (i + 1 >= in.size()) return UsageError{a + " needs a value", help};
          value = in[++i];
        }
        out->values.emplace(a, value);
      } else if (std::find(switches.begin(), switches.end(), a) != switches.end() &&
                 !inline_value) {
        out->switches.push_back(a);
      } else {
        return UsageError{"unknown option " + a, help};
      }
    } else {
      out->positional.push_back(a);
    }
  }
  return std::nullopt;
}

std::string urlEncode(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

class Cli {
 public:
  Cli(const CliIo& io, ApiClient client, std::string output, std::string tenant)
      : io_(io), client_(std::move(client)), output_(std::move(output)), tenant_(std::move(tenant)) {}

  int host(const Args& a);
  int vm(const std::string& sub, const Args& a);
  int task(const std::string& sub, const Args& a);

 private:
  // The API's answer as JSON; nullopt after printing the error.
  std::optional<json> call(const std::string& method, const std::string& target,
                           const std::string& body = {});
  int fail(const std::string& message) {
    std::fprintf(io_.err, "error: %s\n", message.c_str());
    return 1;
  }
  void printJson(const json& j) {
    std::fprintf(io_.out, "%s\n",
                 j.dump(2, ' ', false, json::error_handler_t::replace).c_str());
  }
  // "?tenant=T" or "&tenant=T" when a tenant was given.
  std::string tenantQuery(char sep) const {
    return tenant_.empty() ? "" : std::string(1, sep) + "tenant=" + urlEncode(tenant_);
  }
  std::string vmPath(const std::string& name, const std::string& suffix = {}) const {
    return "/v1/vms/" + urlEncode(name) + suffix + tenantQuery('?');
  }
  int waitTask(const std::string& id, int timeout_s);
  // The VM a task worked on, in the task's own tenant.
  std::optional<json> vmOfTask(const json& task) {
    return call("GET", "/v1/vms/" + urlEncode(task.value("target", "")) +
                           "?tenant=" + urlEncode(task.value("tenant", "")));
  }
  void printVm(const json& vm);

  CliIo io_;
  ApiClient client_;
  std::string output_;
  std::string tenant_;
};

std::optional<json> Cli::call(const std::string& method, const std::string& target,
                              const std::string& body) {
  auto response = client_.request(method, target, body);
  if (!response) {
    fail(response.error().message);
    return std::nullopt;
  }
  if (response->status < 200 || response->status >= 300) {
    Error e = errorFromResponse(*response);
    fail(e.message);
    return std::nullopt;
  }
  auto j = json::parse(response->body, nullptr, false);
  if (j.is_discarded()) {
    fail("the server's answer is not JSON");
    return std::nullopt;
  }
  return j;
}

int Cli::host(const Args& a) {
  if (a.help) {
    std::fputs(kHostUsage, io_.out);
    return 0;
  }
  auto info = call("GET", "/v1/host");
  if (!info) return 1;
  if (a.positional.empty()) {
    if (output_ == "json") {
      printJson(*info);
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {{"FIELD", "VALUE"}};
    for (const auto& [k, v] : info->items()) {
      rows.push_back({k, v.is_string() ? v.get<std::string>() : v.dump()});
    }
    std::fputs(formatTable(rows).c_str(), io_.out);
    return 0;
  }
  // host check: each item is pass, warn or fail with its reason.
  struct Check {
    std::string item, verdict, reason;
  };
  std::vector<Check> checks;
  auto health = call("GET", "/v1/healthz");
  if (!health) return 1;
  bool libvirt = (*health)["libvirt"] == "connected";
  checks.push_back({"libvirt", libvirt ? "pass" : "fail",
                    libvirt ? "qiaod is connected to libvirt " +
                                  info->value("libvirt_version", std::string("?"))
                            : "qiaod cannot reach libvirt"});
  bool kvm = (*info)["accelerator"] == "kvm";
  checks.push_back({"accelerator", kvm ? "pass" : "warn",
                    info->value("accelerator_reason", std::string())});
  checks.push_back({"kvm-device", info->value("kvm_device", false) ? "pass" : "warn",
                    info->value("kvm_device", false) ? "/dev/kvm present" : "no /dev/kvm"});
  bool failed = false;
  for (const auto& c : checks) failed = failed || c.verdict == "fail";
  if (output_ == "json") {
    json out = json::array();
    for (const auto& c : checks) {
      out.push_back({{"item", c.item}, {"verdict", c.verdict}, {"reason", c.reason}});
    }
    printJson({{"checks", out}, {"may_take_guests", !failed}});
  } else {
    std::vector<std::vector<std::string>> rows = {{"ITEM", "VERDICT", "REASON"}};
    for (const auto& c : checks) rows.push_back({c.item, c.verdict, c.reason});
    std::fputs(formatTable(rows).c_str(), io_.out);
    std::fprintf(io_.out, "%s\n", failed ? "this host may NOT take guests"
                                         : "this host may take guests");
  }
  return failed ? 1 : 0;
}

void Cli::printVm(const json& vm) {
  if (output_ == "json") {
    printJson(vm);
    return;
  }
  const json& spec = vm.value("spec", json::object());
  std::vector<std::vector<std::string>> rows = {
      {"FIELD", "VALUE"},
      {"name", vm.value("name", "")},
      {"tenant", vm.value("tenant", "")},
      {"state", vm.value("state", "")},
      {"uuid", vm.value("uuid", "")},
      {"domain", vm.value("domain", "")},
      {"arch", spec.value("arch", "")},
      {"vcpus", std::to_string(spec.value("vcpus", 0))},
      {"memory", std::to_string(spec.value("memory_mib", 0)) + " MiB"},
      {"created", vm.value("created_at", "")},
  };
  if (!vm.value("last_error", "").empty()) rows.push_back({"last error", vm.value("last_error", "")});
  std::fputs(formatTable(rows).c_str(), io_.out);
}

int Cli::waitTask(const std::string& id, int timeout_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  std::string last_line;
  json task;
  while (true) {
    auto t = call("GET", "/v1/tasks/" + urlEncode(id));
    if (!t) return 1;
    task = *t;
    std::string state = task.value("state", "");
    int progress = task.value("progress", 0);
    std::string message = task.value("message", "");
    if (io_.err_is_terminal) {
      int filled = std::clamp(progress, 0, 100) / 5;
      std::string bar = "[" + std::string(static_cast<size_t>(filled), '#') +
                        std::string(static_cast<size_t>(20 - filled), ' ') + "]";
      std::fprintf(io_.err, "\r\033[K%s %3d%% %s: %s", bar.c_str(), progress,
                   task.value("kind", "").c_str(), message.substr(0, 60).c_str());
      std::fflush(io_.err);
    } else {
      std::string line = state + " " + std::to_string(progress) + "% " + message;
      if (line != last_line) std::fprintf(io_.err, "task %s: %s\n", id.c_str(), line.c_str());
      last_line = line;
    }
    if (state == "succeeded" || state == "failed" || state == "cancelled") break;
    if (std::chrono::steady_clock::now() >= deadline) {
      if (io_.err_is_terminal) std::fputc('\n', io_.err);
      return fail("task " + id + " did not finish within " + std::to_string(timeout_s) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (io_.err_is_terminal) std::fputc('\n', io_.err);
  if (task.value("state", "") != "succeeded") {
    std::string why = task.contains("error") && task["error"].is_object()
                          ? task["error"].value("message", "")
                          : task.value("message", "");
    return fail("task " + id + " " + task.value("state", "") + ": " + why);
  }
  return 0;
}

int Cli::vm(const std::string& sub, const Args& a) {
  if (a.help || sub.empty()) {
    std::fputs(kVmUsage, sub.empty() && !a.help ? io_.err : io_.out);
    return sub.empty() && !a.help ? 2 : 0;
  }
  auto usage = [&](const std::string& message) {
    std::fprintf(io_.err, "qiaoctl vm %s: %s\n%s", sub.c_str(), message.c_str(), kVmUsage);
    return 2;
  };
  bool wait = a.has("--wait");
  if (sub == "list") {
    if (!a.positional.empty()) return usage("takes no NAME");
    std::string query = "?limit=" + a.value("--limit").value_or("100");
    if (auto s = a.value("--state")) query += "&state=" + urlEncode(*s);
    for (auto [it, end] = a.values.equal_range("--label"); it != end; ++it) {
      query += "&label=" + urlEncode(it->second);
    }
    query += tenantQuery('&');
    json items = json::array();
    std::string token;
    do {
      auto page = call("GET", "/v1/vms" + query +
                                  (token.empty() ? "" : "&page_token=" + urlEncode(token)));
      if (!page) return 1;
      for (const auto& vm : (*page)["items"]) items.push_back(vm);
      token = page->value("next_page_token", "");
    } while (a.has("--all") && !token.empty());
    if (output_ == "json") {
      printJson({{"items", items}, {"next_page_token", token}});
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {
        {"TENANT", "NAME", "STATE", "VCPUS", "MEMORY", "ARCH", "AGE"}};
    long long now = std::time(nullptr);
    for (const auto& vm : items) {
      const json& spec = vm.value("spec", json::object());
      rows.push_back({vm.value("tenant", ""), vm.value("name", ""), vm.value("state", ""),
                      std::to_string(spec.value("vcpus", 0)),
                      std::to_string(spec.value("memory_mib", 0)) + "Mi", spec.value("arch", ""),
                      ageSince(vm.value("created_at", ""), now)});
    }
    std::fputs(formatTable(rows).c_str(), io_.out);
    if (!token.empty()) std::fprintf(io_.err, "(more: pass --all)\n");
    return 0;
  }
  if (sub == "create") {
    if (!a.positional.empty()) return usage("takes no NAME (the spec names the VM)");
    auto file = a.value("-f");
    if (!file) return usage("-f FILE is required (- reads the spec from stdin)");
    std::string spec;
    if (*file == "-") {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, io_.in)) > 0) spec.append(buf, n);
    } else {
      std::ifstream in(*file);
      if (!in) return fail("cannot read " + *file);
      std::stringstream ss;
      ss << in.rdbuf();
      spec = ss.str();
    }
    auto task = call("POST", std::string("/v1/vms") + (a.has("--no-start") ? "?start=false" : ""),
                     spec);
    if (!task) return 1;
    if (!wait) {
      if (output_ == "json") printJson(*task);
      else std::fprintf(io_.out, "task %s\n", task->value("id", "").c_str());
      return 0;
    }
    if (int rc = waitTask(task->value("id", ""), 600); rc != 0) return rc;
    auto vm = vmOfTask(*task);
    if (!vm) return 1;
    printVm(*vm);
    return 0;
  }
  if (a.positional.size() != 1) return usage("needs exactly one NAME");
  const std::string& name = a.positional[0];
  if (sub == "get") {
    auto vm = call("GET", vmPath(name));
    if (!vm) return 1;
    printVm(*vm);
    return 0;
  }
  if (sub == "console-log") {
    std::string target = "/v1/vms/" + urlEncode(name) + "/console-log?tail_bytes=" +
                         a.value("--tail").value_or("65536") + tenantQuery('&');
    auto response = client_.request("GET", target);
    if (!response) return fail(response.error().message);
    if (response->status != 200) return fail(errorFromResponse(*response).message);
    std::fwrite(response->body.data(), 1, response->body.size(), io_.out);
    return 0;
  }
  static const std::vector<std::string> kActions = {"start",  "stop",  "force-stop",
                                                    "reboot", "pause", "resume"};
  std::optional<json> task;
  if (sub == "delete") {
    std::string target = vmPath(name);
    if (a.has("--force")) target += tenant_.empty() ? "?force=true" : "&force=true";
    task = call("DELETE", target);
  } else if (std::find(kActions.begin(), kActions.end(), sub) != kActions.end()) {
    task = call("POST", vmPath(name, "/actions/" + sub));
  } else {
    return usage("unknown command");
  }
  if (!task) return 1;
  if (!wait) {
    if (output_ == "json") printJson(*task);
    else std::fprintf(io_.out, "task %s\n", task->value("id", "").c_str());
    return 0;
  }
  if (int rc = waitTask(task->value("id", ""), 600); rc != 0) return rc;
  if (sub == "delete") {
    std::fprintf(io_.out, "vm %s deleted\n", name.c_str());
    return 0;
  }
  auto vm = vmOfTask(*task);
  if (!vm) return 1;
  if (output_ == "json") printJson(*vm);
  else std::fprintf(io_.out, "vm %s: %s\n", name.c_str(), vm->value("state", "").c_str());
  return 0;
}

int Cli::task(const std::string& sub, const Args& a) {
  if (a.help || sub.empty()) {
    std::fputs(kTaskUsage, sub.empty() && !a.help ? io_.err : io_.out);
    return sub.empty() && !a.help ? 2 : 0;
  }
  auto usage = [&](const std::string& message) {
    std::fprintf(io_.err, "qiaoctl task %s: %s\n%s", sub.c_str(), message.c_str(), kTaskUsage);
    return 2;
  };
  if (sub == "list") {
    if (!a.positional.empty()) return usage("takes no argument");
    std::string query = "?limit=" + a.value("--limit").value_or("50");
    if (auto s = a.value("--state")) query += "&state=" + urlEncode(*s);
    if (auto v = a.value("--vm")) query += "&target=" + urlEncode(*v);
    query += tenantQuery('&');
    auto page = call("GET", "/v1/tasks" + query);
    if (!page) return 1;
    if (output_ == "json") {
      printJson(*page);
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {
        {"ID", "KIND", "TENANT", "VM", "STATE", "PROGRESS", "AGE", "MESSAGE"}};
    long long now = std::time(nullptr);
    for (const auto& t : (*page)["items"]) {
      rows.push_back({t.value("id", ""), t.value("kind", ""), t.value("tenant", ""),
                      t.value("target", ""), t.value("state", ""),
                      std::to_string(t.value("progress", 0)) + "%",
                      ageSince(t.value("created_at", ""), now),
                      t.value("message", "").substr(0, 60)});
    }
    std::fputs(formatTable(rows).c_str(), io_.out);
    return 0;
  }
  if (a.positional.size() != 1) return usage("needs exactly one task ID");
  const std::string& id = a.positional[0];
  if (sub == "get") {
    auto t = call("GET", "/v1/tasks/" + urlEncode(id));
    if (!t) return 1;
    if (output_ == "json") {
      printJson(*t);
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {{"FIELD", "VALUE"}};
    for (const char* k : {"id", "kind", "tenant", "target", "state", "message", "identity",
                          "created_at", "updated_at"}) {
      rows.push_back({k, t->value(k, "")});
    }
    rows.push_back({"progress", std::to_string(t->value("progress", 0)) + "%"});
    if ((*t)["error"].is_object()) rows.push_back({"error", (*t)["error"].value("message", "")});
    std::fputs(formatTable(rows).c_str(), io_.out);
    return 0;
  }
  if (sub == "wait") {
    std::string timeout = a.value("--timeout").value_or("600");
    if (timeout.empty() || timeout.size() > 6 ||
        timeout.find_first_not_of("0123456789") != std::string::npos) {
      return usage("--timeout must be a number of seconds");
    }
    return waitTask(id, std::stoi(timeout));
  }
  return usage("unknown command");
}

}  // namespace

std::string ageSince(const std::string& t, long long now_unix) {
  std::tm tm{};
  if (t.size() < 19 || strptime(t.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) {
    return "-";
  }
  long long then = timegm(&tm);
  long long d = std::max(0LL, now_unix - then);
  if (d < 120) return std::to_string(d) + "s";
  if (d < 7200) return std::to_string(d / 60) + "m";
  if (d < 172800) return std::to_string(d / 3600) + "h";
  return std::to_string(d / 86400) + "d";
}

std::string formatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

int runQiaoctl(const std::vector<std::string>& all_args, const CliIo& io) {
  // Global options come out first, wherever they stand.
  std::string config_path, endpoint, tenant, output = "table";
  std::vector<std::string> args;
  for (size_t i = 0; i < all_args.size(); ++i) {
    const std::string& a = all_args[i];
    auto take = [&](std::string* into) -> bool {
      if (auto eq = a.find('='); eq != std::string::npos && a.starts_with("--")) {
        *into = a.substr(eq + 1);
        return true;
      }
      if (i + 1 >= all_args.size()) return false;
      *into = all_args[++i];
      return true;
    };
    auto is = [&](const char* flag) {
      return a == flag || a.starts_with(std::string(flag) + "=");
    };
    bool ok = true;
    if (is("--config")) ok = take(&config_path);
    else if (is("--endpoint")) ok = take(&endpoint);
    else if (is("--tenant")) ok = take(&tenant);
    else if (a == "-o" || is("--output")) ok = take(&output);
    else if (a == "--version") {
      std::fprintf(io.out, "qiaoctl %s\n", QIAO_VERSION);
      return 0;
    } else {
      args.push_back(a);
      continue;
    }
    if (!ok) {
      std::fprintf(io.err, "qiaoctl: %s needs a value\n", a.c_str());
      return 2;
    }
  }
  if (output != "table" && output != "json") {
    std::fprintf(io.err, "qiaoctl: -o must be table or json\n");
    return 2;
  }
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? io.err : io.out);
    return args.empty() ? 2 : 0;
  }
  const std::string group = args[0];
  std::string sub;
  size_t rest_from = 1;
  if (group != "host" && args.size() > 1 && args[1][0] != '-') {
    sub = args[1];
    rest_from = 2;
  }
  std::vector<std::string> rest(args.begin() + static_cast<long>(rest_from), args.end());
  Args parsed;
  std::optional<UsageError> bad;
  if (group == "host") {
    bad = parseArgs(rest, {}, {}, kHostUsage, &parsed);
  } else if (group == "vm") {
    bad = parseArgs(rest, {"-f", "--state", "--label", "--limit", "--tail"},
                    {"--wait", "--no-start", "--force", "--all"}, kVmUsage, &parsed);
  } else if (group == "task") {
    bad = parseArgs(rest, {"--state", "--vm", "--limit", "--timeout"}, {}, kTaskUsage, &parsed);
  } else {
    std::fprintf(io.err, "qiaoctl: unknown command \"%s\"\n\n%s", group.c_str(), kUsage);
    return 2;
  }
  if (bad) {
    std::fprintf(io.err, "qiaoctl %s: %s\n\n%s", group.c_str(), bad->message.c_str(), bad->help);
    return 2;
  }
  // Help and usage errors need no server.
  if (parsed.help) {
    std::fputs(group == "host" ? kHostUsage : group == "vm" ? kVmUsage : kTaskUsage, io.out);
    return 0;
  }
  static const std::vector<std::string> kVmCommands = {
      "list", "get", "create", "delete", "start", "stop", "force-stop", "reboot", "pause",
      "resume", "console-log"};
  static const std::vector<std::string> kTaskCommands = {"list", "get", "wait"};
  const auto& known = group == "vm" ? kVmCommands : kTaskCommands;
  if (group == "host" && !(parsed.positional.empty() ||
                            (parsed.positional.size() == 1 && parsed.positional[0] == "check"))) {
    std::fprintf(io.err, "qiaoctl host: takes no argument but check\n\n%s", kHostUsage);
    return 2;
  }
  if (group != "host" && std::find(known.begin(), known.end(), sub) == known.end()) {
    std::fprintf(io.err, "qiaoctl %s: unknown command \"%s\"\n\n%s", group.c_str(), sub.c_str(),
                 group == "vm" ? kVmUsage : kTaskUsage);
    return 2;
  }
  auto config = loadClientConfig(config_path);
  if (!config) {
    std::fprintf(io.err, "error: %s\n", config.error().message.c_str());
    return 1;
  }
  if (!endpoint.empty()) config->endpoint = endpoint;
  auto client = ApiClient::create(*config);
  if (!client) {
    std::fprintf(io.err, "error: %s\n", client.error().message.c_str());
    return 1;
  }
  Cli cli(io, std::move(*client), output, tenant);
  if (group == "host") return cli.host(parsed);
  if (group == "vm") return cli.vm(sub, parsed);
  return cli.task(sub, parsed);
}

}  // namespace qiao
