#include "node/cli/commands.h"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "node/cli/output.h"
#include "node/client/client.h"

namespace qiao {
namespace {

using nlohmann::json;

constexpr int kDefaultWaitSeconds = 600;

// "?a=1&b=2" from the parameters that have a value; "" when none.
class Query {
 public:
  Query& add(const std::string& key, const std::string& value) {
    if (!value.empty()) {
      text_ += (text_.empty() ? "?" : "&") + key + "=" + urlEncode(value);
    }
    return *this;
  }
  const std::string& str() const { return text_; }

 private:
  std::string text_;
};

std::string str(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return "";
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

long long num(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return 0;
  return j[key].get<long long>();
}

bool isTerminalState(const std::string& state) {
  return state == "succeeded" || state == "failed" || state == "cancelled";
}

}  // namespace

// One command run: the invocation, where it prints, and the client. Its command members are
// what the table's rows (CommandSpec::run) name.
class Cli {
 public:
  Cli(const Invocation& inv, const CliIo& io, ApiClient client)
      : inv_(inv), io_(io), client_(std::move(client)) {}

  int run() { return (this->*inv_.command->run)(); }

  int hostShow();
  int hostCheck();
  int hostList();
  int hostGet();
  int clusterStatus();
  int clusterTokenCreate();
  int hostRemove();
  int vmList();
  int vmGet();
  int vmCreate();
  int vmChange();  // delete and the actions: a task, then maybe a wait
  int vmConsoleLog();
  int vmStats();
  int taskList();
  int taskGet();
  int taskWait();
  int taskCancel();
  int volumeOrImageList();
  int volumeOrImageGet();
  int volumeCreate();
  int volumeResize();
  int vmDisk();
  int vmNic();
  int vmResize();
  int volumeLimits();
  int volumeCopy();
  int imageCreate();
  int networkList();
  int networkGet();
  int networkCreate();
  int groupList();
  int groupGet();
  int groupWrite();  // create and set-rules
  int groupDelete();
  int quotaGet();
  int quotaSet();
  // delete of a volume, an image or a network: a task, then maybe a wait.
  int objectDelete();

 private:
  int printQuota(const json& quota);
  // After a 202 on a volume or an image: the task, or with --wait the object once done.
  // Follows the task (--wait) and prints the object `name` (default: the operand) after.
  int finishObjectTask(const json& task, const std::string& name = {});
  // "/v1/volumes/NAME" or "/v1/images/NAME" of the operand, with suffix.
  std::string objectTarget(const std::string& suffix = {}) const {
    return "/v1/" + std::string(inv_.command->group) + "s/" + urlEncode(inv_.operand) + suffix;
  }
  void printObject(const json& object);

  // The JSON answer of a 2xx; nullopt after printing the error.
  std::optional<json> call(const std::string& method, const std::string& target,
                           const std::string& body = {});
  int fail(const std::string& message) {
    std::fprintf(io_.err, "error: %s\n", message.c_str());
    return 1;
  }
  int failWith(const Error& error);
  void printJson(const json& j) {
    std::fprintf(io_.out, "%s\n", j.dump(2, ' ', false, json::error_handler_t::replace).c_str());
  }
  void printTable(const std::vector<std::vector<std::string>>& rows) {
    std::fputs(formatTable(rows).c_str(), io_.out);
  }
  void printVm(const json& vm);
  std::string vmTarget(const std::string& suffix = {}) const {
    return "/v1/vms/" + urlEncode(inv_.operand) + suffix;
  }
  // Follows the task until it ends or timeout_s passes; the last answer in *final.
  // 0 when the task succeeded (or, with `wanted` "cancelled", ended cancelled).
  int waitTask(const std::string& id, int timeout_s, json* final,
               std::string_view wanted = "succeeded");
  int waitSeconds() const {
    auto t = inv_.value("--timeout");
    return t ? std::stoi(*t) : kDefaultWaitSeconds;
  }
  // After a 202: without --wait prints the task (its id, or the JSON) and returns 0; with
  // --wait follows it, returns its exit code when it did not succeed and nullopt when it did,
  // the last answer in *final.
  std::optional<int> followTask(const json& task, json* final);
  // The VM a finished task worked on, in the task's tenant (the name alone may be ambiguous).
  // After a 202 on a VM's device or size: the task's id, or with --wait the VM once done
  // (JSON, or one line of `line(vm)`).
  int finishVmChange(const std::optional<json>& task,
                     const std::function<std::string(const json& vm)>& line);
  std::optional<json> vmOfTask(const json& task) {
    return call("GET", "/v1/vms/" + urlEncode(str(task, "target")) +
                           Query().add("tenant", str(task, "tenant")).str());
  }

