#include "node/state/record_json.h"

#include <nlohmann/json.hpp>

#include "node/state/store.h"

namespace qiao {
namespace {

nlohmann::json parseOr(const std::string& text, nlohmann::json fallback) {
  if (text.empty()) return fallback;
  auto value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  return value.is_discarded() ? fallback : value;
}

nlohmann::json errorValue(const Error& error) {
  nlohmann::json details = parseOr(error.details_json, nlohmann::json::object());
  if (details.is_object() && !error.subsystem.empty()) details["subsystem"] = error.subsystem;
  return {{"code", std::string(errorCodeName(error.code))},
          {"message", error.message},
          {"details", std::move(details)}};
}

}  // namespace

nlohmann::json vmToJson(const VmRecord& vm) {
  return {{"name", vm.name},
          {"tenant", vm.tenant},
          {"uuid", vm.uuid},
          {"domain", domainNameOf(vm.tenant, vm.name)},
          {"state", vm.state},
          {"last_error", vm.last_error},
          {"spec", parseOr(vm.spec_json, nlohmann::json::object())},
          {"created_at", vm.created_at},
          {"updated_at", vm.updated_at},
          {"host", vm.host}};
}

nlohmann::json qosToJson(const VolumeQos& q) {
  return {{"iops", q.iops},
          {"bytes_per_sec", q.bytes_per_sec},
          {"read_iops", q.read_iops},
          {"write_iops", q.write_iops},
          {"read_bytes_per_sec", q.read_bytes_per_sec},
          {"write_bytes_per_sec", q.write_bytes_per_sec}};
}

nlohmann::json volumeToJson(const VolumeRecord& v) {
  constexpr int64_t kGiB = int64_t{1} << 30;
  return {{"name", v.name},
          {"tenant", v.tenant},
          {"uuid", v.uuid},
          {"backend", v.backend},
          {"pool", v.pool},
          {"size_gib", v.size_bytes / kGiB},
          {"size_bytes", v.size_bytes},
          {"state", v.state},
          {"attached_vm", v.attached_vm},
          {"image", v.image},
          {"qos", qosToJson(v.qos)},
          {"last_error", v.last_error},
          {"created_at", v.created_at},
          {"updated_at", v.updated_at}};
}

nlohmann::json networkToJson(const NetworkRecord& n) {
  nlohmann::json dns = nlohmann::json::parse(n.dns_json, nullptr, false);
  if (!dns.is_array()) dns = nlohmann::json::array();
  nlohmann::json out = {{"name", n.name},
                        {"tenant", n.tenant},
                        {"uuid", n.uuid},
                        {"type", n.type},
                        {"segment_id", n.segment_id},
                        {"subnet", n.subnet},
                        {"gateway", n.gateway},
                        {"dhcp", n.dhcp},
                        {"dns", dns},
                        {"mtu", n.mtu},
                        {"state", n.state},
                        {"last_error", n.last_error},
                        {"created_at", n.created_at},
                        {"updated_at", n.updated_at}};
  if (n.dhcp) out["dhcp_server"] = n.dhcp_ip;
  return out;
}

nlohmann::json portToJson(const PortRecord& p) {
  nlohmann::json groups = nlohmann::json::parse(p.security_groups, nullptr, false);
  if (!groups.is_array()) groups = nlohmann::json::array();
  return {{"uuid", p.uuid}, {"vm", p.vm_name}, {"nic", p.nic},       {"device", p.name},
          {"mac", p.mac},   {"ip", p.ip},      {"ofport", p.ofport}, {"security_groups", groups}};
}

nlohmann::json securityGroupToJson(const SecurityGroupRecord& g) {
  nlohmann::json rules = nlohmann::json::parse(g.rules_json, nullptr, false);
  if (!rules.is_array()) rules = nlohmann::json::array();
  return {{"name", g.name}, {"tenant", g.tenant},         {"uuid", g.uuid},
          {"rules", rules}, {"created_at", g.created_at}, {"updated_at", g.updated_at}};
}

nlohmann::json imageToJson(const ImageRecord& i) {
  return {{"name", i.name},
          {"tenant", i.tenant},
          {"public", i.tenant.empty()},
          {"uuid", i.uuid},
          {"owner", i.owner},
          {"state", i.state},
          {"source", i.source},
          {"declared_format", i.declared_format},
          {"format", i.format},
          {"virtual_size", i.virtual_size},
          {"file_size", i.file_size},
          {"sha256", i.sha256},
          {"backend", i.backend},
          {"last_error", i.last_error},
          {"created_at", i.created_at},
          {"updated_at", i.updated_at}};
}

nlohmann::json taskToJson(const TaskRecord& task) {
  return {{"id", task.id},
          {"kind", task.kind},
          {"tenant", task.tenant},
          {"target", task.target},
          {"identity", task.identity},
          {"state", task.state},
          {"progress", task.progress},
          {"message", task.message},
          {"error", parseOr(task.error_json, nullptr)},
          {"attempts", task.attempts},
          {"created_at", task.created_at},
          {"updated_at", task.updated_at}};
}

std::string dumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string errorToJson(const Error& error) { return dumpJson(errorValue(error)); }

std::string errorBody(const Error& error) {
  return dumpJson(nlohmann::json{{"error", errorValue(error)}});
}

}  // namespace qiao
