// The real Switch: transactions on ovsdb-server's Open_vSwitch database through OvsdbClient.
// Every change is read first, then written in one transaction guarded by "wait" operations on
// what was read, so that a concurrent writer (ovs-vsctl, another qiaod step) makes the write
// fail with "timed out" instead of acting on a stale view; the step then reads again.
// Values go in as OVSDB JSON values, never as text of a command line.
#include <algorithm>
#include <mutex>
#include <optional>
#include <set>

#include "base/log.h"
#include "base/names.h"
#include "network/ovsdb.h"
#include "network/switch.h"

namespace qiao {
namespace {

using nlohmann::json;

const Logger kLog("ovsdb");
constexpr const char* kDb = "Open_vSwitch";
constexpr int kAttempts = 3;           // reads-then-writes raced by another writer, in a row
constexpr int64_t kMaxOfport = 65279;  // OFPP_MAX: above are OpenFlow's reserved ports

std::unexpected<Error> internal(std::string message) {
  return makeError(ErrorCode::kInternal, "ovsdb", std::move(message));
}

// ---- OVSDB notation (RFC 7047 5.1) ----

json uuidRef(const std::string& uuid) { return json::array({"uuid", uuid}); }
json namedRef(const std::string& name) { return json::array({"named-uuid", name}); }
json emptySet() { return json::array({"set", json::array()}); }

json ovsMap(const std::map<std::string, std::string>& map) {
  json pairs = json::array();
  for (const auto& [key, value] : map) pairs.push_back(json::array({key, value}));
  return json::array({"map", std::move(pairs)});
}

json ofportRequest(int64_t ofport) { return ofport == 0 ? emptySet() : json(ofport); }

json eq(const char* column, json value) { return json::array({column, "==", std::move(value)}); }

json select(const char* table, json where, std::vector<const char*> columns) {
  return {{"op", "select"}, {"table", table}, {"where", std::move(where)}, {"columns", columns}};
}

// Fails the transaction at once unless the rows `where` selects are exactly `rows` (of
// `columns`): the guard on what the transaction was built from.
json waitFor(const char* table, json where, std::vector<const char*> columns, json rows) {
  return {{"op", "wait"},       {"table", table}, {"where", std::move(where)},
          {"columns", columns}, {"until", "=="},  {"rows", std::move(rows)},
          {"timeout", 0}};
}

json interfaceRow(const SwitchPort& port) {
  return {{"name", port.name},
          {"type", port.type},
          {"ofport_request", ofportRequest(port.ofport_request)},
          {"external_ids", ovsMap(port.external_ids)},
          {"options", ovsMap(port.options)}};
}

// Readers of what the server sends. A value of an unexpected shape is a broken invariant
// (the schema says otherwise): kInternal naming the column.

// The members of a set column: a bare atom or ["set", [atoms]].
std::optional<std::vector<json>> setMembers(const json& value) {
  if (value.is_array() && value.size() == 2 && value[0] == "set") {
    if (!value[1].is_array()) return std::nullopt;
    return value[1].get<std::vector<json>>();
  }
  return std::vector<json>{value};
}

std::optional<std::string> readUuid(const json& value) {
  if (value.is_array() && value.size() == 2 && value[0] == "uuid" && value[1].is_string()) {
    return value[1].get<std::string>();
  }
  return std::nullopt;
}

Result<std::vector<std::string>> readUuidSet(const json& value, const char* column) {
  auto members = setMembers(value);
  if (!members) return internal(std::string("column ") + column + " is not a set");
  std::vector<std::string> uuids;
  for (const auto& member : *members) {
    auto uuid = readUuid(member);
    if (!uuid) return internal(std::string("column ") + column + " holds a non-uuid");
    uuids.push_back(*uuid);
  }
  return uuids;
}

Result<std::map<std::string, std::string>> readMap(const json& value, const char* column) {
  if (!value.is_array() || value.size() != 2 || value[0] != "map" || !value[1].is_array()) {
    return internal(std::string("column ") + column + " is not a map");
  }
  std::map<std::string, std::string> map;
  for (const auto& pair : value[1]) {
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) {
      return internal(std::string("column ") + column + " is not a map of strings");
    }
    map[pair[0].get<std::string>()] = pair[1].get<std::string>();
  }
  return map;
}

// An optional integer (a set of 0 or 1): nullopt when empty.
Result<std::optional<int64_t>> readOptionalInt(const json& value, const char* column) {
  auto members = setMembers(value);
  if (!members || members->size() > 1 ||
      (members->size() == 1 && !(*members)[0].is_number_integer())) {
    return internal(std::string("column ") + column + " is not an optional integer");
  }
  if (members->empty()) return std::optional<int64_t>();
  return std::optional<int64_t>((*members)[0].get<int64_t>());
}

Result<std::string> readOptionalString(const json& value, const char* column) {
  auto members = setMembers(value);
  if (!members || members->size() > 1 || (members->size() == 1 && !(*members)[0].is_string())) {
    return internal(std::string("column ") + column + " is not an optional string");
  }
  return members->empty() ? std::string() : (*members)[0].get<std::string>();
}

std::string stringOr(const json& row, const char* column) {
  auto it = row.find(column);
  return it != row.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The rows of select result `index`.
Result<std::vector<json>> rowsOf(const json& results, size_t index) {
  if (!results.is_array() || results.size() <= index || !results[index].is_object() ||
      !results[index].contains("rows") || !results[index]["rows"].is_array()) {
    return internal("ovsdb-server answered a select without rows");
  }
  return results[index]["rows"].get<std::vector<json>>();
}

// Linux interface names (dev_valid_name), restricted to printable ASCII: they also reach
// ovs-ofctl arguments and log lines.
Status checkInterfaceName(std::string_view what, const std::string& name) {
  bool ok = !name.empty() && name.size() <= 15 && name != "." && name != "..";
  for (char c : name) {
    if (c <= ' ' || c > '~' || c == '/' || c == ':') ok = false;
  }
  if (ok) return {};
  return makeError(ErrorCode::kInvalidArgument, "ovsdb",
                   std::string(what) + " " + quoteForMessage(name) +
                       " is not a valid interface name (1 to 15 printable ASCII characters, "
                       "no '/', ':' or spaces)");
}

// The Interface columns that Qiao sets, as read back.
struct InterfaceState {
  std::string uuid;
  SwitchPort port;
};

Result<InterfaceState> readInterface(const json& row) {
  InterfaceState state;
  auto uuid = row.contains("_uuid") ? readUuid(row["_uuid"]) : std::nullopt;
  if (!uuid) return internal("an Interface row has no _uuid");
  state.uuid = *uuid;
  state.port.name = stringOr(row, "name");
  state.port.type = stringOr(row, "type");
  if (row.contains("ofport_request")) {
    auto request = readOptionalInt(row["ofport_request"], "Interface.ofport_request");
    if (!request) return std::unexpected(request.error());
    state.port.ofport_request = request->value_or(0);
  }
  for (auto [column, target] : {std::pair{"external_ids", &state.port.external_ids},
                                std::pair{"options", &state.port.options}}) {
    if (!row.contains(column)) continue;
    auto map = readMap(row[column], column);
    if (!map) return std::unexpected(map.error());
    *target = std::move(*map);
  }
  return state;
}

class OvsdbSwitch final : public Switch {
 public:
  explicit OvsdbSwitch(const SwitchOptions& options)
      : client_(OvsdbClientOptions{.socket = options.socket,
                                   .call_timeout = std::chrono::milliseconds(options.timeout_ms)}) {
    client_.start();
  }

  Status ping() override {
    auto echo = client_.call("echo", json::array({"qiao"}));
    if (!echo) return std::unexpected(echo.error());
    return {};
  }

  Status ensureBridge(const std::string& bridge, const std::string& datapath_type,
                      const std::string& fail_mode) override {
    if (auto valid = checkInterfaceName("bridge", bridge); !valid) return valid;
    if (fail_mode != "secure" && fail_mode != "standalone") {
      return makeError(ErrorCode::kInvalidArgument, "ovsdb",
                       "fail_mode must be secure or standalone, not " + quoteForMessage(fail_mode));
    }
    return retried([&] { return ensureBridgeOnce(bridge, datapath_type, fail_mode); });
  }

  Status ensurePort(const std::string& bridge, const SwitchPort& port) override {
    if (auto valid = checkInterfaceName("bridge", bridge); !valid) return valid;
    if (auto valid = checkInterfaceName("port", port.name); !valid) return valid;
    if (port.name == bridge) {
      return makeError(ErrorCode::kInvalidArgument, "ovsdb",
                       "port " + port.name + " has its bridge's name (the bridge's own port)");
    }
    if (port.ofport_request < 0 || port.ofport_request > kMaxOfport) {
      return makeError(ErrorCode::kInvalidArgument, "ovsdb",
                       "ofport_request of port " + port.name + " must be from 1 to " +
                           std::to_string(kMaxOfport) + " (0: OVS chooses)");
    }
    return retried([&] { return ensurePortOnce(bridge, port); });
  }

  Status removePort(const std::string& bridge, const std::string& name) override {
    if (auto valid = checkInterfaceName("bridge", bridge); !valid) return valid;
    if (auto valid = checkInterfaceName("port", name); !valid) return valid;
    auto read = client_.transact(
        kDb, json::array({
                 select("Bridge", json::array({eq("name", bridge)}), {"_uuid", "ports"}),
                 select("Port", json::array({eq("name", name)}), {"_uuid"}),
             }));
    if (!read) return std::unexpected(read.error());
    auto bridges = rowsOf(*read, 0);
    auto ports = rowsOf(*read, 1);
    if (!bridges) return std::unexpected(bridges.error());
    if (!ports) return std::unexpected(ports.error());
    if (bridges->empty() || ports->empty()) return {};
    auto bridge_uuid = readUuid((*bridges)[0].value("_uuid", json()));
    auto port_uuid = readUuid((*ports)[0].value("_uuid", json()));
    if (!bridge_uuid || !port_uuid) return internal("a Bridge or Port row has no _uuid");
    // Deleting an element that is not there is no error in OVSDB: a port that is on another
    // bridge, or that went meanwhile, stays as it is. The Port and its Interface, no longer
    // referenced, are garbage-collected by ovsdb-server.
    auto removed = client_.transact(
        kDb, json::array({{{"op", "mutate"},
                           {"table", "Bridge"},
                           {"where", json::array({eq("_uuid", uuidRef(*bridge_uuid))})},
                           {"mutations",
                            json::array({json::array(
                                {"ports", "delete",
                                 json::array({"set", json::array({uuidRef(*port_uuid)})})})})}}}));
    if (!removed) return std::unexpected(removed.error());
    kLog.info("port removed", {{"bridge", bridge}, {"port", name}});
    return {};
  }

  Result<std::vector<SwitchPortState>> listPorts(const std::string& bridge) override {
    if (auto valid = checkInterfaceName("bridge", bridge); !valid) {
      return std::unexpected(valid.error());
    }
    Result<std::vector<json>> bridges, ports, interfaces;
    bool from_view = false;
    {
      // The monitor's view when it is current (no round trip: the check asks every second);
      // it has every change this client made, and others' as of their notification.
      std::lock_guard lock(mu_);
      if (cache_generation_ != 0 && cache_generation_ == client_.generation()) {
        bridges = std::vector<json>();
        for (auto& row : cache_.rows("Bridge")) {
          if (stringOr(row, "name") == bridge) bridges->push_back(std::move(row));
        }
        ports = cache_.rows("Port");
        interfaces = cache_.rows("Interface");
        from_view = true;
      }
    }
    if (!from_view) {
      // One transaction: one consistent view of the three tables.
      auto read = client_.transact(
          kDb, json::array({select("Bridge", json::array({eq("name", bridge)}), {"ports"}),
                            select("Port", json::array(), {"_uuid", "name", "interfaces"}),
                            select("Interface", json::array(),
                                   {"_uuid", "name", "type", "ofport_request", "external_ids",
                                    "options", "ofport", "error"})}));
      if (!read) return std::unexpected(read.error());
      bridges = rowsOf(*read, 0);
      ports = rowsOf(*read, 1);
      interfaces = rowsOf(*read, 2);
    }
    for (const auto* rows : {&bridges, &ports, &interfaces}) {
      if (!*rows) return std::unexpected(rows->error());
    }
    if (bridges->empty()) {
      return makeError(ErrorCode::kNotFound, "ovsdb", "bridge " + bridge + " does not exist");
    }
    auto port_uuids = readUuidSet((*bridges)[0].value("ports", json()), "Bridge.ports");
    if (!port_uuids) return std::unexpected(port_uuids.error());
    std::map<std::string, const json*> port_rows, interface_rows;
    for (const auto& row : *ports) {
      if (auto uuid = readUuid(row.value("_uuid", json()))) port_rows[*uuid] = &row;
    }
    for (const auto& row : *interfaces) {
      if (auto uuid = readUuid(row.value("_uuid", json()))) interface_rows[*uuid] = &row;
    }
    std::vector<SwitchPortState> states;
    for (const auto& port_uuid : *port_uuids) {
      auto port_row = port_rows.find(port_uuid);
      if (port_row == port_rows.end()) continue;
      const std::string name = stringOr(*port_row->second, "name");
      // The bridge's own (local) port is OVS's, not one Qiao manages.
      if (name == bridge) continue;
      auto members = readUuidSet(port_row->second->value("interfaces", json()), "Port.interfaces");
      if (!members) return std::unexpected(members.error());
      // A port has one interface of its name (bonds, which have more, are not Qiao's).
      const json* interface = nullptr;
      for (const auto& member : *members) {
        auto found = interface_rows.find(member);
        if (found == interface_rows.end()) continue;
        if (interface == nullptr || stringOr(*found->second, "name") == name) {
          interface = found->second;
        }
      }
      SwitchPortState state;
      state.port.name = name;
      if (interface != nullptr) {
        auto read_interface = readInterface(*interface);
        if (!read_interface) return std::unexpected(read_interface.error());
        state.port = std::move(read_interface->port);
        state.port.name = name;
        auto ofport = readOptionalInt(interface->value("ofport", json()), "Interface.ofport");
        if (!ofport) return std::unexpected(ofport.error());
        state.ofport = ofport->value_or(-1);
        auto error = readOptionalString(interface->value("error", json()), "Interface.error");
        if (!error) return std::unexpected(error.error());
        state.error = std::move(*error);
      } else {
        state.error = "port " + name + " has no interface";
      }
      states.push_back(std::move(state));
    }
    std::sort(states.begin(), states.end(),
              [](const auto& a, const auto& b) { return a.port.name < b.port.name; });
    return states;
  }

  void setChangeHandler(std::function<void()> handler) override {
    {
      std::lock_guard lock(mu_);
      handler_ = std::make_shared<std::function<void()>>(std::move(handler));
      if (monitoring_) return;
      monitoring_ = true;
    }
    // Only the columns Qiao reads: Interface's statistics change every few seconds.
    auto columns = [](std::vector<const char*> names) { return json{{"columns", names}}; };
    json requests = {{"Bridge", columns({"name", "ports", "datapath_type", "fail_mode"})},
                     {"Port", columns({"name", "interfaces"})},
                     {"Interface", columns({"name", "type", "ofport", "ofport_request",
                                            "external_ids", "options", "error"})}};
    auto monitored = client_.monitor(kDb, requests, [this](const json& updates, bool initial) {
      {
        std::lock_guard lock(mu_);
        // The connection this came on is the live one: only this (the reader) thread drops
        // or replaces connections.
        if (initial) cache_generation_ = client_.generation();
        if (auto applied = cache_.apply(updates, initial); !applied) {
          kLog.warn("monitor update not understood; reading the switch directly until the next "
                    "connection",
                    {{"reason", applied.error().message}});
          cache_generation_ = 0;
          cache_.clear();
        }
      }
      notify();
    });
    if (!monitored) {
      // The monitor stays registered in the client: it is set up when the server is back,
      // and the handler called then.
      kLog.warn("cannot monitor the switch yet", {{"reason", monitored.error().message}});
    }
  }

 private:
  void notify() {
    std::shared_ptr<std::function<void()>> handler;
    {
      std::lock_guard lock(mu_);
      handler = handler_;
    }
    if (handler && *handler) (*handler)();
  }

  // Runs a read-then-write step again when a concurrent writer made its guard fail.
  template <typename Step>
  Status retried(Step step) {
    Status status;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
      status = step();
      if (status || status.error().code != ErrorCode::kConflict) return status;
    }
    return status;
  }

  Status ensureBridgeOnce(const std::string& bridge, const std::string& datapath_type,
                          const std::string& fail_mode) {
    // Only a secure bridge is held to its fail_mode; a standalone one is its owner's.
    const bool enforce_mode = fail_mode == "secure";
    auto read =
        client_.transact(kDb, json::array({select("Bridge", json::array({eq("name", bridge)}),
                                                  {"_uuid", "datapath_type", "fail_mode"})}));
    if (!read) return std::unexpected(read.error());
    auto rows = rowsOf(*read, 0);
    if (!rows) return std::unexpected(rows.error());
    if (!rows->empty()) {
      const json& row = (*rows)[0];
      auto current_mode = readOptionalString(row.value("fail_mode", json()), "Bridge.fail_mode");
      if (!current_mode) return std::unexpected(current_mode.error());
      if (stringOr(row, "datapath_type") == datapath_type &&
          (!enforce_mode || *current_mode == "secure")) {
        return {};
      }
      auto uuid = readUuid(row.value("_uuid", json()));
      if (!uuid) return internal("a Bridge row has no _uuid");
      auto updated = client_.transact(
          kDb,
          json::array({{{"op", "update"},
                        {"table", "Bridge"},
                        {"where", json::array({eq("_uuid", uuidRef(*uuid))})},
                        {"row", enforce_mode ? json{{"datapath_type", datapath_type},
                                                   {"fail_mode", "secure"}}
                                             : json{{"datapath_type", datapath_type}}}}}));
      if (!updated) return std::unexpected(updated.error());
      kLog.info("bridge updated", {{"bridge", bridge}, {"datapath_type", datapath_type}});
      return {};
    }
    // As ovs-vsctl add-br does: the bridge with its own internal port of the same name.
    json ops = json::array({
        waitFor("Bridge", json::array({eq("name", bridge)}), {"name"}, json::array()),
        {{"op", "insert"},
         {"table", "Interface"},
         {"row", {{"name", bridge}, {"type", "internal"}}},
         {"uuid-name", "iface"}},
        {{"op", "insert"},
         {"table", "Port"},
         {"row", {{"name", bridge}, {"interfaces", namedRef("iface")}}},
         {"uuid-name", "port"}},
        {{"op", "insert"},
         {"table", "Bridge"},
         {"row",
          {{"name", bridge},
           {"datapath_type", datapath_type},
           {"fail_mode", fail_mode},
           {"ports", namedRef("port")}}},
         {"uuid-name", "bridge"}},
        {{"op", "mutate"},
         {"table", "Open_vSwitch"},
         {"where", json::array()},
         {"mutations",
          json::array({json::array(
              {"bridges", "insert", json::array({"set", json::array({namedRef("bridge")})})})})}},
    });
    auto created = client_.transact(kDb, ops);
    if (!created) return std::unexpected(created.error());
    kLog.info("bridge created", {{"bridge", bridge}, {"datapath_type", datapath_type}});
    return {};
  }

  Status ensurePortOnce(const std::string& bridge, const SwitchPort& port) {
    auto read = client_.transact(
        kDb,
        json::array({select("Bridge", json::array(), {"_uuid", "name", "ports"}),
                     select("Port", json::array({eq("name", port.name)}), {"_uuid", "interfaces"}),
                     select("Interface", json::array({eq("name", port.name)}),
                            {"_uuid", "type", "ofport_request", "external_ids", "options"})}));
    if (!read) return std::unexpected(read.error());
    auto bridges = rowsOf(*read, 0);
    auto ports = rowsOf(*read, 1);
    auto interfaces = rowsOf(*read, 2);
    for (const auto* rows : {&bridges, &ports, &interfaces}) {
      if (!*rows) return std::unexpected(rows->error());
    }

    std::optional<std::string> port_uuid;
    json port_interfaces = json::array({"set", json::array()});
    std::vector<std::string> member_uuids;
    if (!ports->empty()) {
      port_uuid = readUuid((*ports)[0].value("_uuid", json()));
      if (!port_uuid) return internal("a Port row has no _uuid");
      port_interfaces = (*ports)[0].value("interfaces", json());
      auto members = readUuidSet(port_interfaces, "Port.interfaces");
      if (!members) return std::unexpected(members.error());
      member_uuids = std::move(*members);
    }
    std::string target_uuid, holder_uuid;
    for (const auto& row : *bridges) {
      auto uuid = readUuid(row.value("_uuid", json()));
      if (!uuid) return internal("a Bridge row has no _uuid");
      if (stringOr(row, "name") == bridge) target_uuid = *uuid;
      if (!port_uuid) continue;
      auto members = readUuidSet(row.value("ports", json()), "Bridge.ports");
      if (!members) return std::unexpected(members.error());
      if (std::ranges::find(*members, *port_uuid) != members->end()) holder_uuid = *uuid;
    }
    if (target_uuid.empty()) {
      return makeError(ErrorCode::kNotFound, "ovsdb", "bridge " + bridge + " does not exist");
    }
    std::optional<InterfaceState> current;
    if (!interfaces->empty()) {
      auto state = readInterface((*interfaces)[0]);
      if (!state) return std::unexpected(state.error());
      current = std::move(*state);
      if (std::ranges::find(member_uuids, current->uuid) == member_uuids.end()) {
        return makeError(ErrorCode::kConflict, "ovsdb",
                         "interface " + port.name + " belongs to a port of another name");
      }
    }

    // The guards: the target bridge is still there, and the port is as read (absent, or with
    // the same interfaces).
    json ops = json::array();
    ops.push_back(waitFor("Bridge", json::array({eq("_uuid", uuidRef(target_uuid))}), {"name"},
                          json::array({json{{"name", bridge}}})));
    if (port_uuid) {
      ops.push_back(waitFor("Port", json::array({eq("_uuid", uuidRef(*port_uuid))}), {"interfaces"},
                            json::array({json{{"interfaces", port_interfaces}}})));
    } else {
      ops.push_back(waitFor("Port", json::array({eq("name", port.name)}), {"name"}, json::array()));
    }
    const size_t guards = ops.size();
    json port_ref;
    if (!port_uuid) {
      ops.push_back({{"op", "insert"},
                     {"table", "Interface"},
                     {"row", interfaceRow(port)},
                     {"uuid-name", "iface"}});
      ops.push_back({{"op", "insert"},
                     {"table", "Port"},
                     {"row", {{"name", port.name}, {"interfaces", namedRef("iface")}}},
                     {"uuid-name", "port"}});
      port_ref = namedRef("port");
    } else {
      port_ref = uuidRef(*port_uuid);
      json interface_ref;
      if (!current) {
        ops.push_back({{"op", "insert"},
                       {"table", "Interface"},
                       {"row", interfaceRow(port)},
                       {"uuid-name", "iface"}});
        interface_ref = namedRef("iface");
      } else {
        interface_ref = uuidRef(current->uuid);
        current->port.name = port.name;  // selected by it
        if (!(current->port == port)) {
          json row = interfaceRow(port);
          row.erase("name");
          ops.push_back({{"op", "update"},
                         {"table", "Interface"},
                         {"where", json::array({eq("_uuid", interface_ref)})},
                         {"row", std::move(row)}});
        }
      }
      if (member_uuids.size() != 1 || !current) {
        // Other interfaces on the port go (ovsdb-server collects them).
        ops.push_back({{"op", "update"},
                       {"table", "Port"},
                       {"where", json::array({eq("_uuid", port_ref)})},
                       {"row", {{"interfaces", interface_ref}}}});
      }
    }
    const bool moved = port_uuid && holder_uuid != target_uuid;
    if (!port_uuid || moved) {
      if (moved && !holder_uuid.empty()) {
        ops.push_back(portsMutation(holder_uuid, "delete", port_ref));
      }
      ops.push_back(portsMutation(target_uuid, "insert", port_ref));
    }
    if (ops.size() == guards) return {};  // already as wanted
    auto written = client_.transact(kDb, ops);
    if (!written) return std::unexpected(written.error());
    kLog.info(port_uuid ? "port updated" : "port created",
              {{"bridge", bridge}, {"port", port.name}, {"type", port.type}});
    return {};
  }

  static json portsMutation(const std::string& bridge_uuid, const char* mutator,
                            const json& port_ref) {
    return {
        {"op", "mutate"},
        {"table", "Bridge"},
        {"where", json::array({eq("_uuid", uuidRef(bridge_uuid))})},
        {"mutations", json::array({json::array(
                          {"ports", mutator, json::array({"set", json::array({port_ref})})})})}};
  }

  std::mutex mu_;
  std::shared_ptr<std::function<void()>> handler_;
  bool monitoring_ = false;
  // Bridge, Port and Interface as the monitor has them; current while the connection it came
  // on (cache_generation_, 0 = none) is the client's live one.
  OvsdbTableCache cache_;
  uint64_t cache_generation_ = 0;

  OvsdbClient client_;  // last: its reader thread, which calls notify(), stops first
};

}  // namespace

std::unique_ptr<Switch> makeOvsdbSwitch(const SwitchOptions& options) {
  return std::make_unique<OvsdbSwitch>(options);
}

}  // namespace qiao