  const Invocation& inv_;
  CliIo io_;
  ApiClient client_;
};

int Cli::failWith(const Error& error) {
  std::fprintf(io_.err, "error: %s\n", error.message.c_str());
  auto details = json::parse(error.details_json, nullptr, false);
  if (details.is_object()) {
    for (const auto& [key, value] : details.items()) {
      if (key == "subsystem") continue;  // which part of qiaod said it: no help to the reader
      std::fprintf(io_.err, "  %s: %s\n", key.c_str(),
                   (value.is_string() ? value.get<std::string>() : value.dump()).c_str());
    }
  }
  return 1;
}

std::optional<json> Cli::call(const std::string& method, const std::string& target,
                              const std::string& body) {
  auto response = client_.request(method, target, body);
  if (!response) {
    failWith(response.error());
    return std::nullopt;
  }
  if (response->status < 200 || response->status >= 300) {
    failWith(errorFromResponse(*response));
    return std::nullopt;
  }
  auto j = json::parse(response->body, nullptr, false);
  if (j.is_discarded()) {
    fail("the answer to " + method + " " + target + " is not JSON (HTTP " +
         std::to_string(response->status) + ", " + response->content_type + ")");
    return std::nullopt;
  }
  return j;
}

namespace {

std::string gib(long long bytes) {
  constexpr long long kGiB = 1LL << 30;
  if (bytes % kGiB == 0) return std::to_string(bytes / kGiB) + "Gi";
  return std::to_string((bytes + (1 << 20) - 1) >> 20) + "Mi";
}

}  // namespace

int Cli::volumeOrImageList() {
  const bool volumes = inv_.command->group == "volume";
  auto page = call("GET", std::string(volumes ? "/v1/volumes" : "/v1/images") +
                              Query().add("tenant", inv_.tenant).str());
  if (!page) return 1;
  if (inv_.json_output) {
    printJson(*page);
    return 0;
  }
  const long long now = static_cast<long long>(std::time(nullptr));
  std::vector<std::vector<std::string>> rows;
  if (volumes) {
    rows.push_back({"TENANT", "NAME", "SIZE", "STATE", "VM", "BACKEND", "AGE"});
  } else {
    rows.push_back({"TENANT", "NAME", "STATE", "FORMAT", "SIZE", "SHA256", "AGE"});
  }
  if (page->contains("items") && (*page)["items"].is_array()) {
    for (const auto& o : (*page)["items"]) {
      if (volumes) {
        rows.push_back({str(o, "tenant"), str(o, "name"), gib(num(o, "size_bytes")),
                        str(o, "state"),
                        str(o, "attached_vm").empty() ? "-" : str(o, "attached_vm"),
                        str(o, "backend"), ageSince(str(o, "created_at"), now)});
      } else {
        const std::string tenant = str(o, "tenant");
        const std::string sha = str(o, "sha256");
        rows.push_back({tenant.empty() ? "(public)" : tenant, str(o, "name"), str(o, "state"),
                        str(o, "format").empty() ? "-" : str(o, "format"),
                        gib(num(o, "virtual_size")), sha.empty() ? "-" : sha.substr(0, 12),
                        ageSince(str(o, "created_at"), now)});
      }
    }
  }
  printTable(rows);
  return 0;
}

void Cli::printObject(const json& object) {
  if (inv_.json_output) {
    printJson(object);
    return;
  }
  std::vector<std::vector<std::string>> rows = {{"FIELD", "VALUE"}};
  for (const auto& [key, value] : object.items()) {
    if (value.is_object()) {
      for (const auto& [k, v] : value.items()) rows.push_back({key + "." + k, v.dump()});
      continue;
    }
    rows.push_back({key, value.is_string() ? value.get<std::string>() : value.dump()});
  }
  printTable(rows);
}

int Cli::volumeOrImageGet() {
  auto object = call("GET", objectTarget() + Query().add("tenant", inv_.tenant).str());
  if (!object) return 1;
  printObject(*object);
  return 0;
}

int Cli::finishObjectTask(const json& task, const std::string& name) {
  json final;
  if (auto done = followTask(task, &final)) return *done;
  auto object = call("GET", "/v1/" + std::string(inv_.command->group) + "s/" +
                                urlEncode(name.empty() ? inv_.operand : name) +
                                Query().add("tenant", str(final, "tenant")).str());
  if (!object) return 1;
  printObject(*object);
  return 0;
}

int Cli::volumeCreate() {
  json spec = {{"name", inv_.operand}, {"size_gib", std::stoll(*inv_.value("--size-gib"))}};
  if (!inv_.tenant.empty()) spec["tenant"] = inv_.tenant;
  if (auto pool = inv_.value("--pool")) spec["pool"] = *pool;
  json qos = json::object();
  if (auto v = inv_.value("--iops")) qos["iops"] = std::stoll(*v);
  if (auto v = inv_.value("--bytes-per-sec")) qos["bytes_per_sec"] = std::stoll(*v);
  if (!qos.empty()) spec["qos"] = qos;
  auto task = call("POST", "/v1/volumes", spec.dump());
  if (!task) return 1;
  return finishObjectTask(*task);
}

int Cli::volumeResize() {
  auto task = call("POST", objectTarget("/resize") + Query().add("tenant", inv_.tenant).str(),
                   json{{"size_gib", std::stoll(*inv_.value("--size-gib"))}}.dump());
  if (!task) return 1;
  return finishObjectTask(*task);
}

int Cli::volumeCopy() {
  json body = {{"name", *inv_.value("--to")}};
  if (auto pool = inv_.value("--pool")) body["pool"] = *pool;
  if (auto cap = inv_.value("--bandwidth-mib-s")) body["bandwidth_mib_s"] = std::stoll(*cap);
  auto task =
      call("POST", objectTarget("/copy") + Query().add("tenant", inv_.tenant).str(), body.dump());
  if (!task) return 1;
  return finishObjectTask(*task, *inv_.value("--to"));
}

int Cli::volumeLimits() {
  json qos = json::object();
  for (const char* flag : {"--iops", "--bytes-per-sec", "--read-iops", "--write-iops",
                           "--read-bytes-per-sec", "--write-bytes-per-sec"}) {
    if (auto v = inv_.value(flag)) {
      std::string field = std::string(flag).substr(2);
      std::replace(field.begin(), field.end(), '-', '_');
      qos[field] = std::stoll(*v);
    }
  }
  if (qos.empty() != inv_.has("--none")) {
    std::fprintf(io_.err, "error: give the limits to set, or --none to remove them all\n");
    return 2;
  }
  auto task =
      call("PUT", objectTarget("/limits") + Query().add("tenant", inv_.tenant).str(), qos.dump());
  if (!task) return 1;
  return finishObjectTask(*task);
}

int Cli::imageCreate() {
  const auto file = inv_.value("--file");
  const auto source = inv_.value("--source-path");
  if (file.has_value() == source.has_value()) {
    std::fprintf(io_.err, "error: give either --file (upload) or --source-path (a host path)\n");
    return 2;
  }
  json spec = {{"name", inv_.operand}};
  if (!inv_.tenant.empty()) spec["tenant"] = inv_.tenant;
  if (auto f = inv_.value("--format")) spec["format"] = *f;
  if (inv_.has("--public")) spec["public"] = true;
  if (source) spec["source_path"] = *source;
  if (file && ::access(file->c_str(), R_OK) != 0) {
    return fail("cannot read " + *file + ": " + std::strerror(errno));
  }
  auto made = call("POST", "/v1/images", spec.dump());
  if (!made) return 1;
  if (source) return finishObjectTask(*made);
  // The image waits for its data: stream the file.
  const std::string tenant = str(*made, "tenant");
  std::string target = "/v1/images/" + urlEncode(inv_.operand) + "/data";
  if (!tenant.empty()) target += Query().add("tenant", tenant).str();
  auto response = client_.upload(target, *file);
  if (!response) return failWith(response.error());
  if (response->status / 100 != 2) return failWith(errorFromResponse(*response));
  auto task = json::parse(response->body, nullptr, false);
  if (!task.is_object()) return fail("the server's answer to the upload is not JSON");
  return finishObjectTask(task);
}

int Cli::networkList() {
  auto page = call("GET", "/v1/networks" + Query().add("tenant", inv_.tenant).str());
  if (!page) return 1;
  if (inv_.json_output) {
    printJson(*page);
    return 0;
  }
  const long long now = static_cast<long long>(std::time(nullptr));
  std::vector<std::vector<std::string>> rows = {
      {"TENANT", "NAME", "TYPE", "SEGMENT", "SUBNET", "GATEWAY", "DHCP", "STATE", "AGE"}};
  if (page->contains("items") && (*page)["items"].is_array()) {
    for (const auto& o : (*page)["items"]) {
      rows.push_back({str(o, "tenant"), str(o, "name"), str(o, "type"), str(o, "segment_id"),
                      str(o, "subnet"), str(o, "gateway").empty() ? "-" : str(o, "gateway"),
                      str(o, "dhcp_server").empty() ? "off" : str(o, "dhcp_server"),
                      str(o, "state"), ageSince(str(o, "created_at"), now)});
    }
  }
  printTable(rows);
  return 0;
}

int Cli::networkGet() {
  auto network = call("GET", objectTarget() + Query().add("tenant", inv_.tenant).str());
  if (!network) return 1;
  if (inv_.json_output) {
    printJson(*network);
    return 0;
  }
  json ports = network->value("ports", json::array());
  network->erase("ports");
  printObject(*network);
  if (!ports.is_array() || ports.empty()) return 0;
  std::vector<std::vector<std::string>> rows = {{"VM", "NIC", "DEVICE", "MAC", "IP", "OFPORT"}};
  for (const auto& p : ports) {
    rows.push_back({str(p, "vm"), str(p, "nic"), str(p, "device"), str(p, "mac"), str(p, "ip"),
                    str(p, "ofport")});
  }
  std::fputs("\n", io_.out);
  printTable(rows);
  return 0;
}

int Cli::networkCreate() {
  json spec = {{"name", inv_.operand}, {"subnet", *inv_.value("--subnet")}};
  if (!inv_.tenant.empty()) spec["tenant"] = inv_.tenant;
  if (auto v = inv_.value("--type")) spec["type"] = *v;
  if (auto v = inv_.value("--segment-id")) spec["segment_id"] = std::stoll(*v);
  if (auto v = inv_.value("--gateway")) spec["gateway"] = *v;
  if (inv_.has("--no-dhcp")) spec["dhcp"] = false;
  if (auto dns = inv_.values("--dns"); !dns.empty()) spec["dns"] = dns;
  if (auto v = inv_.value("--mtu")) spec["mtu"] = std::stoll(*v);
  auto task = call("POST", "/v1/networks", spec.dump());
  if (!task) return 1;
  return finishObjectTask(*task);
}

namespace {

// DIRECTION[:PROTOCOL[:PORTS[:REMOTE]]] as the API's rule; the server validates the values.
std::optional<json> parseRuleFlag(const std::string& text, std::string* error) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t pos; (pos = text.find(':', start)) != std::string::npos; start = pos + 1) {
    parts.push_back(text.substr(start, pos - start));
  }
  parts.push_back(text.substr(start));
  if (parts.size() > 4 || parts[0].empty()) {
    *error = "--rule " + text + ": expected DIRECTION[:PROTOCOL[:PORTS[:REMOTE]]]";
    return std::nullopt;
  }
  json rule = {{"direction", parts[0]}};
  if (parts.size() > 1 && !parts[1].empty()) rule["protocol"] = parts[1];
  if (parts.size() > 2 && !parts[2].empty()) {
    const std::string& ports = parts[2];
    size_t dash = ports.find('-');
    char* end = nullptr;
    long lo = std::strtol(ports.c_str(), &end, 10);
    long hi = lo;
    bool ok = end != ports.c_str() && (dash == std::string::npos ? *end == '\0' : *end == '-');
    if (ok && dash != std::string::npos) {
      const char* rest = ports.c_str() + dash + 1;
      hi = std::strtol(rest, &end, 10);
      ok = end != rest && *end == '\0';
    }
    if (!ok) {
      *error = "--rule " + text + ": PORTS is a port or MIN-MAX";
      return std::nullopt;
    }
    rule["port_min"] = lo;
    rule["port_max"] = hi;
  }
  if (parts.size() > 3 && !parts[3].empty()) {
    if (parts[3].rfind("group=", 0) == 0) {
      rule["remote_group"] = parts[3].substr(6);
    } else {
      rule["remote_cidr"] = parts[3];
    }
  }
  return rule;
}

}  // namespace

int Cli::groupList() {
  auto page = call("GET", "/v1/security-groups" + Query().add("tenant", inv_.tenant).str());
  if (!page) return 1;
  if (inv_.json_output) {
    printJson(*page);
    return 0;
  }
  const long long now = static_cast<long long>(std::time(nullptr));
  std::vector<std::vector<std::string>> rows = {{"TENANT", "NAME", "RULES", "AGE"}};
  for (const auto& g : page->value("items", json::array())) {
    rows.push_back({str(g, "tenant"), str(g, "name"),
                    std::to_string(g.value("rules", json::array()).size()),
                    ageSince(str(g, "created_at"), now)});
  }
  printTable(rows);
  return 0;
}

int Cli::groupGet() {
  auto group = call("GET", "/v1/security-groups/" + urlEncode(inv_.operand) +
                               Query().add("tenant", inv_.tenant).str());
  if (!group) return 1;
  if (inv_.json_output) {
    printJson(*group);
    return 0;
  }
  json rules = group->value("rules", json::array());
  group->erase("rules");
  printObject(*group);
  std::vector<std::vector<std::string>> rows = {{"DIRECTION", "PROTOCOL", "PORTS", "REMOTE"}};
  for (const auto& r : rules) {
    std::string ports = r.contains("port_min") ? str(r, "port_min") : "all";
    if (r.contains("port_max") && str(r, "port_max") != str(r, "port_min")) {
      ports += "-" + str(r, "port_max");
    }
    std::string remote = r.contains("remote_group")  ? "group " + str(r, "remote_group")
                         : r.contains("remote_cidr") ? str(r, "remote_cidr")
                                                     : "anywhere";
    rows.push_back({str(r, "direction"), str(r, "protocol"), ports, remote});
  }
  std::fputs("\n", io_.out);
  printTable(rows);
  return 0;
}

int Cli::groupWrite() {
  json rules = json::array();
  for (const auto& text : inv_.values("--rule")) {
    std::string error;
    auto rule = parseRuleFlag(text, &error);
    if (!rule) {
      std::fprintf(io_.err, "error: %s\n", error.c_str());
      return 2;
    }
    rules.push_back(*rule);
  }
  std::optional<json> group;
  if (inv_.command->name == "create") {
    json spec = {{"name", inv_.operand}, {"rules", rules}};
    if (!inv_.tenant.empty()) spec["tenant"] = inv_.tenant;
    group = call("POST", "/v1/security-groups", spec.dump());
  } else {
    group = call(
        "PUT",
        "/v1/security-groups/" + urlEncode(inv_.operand) + Query().add("tenant", inv_.tenant).str(),
        json{{"rules", rules}}.dump());
  }
  if (!group) return 1;
  printObject(*group);
  return 0;
}

int Cli::groupDelete() {
  auto done = call("DELETE", "/v1/security-groups/" + urlEncode(inv_.operand) +
                                 Query().add("tenant", inv_.tenant).str());
  if (!done) return 1;
  if (inv_.json_output) {
    printJson(*done);
  } else {
    std::fprintf(io_.out, "security group %s deleted\n", inv_.operand.c_str());
  }
  return 0;
}

int Cli::printQuota(const json& quota) {
  if (inv_.json_output) {
    printJson(quota);
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"QUOTA", "LIMIT", "USED"}};
  const json limits = quota.value("limits", json::object());
  const json usage = quota.value("usage", json::object());
  for (const auto& [key, limit] : limits.items()) {
    const long long most = limit.is_number_integer() ? limit.get<long long>() : -1;
    rows.push_back(
        {key, most < 0 ? "none" : std::to_string(most), std::to_string(usage.value(key, 0LL))});
  }
  printTable(rows);
  return 0;
}

int Cli::quotaGet() {
  auto quota = call("GET", "/v1/quotas/" + urlEncode(inv_.operand));
  if (!quota) return 1;
  return printQuota(*quota);
}

int Cli::quotaSet() {
  json changes = json::object();
  for (const char* flag : {"--vms", "--vcpus", "--memory-mib", "--volume-gib", "--images",
                           "--networks", "--uploads"}) {
    auto v = inv_.value(flag);
    if (!v) continue;
    std::string field = std::string(flag).substr(2);
    std::replace(field.begin(), field.end(), '-', '_');
    if (*v == "none") {
      changes[field] = -1;
    } else if (*v == "default") {
      changes[field] = nullptr;
    } else if (!v->empty() && v->size() <= 12 &&
               v->find_first_not_of("0123456789") == std::string::npos) {
      changes[field] = std::stoll(*v);
    } else {
      std::fprintf(io_.err, "error: %s takes a number, none or default, not %s\n", flag,
                   v->c_str());
      return 2;
    }
  }
  if (changes.empty()) {
    std::fprintf(io_.err, "error: give at least one quota to set (qiaoctl quota set --help)\n");
    return 2;
  }
  auto quota = call("PUT", "/v1/quotas/" + urlEncode(inv_.operand), changes.dump());
  if (!quota) return 1;
  return printQuota(*quota);
}

int Cli::objectDelete() {
  auto task = call("DELETE", objectTarget() + Query().add("tenant", inv_.tenant).str());
  if (!task) return 1;
  json final;
  if (auto done = followTask(*task, &final)) return *done;
  if (inv_.json_output) {
    printJson(final);
  } else {
    std::fprintf(io_.out, "%s %s deleted\n", std::string(inv_.command->group).c_str(),
                 inv_.operand.c_str());
  }
  return 0;
}

int Cli::hostShow() {
  auto host = call("GET", "/v1/host");
  if (!host) return 1;
  if (inv_.json_output) {
    printJson(*host);
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"FIELD", "VALUE"}};
  for (const auto& [key, value] : host->items()) {
    rows.push_back({key, value.is_string() ? value.get<std::string>() : value.dump()});
  }
  printTable(rows);
  return 0;
}

int Cli::hostCheck() {
  auto result = call("GET", "/v1/host/check");
  if (!result) return 1;
  const bool ok = result->value("ok", false);
  if (inv_.json_output) {
    printJson(*result);
    return ok ? 0 : 1;
  }
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> verdicts;
  if (result->contains("checks") && (*result)["checks"].is_array()) {
    for (const auto& c : (*result)["checks"]) {
      verdicts.push_back(str(c, "verdict"));
      rows.push_back({str(c, "verdict"), str(c, "name"), str(c, "detail")});
    }
  }
  // Colour goes on after alignment: escape codes take no column.
  std::istringstream lines(formatTable(rows));
  size_t i = 0;
  for (std::string line; std::getline(lines, line) && i < verdicts.size(); ++i) {
    Colour colour = verdicts[i] == "pass"   ? Colour::kGreen
                    : verdicts[i] == "warn" ? Colour::kYellow
                                            : Colour::kRed;
    std::fprintf(io_.out, "%s%s\n",
                 colourize(line.substr(0, 4), colour, io_.out_is_terminal).c_str(),
                 line.substr(4).c_str());
  }
  std::fprintf(io_.out, "%s\n",
               ok ? "This host may take guests."
                  : "This host must not take guests until the failed items are fixed.");
  return ok ? 0 : 1;
}

void Cli::printVm(const json& vm) {
  if (inv_.json_output) {
    printJson(vm);
    return;
  }
  json spec = vm.contains("spec") && vm["spec"].is_object() ? vm["spec"] : json::object();
  std::string labels;
  if (spec.contains("labels") && spec["labels"].is_object()) {
    for (const auto& [k, v] : spec["labels"].items()) {
      labels +=
          (labels.empty() ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    }
  }
  std::vector<std::vector<std::string>> rows = {
      {"FIELD", "VALUE"},
      {"name", str(vm, "name")},
      {"tenant", str(vm, "tenant")},
      {"state", str(vm, "state")},
      {"uuid", str(vm, "uuid")},
      {"domain", str(vm, "domain")},
      {"arch", str(spec, "arch")},
      {"vcpus", std::to_string(num(spec, "vcpus"))},
      {"memory", formatMib(num(spec, "memory_mib"))},
      {"firmware", str(spec, "firmware")},
      {"accel", str(spec, "accel")},
      {"labels", labels},
      {"created", str(vm, "created_at")},
      {"updated", str(vm, "updated_at")},
  };
  if (!str(vm, "last_error").empty()) rows.push_back({"last error", str(vm, "last_error")});
  printTable(rows);
}

int Cli::vmList() {
  std::string base = "/v1/vms";
  Query query;
  query.add("tenant", inv_.tenant)
      .add("state", inv_.value("--state").value_or(""))
      .add("limit", inv_.value("--limit").value_or(""));
  for (const auto& label : inv_.values("--label")) query.add("label", label);
  json items = json::array();
  json last_page;
  std::string token;
  do {
    std::string target = base + query.str();
    if (!token.empty())
      target += (query.str().empty() ? "?" : "&") + ("page_token=" + urlEncode(token));
    auto page = call("GET", target);
    if (!page) return 1;
    if (page->contains("items") && (*page)["items"].is_array()) {
      for (const auto& vm : (*page)["items"]) items.push_back(vm);
    }
    token = str(*page, "next_page_token");
    last_page = std::move(*page);
  } while (inv_.has("--all") && !token.empty());
  if (inv_.json_output) {
    if (inv_.has("--all"))
      printJson({{"items", items}, {"next_page_token", ""}});
    else
      printJson(last_page);
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"TENANT", "NAME", "STATE", "HOST", "VCPUS", "MEMORY", "ARCH", "AGE"}};
  long long now = std::time(nullptr);
  for (const auto& vm : items) {
    json spec = vm.contains("spec") && vm["spec"].is_object() ? vm["spec"] : json::object();
    std::string arch = str(spec, "arch");
    std::string host = str(vm, "host");
    rows.push_back({str(vm, "tenant"), str(vm, "name"), str(vm, "state"), host.empty() ? "-" : host,
                    std::to_string(num(spec, "vcpus")), formatMib(num(spec, "memory_mib")),
                    arch.empty() ? "-" : arch, ageSince(str(vm, "created_at"), now)});
  }
  printTable(rows);
  if (!token.empty()) std::fprintf(io_.err, "(more VMs: pass --all)\n");
  return 0;
}

int Cli::vmGet() {
  auto vm = call("GET", vmTarget() + Query().add("tenant", inv_.tenant).str());
  if (!vm) return 1;
  printVm(*vm);
  return 0;
}

int Cli::vmCreate() {
  const std::string file = *inv_.value("-f");
  std::string text;
  if (file == "-") {
    char buf[8192];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, io_.in)) > 0;) text.append(buf, n);
  } else {
    std::ifstream in(file);
    if (!in) return fail("cannot read the VM spec " + file + ": " + std::strerror(errno));
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  const std::string from = file == "-" ? "the VM spec on standard input" : "the VM spec " + file;
  json spec;
  try {
    spec = json::parse(text);
  } catch (const json::parse_error& e) {
    return fail(from + " is not JSON: " + e.what());
  }
  if (!spec.is_object()) return fail(from + " is not a JSON object (a VmSpec)");
  if (!inv_.tenant.empty()) {
    // The route takes the tenant from the spec, so --tenant goes there.
    std::string in_spec = str(spec, "tenant");
    if (in_spec.empty()) {
      spec["tenant"] = inv_.tenant;
    } else if (in_spec != inv_.tenant) {
      return fail(from + " names tenant " + in_spec + " but --tenant says " + inv_.tenant);
    }
  }
  if (auto host = inv_.value("--host")) spec["host"] = *host;
  auto task =
      call("POST", "/v1/vms" + Query().add("start", inv_.has("--no-start") ? "false" : "").str(),
           spec.dump());
  if (!task) return 1;
  json final;
  if (auto done = followTask(*task, &final)) return *done;
  auto vm = vmOfTask(final);
  if (!vm) return 1;
  printVm(*vm);
  return 0;
}

int Cli::vmChange() {
  const std::string action(inv_.command->name);
  std::optional<json> task;
  if (action == "delete") {
    task = call("DELETE", vmTarget() + Query()
                                           .add("tenant", inv_.tenant)
                                           .add("force", inv_.has("--force") ? "true" : "")
                                           .str());
  } else {
    task = call("POST", vmTarget("/actions/" + action) + Query().add("tenant", inv_.tenant).str());
  }
  if (!task) return 1;
  json final;
  if (auto done = followTask(*task, &final)) return *done;
  if (action == "delete") {
    if (inv_.json_output)
      printJson(final);
    else
      std::fprintf(io_.out, "vm %s deleted\n", inv_.operand.c_str());
    return 0;
  }
  auto vm = vmOfTask(final);
  if (!vm) return 1;
  if (inv_.json_output)
    printJson(*vm);
  else
    std::fprintf(io_.out, "vm %s: %s\n", str(*vm, "name").c_str(), str(*vm, "state").c_str());
  return 0;
}

int Cli::vmDisk() {
  std::optional<json> task;
  const auto volume = inv_.value("--volume");
  if (inv_.command->name == "disk add") {
    json disk = json::object();
    if (volume) disk["volume"] = *volume;
    if (auto image = inv_.value("--image")) disk["image"] = *image;
    if (auto size = inv_.value("--size-gib")) disk["size_gib"] = std::stoll(*size);
    if (inv_.has("--keep")) disk["keep"] = true;
    if (!disk.contains("image") && (disk.contains("size_gib") || disk.contains("keep"))) {
      std::fprintf(io_.err, "error: --size-gib and --keep go with --image\n");
      return 2;
    }
    if (!disk.contains("image") && !volume) {
      std::fprintf(io_.err, "error: give --volume V, or --image I\n");
      return 2;
    }
    task = call("POST", vmTarget("/disks") + Query().add("tenant", inv_.tenant).str(), disk.dump());
  } else {
    task = call("DELETE", vmTarget("/disks/" + urlEncode(*volume)) +
                              Query().add("tenant", inv_.tenant).str());
  }
  const std::string what = volume ? *volume : "from image " + *inv_.value("--image");
  return finishVmChange(task, [&](const json&) {
    return "disk " + what + (inv_.command->name == "disk add" ? " added" : " removed");
  });
}

int Cli::vmNic() {
  std::optional<json> task;
  if (inv_.command->name == "nic add") {
    json nic = {{"network", *inv_.value("--network")}};
    if (auto ip = inv_.value("--ip")) nic["ip"] = *ip;
    if (auto mac = inv_.value("--mac")) nic["mac"] = *mac;
    if (auto groups = inv_.values("--security-group"); !groups.empty()) {
      nic["security_groups"] = groups;
    }
    task = call("POST", vmTarget("/nics") + Query().add("tenant", inv_.tenant).str(), nic.dump());
  } else {
    task = call("DELETE", vmTarget("/nics/" + urlEncode(*inv_.value("--mac"))) +
                              Query().add("tenant", inv_.tenant).str());
  }
  return finishVmChange(task, [&](const json&) {
    return std::string(inv_.command->name == "nic add" ? "nic added" : "nic removed");
  });
}

int Cli::vmResize() {
  json body = json::object();
  if (auto v = inv_.value("--vcpus")) body["vcpus"] = std::stoll(*v);
  if (auto v = inv_.value("--memory-mib")) body["memory_mib"] = std::stoll(*v);
  if (body.empty()) {
    std::fprintf(io_.err, "error: give --vcpus N, --memory-mib M or both\n");
    return 2;
  }
  auto task =
      call("POST", vmTarget("/resize") + Query().add("tenant", inv_.tenant).str(), body.dump());
  return finishVmChange(task, [](const json& vm) {
    const json spec = vm.value("spec", json::object());
    return std::to_string(spec.value("vcpus", 0)) + " vCPUs, " +
           std::to_string(spec.value("memory_mib", int64_t{0})) + " MiB";
  });
}

int Cli::finishVmChange(const std::optional<json>& task,
                        const std::function<std::string(const json& vm)>& line) {
  if (!task) return 1;
  json final;
  if (auto done = followTask(*task, &final)) return *done;
  auto vm = vmOfTask(final);
  if (!vm) return 1;
  if (inv_.json_output) {
    printJson(*vm);
  } else {
    std::fprintf(io_.out, "vm %s: %s\n", str(*vm, "name").c_str(), line(*vm).c_str());
  }
  return 0;
}

int Cli::vmConsoleLog() {
  auto response = client_.request(
      "GET", vmTarget("/console-log") + Query()
                                            .add("tenant", inv_.tenant)
                                            .add("tail_bytes", inv_.value("--tail").value_or(""))
                                            .str());
  if (!response) return failWith(response.error());
  if (response->status != 200) return failWith(errorFromResponse(*response));
  std::fwrite(response->body.data(), 1, response->body.size(), io_.out);
  return 0;
}

namespace {

// 1536 -> "1.5Ki"; counters of bytes for people (-o json has them exact).
std::string iecBytes(const json& value) {
  if (!value.is_number()) return "-";
  double v = value.get<double>();
  const char* units[] = {"B", "Ki", "Mi", "Gi", "Ti", "Pi"};
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f%s" : "%.1f%s", v, units[u]);
  return buf;
}

std::string figure(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].dump() : "-";
}

}  // namespace

int Cli::vmStats() {
  auto stats = call("GET", vmTarget("/stats") + Query().add("tenant", inv_.tenant).str());
  if (!stats) return 1;
  if (inv_.json_output) {
    printJson(*stats);
    return 0;
  }
  const json& s = *stats;
  const json cpu = s.value("cpu", json::object());
  const json mem = s.value("memory", json::object());
  auto secs = [&](const char* key) {
    if (!cpu.contains(key) || !cpu[key].is_number()) return std::string("-");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2fs", cpu[key].get<double>());
    return std::string(buf);
  };
  printTable(
      {{"VM", str(s, "tenant") + "/" + str(s, "vm")},
       {"STATE", str(s, "state")},
       {"CPU", secs("time_seconds") + " (user " + secs("user_seconds") + ", system " +
                   secs("system_seconds") + "), " + figure(cpu, "vcpus") + " vCPUs"},
       {"MEMORY", "max " + iecBytes(mem.value("maximum_bytes", json())) + ", current " +
                      iecBytes(mem.value("current_bytes", json())) + ", rss " +
                      iecBytes(mem.value("rss_bytes", json()))},
       {"GUEST MEMORY", "unused " + iecBytes(mem.value("guest_unused_bytes", json())) +
                            ", available " + iecBytes(mem.value("guest_available_bytes", json())) +
                            ", usable " + iecBytes(mem.value("guest_usable_bytes", json()))}});
  std::vector<std::vector<std::string>> disks = {
      {"DISK", "BACKEND", "DEVICE", "READ", "READS", "WRITTEN", "WRITES", "FLUSHES"}};
  for (const auto& d : s.value("disks", json::array())) {
    disks.push_back({d.value("volume", json()).is_string() ? str(d, "volume") : "(seed)",
                     str(d, "backend"), str(d, "device"), iecBytes(d.value("read_bytes", json())),
                     figure(d, "read_ops"), iecBytes(d.value("write_bytes", json())),
                     figure(d, "write_ops"), figure(d, "flush_ops")});
  }
  std::fputs("\n", io_.out);
  printTable(disks);
  std::vector<std::vector<std::string>> nics = {{"NIC", "NETWORK", "IP", "DEVICE", "RX", "RX PKTS",
                                                 "TX", "TX PKTS", "ERRS RX/TX", "DROPS RX/TX"}};
  for (const auto& n : s.value("nics", json::array())) {
    nics.push_back({str(n, "mac"), str(n, "network"), str(n, "ip"), str(n, "device"),
                    iecBytes(n.value("rx_bytes", json())), figure(n, "rx_packets"),
                    iecBytes(n.value("tx_bytes", json())), figure(n, "tx_packets"),
                    figure(n, "rx_errors") + "/" + figure(n, "tx_errors"),
                    figure(n, "rx_drops") + "/" + figure(n, "tx_drops")});
  }
  std::fputs("\n", io_.out);
  printTable(nics);
  for (const auto& m : s.value("missing", json::array())) {
    std::fprintf(io_.err, "missing: %s: %s\n", str(m, "part").c_str(), str(m, "reason").c_str());
  }
  return 0;
}

namespace {

std::string labelsText(const json& labels) {
  std::string out;
  if (!labels.is_object()) return out;
  for (const auto& [k, v] : labels.items()) {
    if (!out.empty()) out += ",";
    out += k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}

std::string leaseAge(const json& host) {
  if (!host.contains("lease") || !host["lease"].is_object()) return "-";
  const json& age = host["lease"]["age_s"];
  if (!age.is_number()) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.1fs", age.get<double>());
  return text;
}

}  // namespace

int Cli::hostList() {
  auto page = call("GET", "/v1/hosts");
  if (!page) return 1;
  if (inv_.json_output) {
    printJson(*page);
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "STATE", "LEASE", "ARCH", "VCPUS", "MEMORY", "SITE", "LABELS", "ENDPOINT"}};
  if (page->contains("items") && (*page)["items"].is_array()) {
    for (const auto& h : (*page)["items"]) {
      rows.push_back({str(h, "name"), str(h, "state"), leaseAge(h), str(h, "arch"),
                      std::to_string(num(h, "vcpus")),
                      std::to_string(num(h, "memory_mib")) + " MiB", str(h, "site"),
                      labelsText(h.value("labels", json::object())), str(h, "endpoint")});
    }
  }
  printTable(rows);
  return 0;
}

int Cli::hostGet() {
  auto h = call("GET", "/v1/hosts/" + urlEncode(inv_.operand));
  if (!h) return 1;
  if (inv_.json_output) {
    printJson(*h);
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"FIELD", "VALUE"}};
  for (const char* k : {"name", "state", "arch"}) rows.push_back({k, str(*h, k)});
  rows.push_back({"vcpus", std::to_string(num(*h, "vcpus"))});
  rows.push_back({"memory", std::to_string(num(*h, "memory_mib")) + " MiB"});
  rows.push_back({"site", str(*h, "site")});
  rows.push_back({"labels", labelsText(h->value("labels", json::object()))});
  for (const char* k : {"endpoint", "tunnel_ip", "joined_at"}) rows.push_back({k, str(*h, k)});
  const json lease = h->value("lease", json::object());
  rows.push_back({"lease held", lease.value("held", false) ? "yes" : "no"});
  rows.push_back({"lease holder", str(lease, "holder")});
  rows.push_back({"lease age", leaseAge(*h)});
  printTable(rows);
  return 0;
}

int Cli::clusterTokenCreate() {
  json body = {{"expires", *inv_.value("--expires")}};
  if (auto site = inv_.value("--site")) body["site"] = *site;
  json labels = json::object();
  for (const auto& label : inv_.values("--labels")) {
    auto eq = label.find('=');
    labels[label.substr(0, eq)] = label.substr(eq + 1);
  }
  if (!labels.empty()) body["labels"] = labels;
  auto token = call("POST", "/v1/cluster/tokens", body.dump());
  if (!token) return 1;
  if (inv_.json_output) {
    printJson(*token);
    return 0;
  }
  // The token alone on stdout (for scripts); what it is on stderr.
  std::fprintf(io_.out, "%s\n", str(*token, "token").c_str());
  std::fprintf(io_.err, "join token %s: single use, expires at %s%s\n", str(*token, "id").c_str(),
               str(*token, "expires_at").c_str(),
               str(*token, "site").empty() ? "" : (", site " + str(*token, "site")).c_str());
  return 0;
}

int Cli::hostRemove() {
  auto done = call("DELETE", "/v1/hosts/" + urlEncode(inv_.operand));
  if (!done) return 1;
  if (inv_.json_output) {
    printJson(*done);
    return 0;
  }
  std::fprintf(io_.out, "host %s removed: certificate %s revoked, Ceph user %s deleted\n",
               inv_.operand.c_str(), str(*done, "revoked_serial").c_str(),
               str(*done, "ceph_user").c_str());
  return 0;
}

int Cli::clusterStatus() {
  auto c = call("GET", "/v1/cluster");
  if (!c) return 1;
  auto hosts = call("GET", "/v1/hosts");
  if (!hosts) return 1;
  if (inv_.json_output) {
    printJson({{"cluster", *c}, {"hosts", (*hosts)["items"]}});
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"FIELD", "VALUE"}};
  for (const char* k : {"name", "mode", "host"}) rows.push_back({k, str(*c, k)});
  const json leader = c->value("leader", json());
  if (leader.is_object()) {
    rows.push_back({"leader", str(leader, "host")});
    rows.push_back({"epoch", std::to_string(num(leader, "epoch"))});
    rows.push_back({"leader since", str(leader, "since")});
  } else {
    rows.push_back({"leader", "-"});
  }
  rows.push_back({"this host leads", c->value("this_host_leads", false) ? "yes" : "no"});
  std::map<std::string, int> by_state;
  if ((*hosts)["items"].is_array()) {
    for (const auto& h : (*hosts)["items"]) ++by_state[str(h, "state")];
  }
  std::string states;
  for (const auto& [state, n] : by_state) {
    states += (states.empty() ? "" : ", ") + std::to_string(n) + " " + state;
  }
  rows.push_back({"hosts", states});
  printTable(rows);
  return 0;
}

int Cli::taskList() {
  auto page = call("GET", "/v1/tasks" + Query()
                                            .add("tenant", inv_.tenant)
                                            .add("state", inv_.value("--state").value_or(""))
                                            .add("target", inv_.value("--vm").value_or(""))
                                            .add("limit", inv_.value("--limit").value_or(""))
                                            .str());
  if (!page) return 1;
  if (inv_.json_output) {
    printJson(*page);
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"ID", "KIND", "TENANT", "VM", "STATE", "PROGRESS", "AGE", "MESSAGE"}};
  long long now = std::time(nullptr);
  if (page->contains("items") && (*page)["items"].is_array()) {
    for (const auto& t : (*page)["items"]) {
      rows.push_back({str(t, "id"), str(t, "kind"), str(t, "tenant"), str(t, "target"),
                      str(t, "state"), std::to_string(num(t, "progress")) + "%",
                      ageSince(str(t, "created_at"), now), str(t, "message")});
    }
  }
  printTable(rows);
  if (!str(*page, "next_page_token").empty()) {
    std::fprintf(io_.err, "(more tasks: narrow with --state or --vm, or raise --limit)\n");
  }
  return 0;
}

int Cli::taskGet() {
  auto t = call("GET", "/v1/tasks/" + urlEncode(inv_.operand));
  if (!t) return 1;
  if (inv_.json_output) {
    printJson(*t);
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"FIELD", "VALUE"}};
  for (const char* k : {"id", "kind", "tenant", "target", "state"}) rows.push_back({k, str(*t, k)});
  rows.push_back({"progress", std::to_string(num(*t, "progress")) + "%"});
  for (const char* k : {"message", "identity", "created_at", "updated_at"}) {
    rows.push_back({k, str(*t, k)});
  }
  if (t->contains("error") && (*t)["error"].is_object()) {
    rows.push_back({"error", str((*t)["error"], "message")});
  }
  printTable(rows);
  return 0;
}

int Cli::taskCancel() {
  const std::string& id = inv_.operand;
  auto task = call("POST", "/v1/tasks/" + urlEncode(id) + "/cancel", "");
  if (!task) return 1;
  if (!inv_.has("--wait")) {
    if (inv_.json_output) {
      printJson(*task);
    } else {
      std::fprintf(io_.out, "cancel of task %s requested\n", id.c_str());
    }
    return 0;
  }
  json final;
  int rc = waitTask(id, waitSeconds(), &final, "cancelled");
  if (rc != 0) return rc;  // it said how the task ended instead
  if (inv_.json_output) {
    printJson(final);
  } else {
    std::fprintf(io_.out, "task %s cancelled\n", id.c_str());
  }
  return 0;
}

int Cli::taskWait() {
  json final;
  int rc = waitTask(inv_.operand, waitSeconds(), &final);
  if (rc == 0) {
    if (inv_.json_output)
      printJson(final);
    else
      std::fprintf(io_.out, "task %s succeeded\n", inv_.operand.c_str());
  }
  return rc;
}

std::optional<int> Cli::followTask(const json& task, json* final) {
  if (!inv_.has("--wait")) {
    if (inv_.json_output)
      printJson(task);
    else
      std::fprintf(io_.out, "%s\n", str(task, "id").c_str());
    return 0;
  }
  if (int rc = waitTask(str(task, "id"), waitSeconds(), final); rc != 0) return rc;
  return std::nullopt;
}

int Cli::waitTask(const std::string& id, int timeout_s, json* final, std::string_view wanted) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  const std::string target = "/v1/tasks/" + urlEncode(id);
  std::string last_change;
  bool bar_shown = false;
  bool answered = false;  // the server knew the task once: later silences are worth waiting out
  auto endBar = [&] {
    if (bar_shown) std::fputc('\n', io_.err);
    bar_shown = false;
  };
  for (;;) {
    auto response = client_.request("GET", target);
    if (!response) {
      // No answer (qiaod restarting, a network blip): the task goes on, so keep asking.
      if (!answered || Clock::now() >= deadline) {
        endBar();
        return failWith(response.error());
      }
      std::string line = "no answer (" + response.error().message + "); retrying";
      if (io_.err_is_terminal) {
        std::fprintf(io_.err, "\r%s\033[K", progressLine(0, "task", id, line, 100).c_str());
        bar_shown = true;
      } else if (line != last_change) {
        std::fprintf(io_.err, "task %s: %s\n", id.c_str(), line.c_str());
        last_change = line;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(io_.poll_interval_ms));
      continue;
    }
    if (response->status != 200) {
      endBar();
      return failWith(errorFromResponse(*response));
    }
    answered = true;
    auto task = json::parse(response->body, nullptr, false);
    if (!task.is_object()) {
      endBar();
      return fail("the answer to GET " + target + " is not a task");
    }
    const std::string state = str(task, "state");
    const std::string message = str(task, "message");
    if (io_.err_is_terminal) {
      std::fprintf(io_.err, "\r%s\033[K",
                   progressLine(static_cast<int>(num(task, "progress")), str(task, "kind"),
                                str(task, "target"), message, 100)
                       .c_str());
      std::fflush(io_.err);
      bar_shown = true;
    } else {
      std::string change = state + (message.empty() ? "" : ": " + message);
      if (change != last_change) {
        std::fprintf(io_.err, "task %s %s %s %lld%% %s\n", id.c_str(), str(task, "kind").c_str(),
                     state.c_str(), num(task, "progress"), message.c_str());
        last_change = change;
      }
    }
    if (isTerminalState(state)) {
      endBar();
      *final = task;
      if (state == wanted) return 0;
      std::string why = task.contains("error") && task["error"].is_object()
                            ? str(task["error"], "message")
                            : message;
      Error error{ErrorCode::kInternal, "task",
                  "task " + id + " (" + str(task, "kind") + " " + str(task, "target") + ") " +
                      state + (why.empty() ? "" : ": " + why),
                  ""};
      if (task.contains("error") && task["error"].is_object() &&
          task["error"].contains("details") && task["error"]["details"].is_object()) {
        error.details_json = task["error"]["details"].dump();
      }
      return failWith(error);
    }
    if (Clock::now() >= deadline) {
      endBar();
      return fail("task " + id + " did not end within " + std::to_string(timeout_s) +
                  " s (it goes on; qiaoctl task wait " + id + " follows it)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(io_.poll_interval_ms));
  }
}

namespace {

const FlagSpec kWait{"--wait", "",
                     "wait for the task: a progress bar on a terminal, else a line "
                     "per change, on stderr"};
const FlagSpec kWaitTimeout{"--timeout", "SECONDS",
                            "with --wait: give up waiting after SECONDS (default 600); the task "
                            "goes on",
                            FlagCheck::kCount};

// One row per command: its words, operand, the function that runs it, its help and options.
// The parser, the help texts and the dispatch all read these rows (kept as written, not
// reflowed).
// clang-format off
std::vector<CommandSpec> makeSpecs() {
  std::vector<CommandSpec> specs = {
      {"host", "", "", &Cli::hostShow, "show this host: arch, CPU, memory, accelerator, versions",
       "Prints GET /v1/host as a two-column table (-o json: the API's JSON).",
       {}},
      {"host", "list", "", &Cli::hostList, "list the cluster's hosts: state, lease age, arch, capacity, site, labels",
       "Prints GET /v1/hosts: every host of the cluster with its state (joining, ready,\n"
       "unreachable when its lease lapsed, maintenance, fenced, removed), the age of its lease\n"
       "(seconds since its last renewal), arch, vCPUs, memory, site and labels. On a standalone\n"
       "host: this host alone. See docs/operators/cluster.md.",
       {}},
      {"host", "get", "NAME", &Cli::hostGet, "show one host of the cluster",
       "Prints GET /v1/hosts/NAME as a two-column table (-o json: the API's JSON).",
       {}},
      {"cluster", "status", "", &Cli::clusterStatus, "show the cluster: its name, leader and epoch, this host's part",
       "Prints GET /v1/cluster: the cluster's name, this host's mode (standalone or member),\n"
       "the leader (host, epoch, since when) and whether this host leads, then the hosts by\n"
       "state (GET /v1/hosts).",
       {}},
      {"cluster", "token create", "", &Cli::clusterTokenCreate, "create a single-use join token for a new server",
       "Prints the token (POST /v1/cluster/tokens; admin). On the new server, once the package is\n"
       "installed: qiaod join --endpoint https://MEMBER:8443 --token TOKEN. The token carries the\n"
       "SHA-256 of the cluster CA's certificate, so the new server checks the endpoint before it\n"
       "trusts it. The cluster keeps only a hash of the token's secret. The new host gets the\n"
       "site and labels given here. See docs/operators/cluster.md \"Enrollment\".",
       {{"--expires", "DURATION", "how long the token may be used: 90s, 30m, 1h, 7d (at most 7d)", FlagCheck::kNone, false, true},
        {"--site", "S", "the new host's site"},
        {"--labels", "K=V", "a label of the new host (repeatable)", FlagCheck::kLabel, true}}},
      {"host", "remove", "NAME", &Cli::hostRemove, "remove a host from the cluster",
       "DELETE /v1/hosts/NAME (admin). Refused (conflict) while VMs are on the host: the error\n"
       "names them. Otherwise revokes the host's node certificate (every member refuses it at the\n"
       "next handshake), deletes its Ceph user client.qiao-host-NAME, marks it removed and\n"
       "drops its lease. Call it on a member that holds the cluster CA key\n"
       "(docs/operators/cluster.md \"Removing a host\").",
       {}},
      {"host", "check", "", &Cli::hostCheck, "check this host against the cluster's baseline: pass, warn or fail per item",
       "qiaod judges its host against its baseline file (host.baseline_file, by default\n"
       "/etc/qiao/baseline.toml; see docs/operators/installing.md) and this prints one line\n"
       "per item (GET /v1/host/check):\n"
       "  baseline     the file read (warn: none, the defaults; fail: it does not parse)\n"
       "  libvirt      qiaod reaches libvirtd\n"
       "  versions     libvirt and QEMU against min_libvirt, min_qemu\n"
       "  accelerator  kvm passes; tcg fails, warns or passes as the baseline's kvm says\n"
       "  cpu          the CPU features the baseline lists\n"
       "  firmware     a UEFI build for each guest arch the baseline lists\n"
       "  bios         the host's BIOS date against min_bios_date\n"
       "  iommu        IOMMU groups (required, preferred or ignored)\n"
       "  hugepages    HugePages_Total against min_hugepages\n"
       "  time         the kernel's clock synchronized (NTP, chrony)\n"
       "Items the baseline does not ask for are left out. Exit status 1 when an item fails\n"
       "(the host must not take guests), else 0 (warnings included).",
       {}},
      {"vm", "list", "", &Cli::vmList, "list VMs",
       "Lists the VMs of the tenants you may see (only tenant T with --tenant T). Columns: "
       "TENANT NAME STATE\nHOST VCPUS MEMORY ARCH AGE (HOST: the cluster member that runs it).\nWithout --all, one page: a note on stderr "
       "says when there are more.",
       {{"--state", "S",
         "only VMs in state S: creating, running, blocked, paused, shutdown, shutoff, crashed, "
         "pmsuspended, deleting, error, nostate",
         FlagCheck::kVmState},
        {"--label", "KEY=VALUE", "only VMs with this label; repeat it to require several",
         FlagCheck::kLabel, true},
        {"--limit", "N", "at most N VMs a page (the server's default when not given)",
         FlagCheck::kCount},
        {"--all", "", "follow every page"}}},
      {"vm", "get", "NAME", &Cli::vmGet, "show one VM", "Prints the VM as a two-column table.", {}},
      {"vm", "create", "", &Cli::vmCreate, "create a VM from a JSON spec",
       "Sends the VM spec (JSON, the API's VmSpec: name, tenant, arch, vcpus, memory_mib, "
       "firmware,\naccel, boot, disks, nics, labels) to POST /v1/vms. The tenant may be left out "
       "when your identity\nhas one tenant, or come from --tenant. Prints the task's id, or with "
       "--wait the VM once created.",
       {{"-f", "FILE|-", "the spec; - reads it from standard input", FlagCheck::kNone, false, true},
        {"--no-start", "", "define the VM but do not start it"},
        {"--host", "NAME",
         "create it on this member of the cluster (admins; default: where the leader places it)"},
        kWait,
        kWaitTimeout}},
      {"vm", "start", "NAME", &Cli::vmChange, "start a VM",
       "Prints the task's id, or with --wait the VM's state once done.", {kWait, kWaitTimeout}},
      {"vm", "stop", "NAME", &Cli::vmChange, "shut a VM down (ACPI power button)",
       "Prints the task's id, or with --wait the VM's state once done.", {kWait, kWaitTimeout}},
      {"vm", "force-stop", "NAME", &Cli::vmChange, "power a VM off at once",
       "Prints the task's id, or with --wait the VM's state once done.", {kWait, kWaitTimeout}},
      {"vm", "reboot", "NAME", &Cli::vmChange, "reboot a VM",
       "Prints the task's id, or with --wait the VM's state once done.", {kWait, kWaitTimeout}},
      {"vm", "pause", "NAME", &Cli::vmChange, "pause a VM's CPUs",
       "Prints the task's id, or with --wait the VM's state once done.", {kWait, kWaitTimeout}},
      {"vm", "resume", "NAME", &Cli::vmChange, "resume a paused VM",
       "Prints the task's id, or with --wait the VM's state once done.", {kWait, kWaitTimeout}},
      {"vm", "delete", "NAME", &Cli::vmChange, "delete a VM",
       "A running VM is refused (conflict) unless --force, which powers it off first. Prints the "
       "task's id,\nor with --wait a line once the VM is gone.",
       {{"--force", "", "delete a running VM too (powered off first)"}, kWait, kWaitTimeout}},
      {"vm", "disk add", "NAME", &Cli::vmDisk, "add a disk to a VM, running or not",
       "A volume of the VM's tenant (--volume), or a new volume made from an image (--image,\n"
       "named --volume or <vm>-disk<k>). A running VM gets it at once (hot-plug; RBD volumes),\n"
       "a stopped one at its next start. Prints the task's id, or with --wait the VM once done.",
       {{"--volume", "V", "the volume to attach (with --image: the new volume's name)"},
        {"--image", "I", "make the disk from image I (a copy-on-write clone)"},
        {"--size-gib", "N", "with --image: its size in GiB (default: the image's)",
         FlagCheck::kCount},
        {"--keep", "", "with --image: keep the volume when the VM is deleted"},
        kWait,
        kWaitTimeout}},
      {"vm", "disk remove", "NAME", &Cli::vmDisk, "remove a disk from a VM, running or not",
       "A running VM's guest is asked to release the disk (PCIe hot-unplug) and the task waits\n"
       "for it (30 s; a guest that does not let go keeps the disk and the task fails). The\n"
       "volume stays, available. Prints the task's id, or with --wait the VM once done.",
       {{"--volume", "V", "the disk's volume", FlagCheck::kNone, false, true},
        kWait,
        kWaitTimeout}},
      {"vm", "nic add", "NAME", &Cli::vmNic, "add a NIC to a VM, running or not",
       "A port on the network (address, MAC, flows) and, in a running VM, the device at once\n"
       "(hot-plug); a stopped VM has it at its next start. Prints the task's id, or with --wait\n"
       "the VM once done (its ports show the address and MAC).",
       {{"--network", "N", "a network of the VM's tenant", FlagCheck::kNone, false, true},
        {"--ip", "A", "a fixed address in the network's subnet (default: the lowest free)"},
        {"--mac", "M", "its MAC (default: derived from the port)"},
        {"--security-group", "G", "a security group of the tenant (default: default)",
         FlagCheck::kNone, true},
        kWait,
        kWaitTimeout}},
      {"vm", "nic remove", "NAME", &Cli::vmNic, "remove a NIC from a VM, running or not",
       "A running VM's guest is asked to release the NIC (PCIe hot-unplug), 30 s at most; then\n"
       "its port, address and flows go. Prints the task's id, or with --wait the VM once done.",
       {{"--mac", "M", "the NIC's MAC (qiaoctl vm get shows the ports)", FlagCheck::kNone, false,
         true},
        kWait,
        kWaitTimeout}},
      {"vm", "resize", "NAME", &Cli::vmResize, "change a VM's vCPUs or memory, running or not",
       "Within the max_vcpus and max_memory_mib its spec fixed at create: a running VM gets\n"
       "vCPUs hot-plugged or unplugged and its balloon set at once; a stopped one has them at\n"
       "its next start. Prints the task's id, or with --wait the VM once done.",
       {{"--vcpus", "N", "vCPUs", FlagCheck::kCount},
        {"--memory-mib", "M", "memory in MiB", FlagCheck::kCount},
        kWait,
        kWaitTimeout}},
      {"vm", "console-log", "NAME", &Cli::vmConsoleLog, "print the end of a VM's serial console output",
       "Prints the text as it is (no table, no JSON), whatever -o says.",
       {{"--tail", "BYTES", "the last BYTES bytes (default 65536, the server's limit applies)",
         FlagCheck::kCount}}},
      {"vm", "stats", "NAME", &Cli::vmStats, "show a running VM's CPU, memory, disk and NIC figures",
       "Prints CPU time, memory (the guest's own figures when its balloon driver reports "
       "them),\neach disk's reads and writes (by volume) and each NIC's traffic (by MAC and "
       "network).\nCounters since the VM started. Figures that could not be read are listed "
       "at the end.\nA VM that is not running is refused (conflict).",
       {}},
      {"volume", "list", "", &Cli::volumeOrImageList, "list volumes",
       "Columns: TENANT NAME SIZE STATE VM BACKEND AGE (only tenant T with --tenant T).", {}},
      {"volume", "get", "NAME", &Cli::volumeOrImageGet, "show one volume", "Prints the volume as a two-column table.", {}},
      {"volume", "create", "NAME", &Cli::volumeCreate, "create an empty volume",
       "Prints the task's id, or with --wait the volume once created.",
       {{"--size-gib", "N", "its size in GiB", FlagCheck::kCount, false, true},
        {"--pool", "P", "the RBD pool (default: storage.ceph_pool)"},
        {"--iops", "N", "I/O operations a second at most (default: no limit)", FlagCheck::kCount},
        {"--bytes-per-sec", "N", "bytes a second at most (default: no limit)", FlagCheck::kCount},
        kWait,
        kWaitTimeout}},
      {"volume", "resize", "NAME", &Cli::volumeResize, "grow a volume (volumes never shrink)",
       "Prints the task's id, or with --wait the volume once grown.",
       {{"--size-gib", "N", "the new size in GiB", FlagCheck::kCount, false, true},
        kWait,
        kWaitTimeout}},
      {"volume", "limits", "NAME", &Cli::volumeLimits, "set a volume's I/O limits (replacing all of them)",
       "Each limit given is set, every other one removed; --none removes them all. A total and\n"
       "its read/write split exclude each other. A VM using an RBD volume obeys the new limits\n"
       "within seconds, without a restart. Prints the task's id, or with --wait the volume.",
       {{"--iops", "N", "I/O operations a second, reads and writes together", FlagCheck::kCount},
        {"--bytes-per-sec", "N", "bytes a second, reads and writes together", FlagCheck::kCount},
        {"--read-iops", "N", "read operations a second", FlagCheck::kCount},
        {"--write-iops", "N", "write operations a second", FlagCheck::kCount},
        {"--read-bytes-per-sec", "N", "bytes read a second", FlagCheck::kCount},
        {"--write-bytes-per-sec", "N", "bytes written a second", FlagCheck::kCount},
        {"--none", "", "no limits at all"},
        kWait,
        kWaitTimeout}},
      {"volume", "copy", "NAME", &Cli::volumeCopy, "copy a volume into a new one, with progress",
       "A full copy of the volume as it was when the copy began, made by a QEMU block job: live\n"
       "in the running VM that has it attached (RBD), else in a qemu-storage-daemon. While it\n"
       "runs the volume cannot be resized, deleted or attached, nor its VM started, stopped or\n"
       "deleted; qiaoctl task cancel ID stops it and removes the partial copy, the source\n"
       "untouched. Prints the task's id, or with --wait the new volume.",
       {{"--to", "NAME", "the new volume's name", FlagCheck::kNone, false, true},
        {"--pool", "P", "the RBD pool of the copy (default: storage.ceph_pool)"},
        {"--bandwidth-mib-s", "N", "copy at most N MiB a second (default: no cap)",
         FlagCheck::kCount},
        kWait,
        kWaitTimeout}},
      {"volume", "delete", "NAME", &Cli::objectDelete, "delete a volume",
       "Refused (conflict) while a VM uses the volume or a Ceph client has it open; the error "
       "names them.\nPrints the task's id, or with --wait a line once the volume is gone.",
       {kWait, kWaitTimeout}},
      {"network", "list", "", &Cli::networkList, "list networks",
       "Columns: TENANT NAME TYPE SEGMENT SUBNET GATEWAY DHCP STATE AGE (only tenant T with "
       "--tenant T).",
       {}},
      {"network", "get", "NAME", &Cli::networkGet, "show one network and its ports",
       "Prints the network as a two-column table, then its ports (VM, NIC, device, MAC, IP).",
       {}},
      {"network", "create", "NAME", &Cli::networkCreate, "create a tenant network",
       "Two tenants may use the same subnet: their traffic never meets. A tenant's own networks "
       "never\noverlap. The gateway defaults to the subnet's first address, the DHCP server takes "
       "the next free\none. Prints the task's id, or with --wait the network once ready.",
       {{"--subnet", "CIDR", "its IPv4 subnet, e.g. 10.0.0.0/24 (prefix 8 to 29)",
         FlagCheck::kNone, false, true},
        {"--type", "T", "vxlan (default), geneve or vlan"},
        {"--segment-id", "N", "VNI or VLAN id (default: the lowest free one)", FlagCheck::kCount},
        {"--gateway", "IP|none", "the gateway guests get (default: the first address)"},
        {"--no-dhcp", "", "no DHCP server: guests configure their addresses themselves"},
        {"--dns", "IP", "a DNS server for the guests; repeat for up to 3 (default: the "
         "network's DHCP server,\nwhich answers for the VM names)", FlagCheck::kNone, true},
        {"--mtu", "N", "guest MTU (default 1450 for vxlan/geneve, 1500 for vlan)",
         FlagCheck::kCount},
        kWait,
        kWaitTimeout}},
      {"network", "delete", "NAME", &Cli::objectDelete, "delete a network",
       "Refused (conflict) while VMs have NICs on it; the error names them. Prints the task's "
       "id, or with\n--wait a line once the network is gone.",
       {kWait, kWaitTimeout}},
      {"security-group", "list", "", &Cli::groupList, "list security groups",
       "Columns: TENANT NAME RULES AGE (only tenant T with --tenant T).", {}},
      {"security-group", "get", "NAME", &Cli::groupGet, "show one security group and its rules",
       "Prints the group, then its rules as a table.", {}},
      {"security-group", "create", "NAME", &Cli::groupWrite, "create a security group",
       "Rules allow new connections; replies always pass (stateful). A rule is\n"
       "DIRECTION[:PROTOCOL[:PORTS[:REMOTE]]]: ingress or egress; any, tcp, udp or icmp; a port "
       "or\nMIN-MAX; a CIDR or group=NAME. e.g. --rule ingress:tcp:443 --rule "
       "ingress:any::group=web.",
       {{"--rule", "RULE", "a rule; repeat it (none: the group allows nothing new)",
         FlagCheck::kNone, true}}},
      {"security-group", "set-rules", "NAME", &Cli::groupWrite, "replace a group's rules",
       "The flows of every NIC in the group change at once. RULE as for create.",
       {{"--rule", "RULE", "a rule; repeat it (none: the group allows nothing new)",
         FlagCheck::kNone, true}}},
      {"security-group", "delete", "NAME", &Cli::groupDelete, "delete a security group",
       "Refused (conflict) while NICs use it; the error names their VMs.", {}},
      {"image", "list", "", &Cli::volumeOrImageList, "list images (yours and the public ones)",
       "Columns: TENANT NAME STATE FORMAT SIZE SHA256 AGE; public images show TENANT (public).",
       {}},
      {"image", "get", "NAME", &Cli::volumeOrImageGet, "show one image", "Prints the image as a two-column table.", {}},
      {"image", "create", "NAME", &Cli::imageCreate, "import an image: a file of yours, or a host path (admins)",
       "With --file, uploads FILE (streamed, of any size up to the server's limit) and starts "
       "the import.\nWith --source-path, the server imports a file of its own host (admins "
       "only). The format comes\nfrom the content (raw, qcow2, ISO 9660); a hostile or "
       "mismatching image is refused and nothing\nis kept. Prints the task's id, or with --wait "
       "the image once ready.",
       {{"--file", "FILE", "the image to upload from this machine"},
        {"--source-path", "PATH", "a file on the server's host (admins only)"},
        {"--format", "F", "the format you expect: raw, qcow2 or iso (checked against the content)"},
        {"--public", "", "every tenant may use it (admins only)"},
        kWait,
        kWaitTimeout}},
      {"image", "delete", "NAME", &Cli::objectDelete, "delete an image",
       "Refused (conflict) while volumes cloned from it exist. Prints the task's id, or with "
       "--wait a\nline once the image is gone.",
       {kWait, kWaitTimeout}},
      {"quota", "get", "TENANT", &Cli::quotaGet, "show a tenant's quotas and what it uses",
       "Columns: QUOTA LIMIT USED. A limit of 'none' is no limit. vCPUs and memory count the\n"
       "maximums a VM may grow to; volume GiB include VM disks made from images; uploads are\n"
       "those in progress.",
       {}},
      {"quota", "set", "TENANT", &Cli::quotaSet, "set a tenant's quotas (admins)",
       "Each quota given is set; the others stay. A value is a number, 'none' for no limit, or\n"
       "'default' for the node's default again ([quota] in qiaod.toml). A create that would\n"
       "pass a quota is refused (conflict) with the figures. Prints the quotas as 'quota get'.",
       {{"--vms", "N", "VMs"},
        {"--vcpus", "N", "vCPUs of all its VMs"},
        {"--memory-mib", "N", "memory (MiB) of all its VMs"},
        {"--volume-gib", "N", "GiB of all its volumes"},
        {"--images", "N", "images it owns"},
        {"--networks", "N", "networks"},
        {"--uploads", "N", "image uploads in progress at once"}}},
      {"task", "list", "", &Cli::taskList, "list tasks",
       "Columns: ID KIND TENANT VM STATE PROGRESS AGE MESSAGE; newest first, one page.",
       {{"--state", "S", "only tasks in state S: queued, running, succeeded, failed, cancelled",
         FlagCheck::kTaskState},
        {"--vm", "NAME", "only tasks on the VM NAME"},
        {"--limit", "N", "at most N tasks (the server's default when not given)",
         FlagCheck::kCount}}},
      {"task", "get", "ID", &Cli::taskGet, "show one task", "Prints the task as a two-column table.", {}},
      {"task", "cancel", "ID", &Cli::taskCancel, "stop a running task",
       "Only tasks that can stop half way are cancelled (volume copies); others answer a\n"
       "conflict. The task undoes what it did and ends 'cancelled'; one that finishes first\n"
       "keeps its outcome. Prints a line, or with --wait waits for the task to end: exit status\n"
       "0 when it ended cancelled, 1 otherwise.",
       {kWait, kWaitTimeout}},
      {"task", "wait", "ID", &Cli::taskWait, "wait for a task to end",
       "Polls the task every 200 ms: a progress bar on stderr when it is a terminal, else a line "
       "on stderr\nper change. Exit status 0 when it succeeded; 1 when it failed or was "
       "cancelled (its error is\nprinted), or when the timeout passes (the task goes on).",
       {{"--timeout", "SECONDS", "give up after SECONDS (default 600)", FlagCheck::kCount}}},
  };
  return specs;
}
// clang-format on

}  // namespace

const std::vector<CommandSpec>& commandSpecs() {
  static const std::vector<CommandSpec> kSpecs = makeSpecs();
  return kSpecs;
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

int runInvocation(const Invocation& inv, const CliIo& io) {
  auto config = loadClientConfig(inv.config_path);
  if (!config) {
    std::fprintf(io.err, "error: %s\n", config.error().message.c_str());
    return 1;
  }
  if (!inv.endpoint.empty()) config->endpoint = inv.endpoint;
  auto client = ApiClient::create(*config);
  if (!client) {
    std::fprintf(io.err, "error: %s\n", client.error().message.c_str());
    return 1;
  }
  return Cli(inv, io, std::move(*client)).run();
}

}  // namespace qiao
