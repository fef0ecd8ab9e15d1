#include "cluster/hosts.h"

#include <charconv>
#include <nlohmann/json.hpp>

namespace qiao {
namespace {

using nlohmann::json;

constexpr char kRenewedKey[] = "renewed_ms";

Error corrupt(const std::string& what) {
  return Error{ErrorCode::kInternal, "cluster", "a stored host record is not valid: " + what, ""};
}

int64_t wallMs(Clock::Wall t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

std::string hostToJson(const HostRecord& h) {
  json j = {{"name", h.name},     {"state", toString(h.state)}, {"arch", h.arch},
            {"vcpus", h.vcpus},   {"memory_mib", h.memory_mib}, {"site", h.site},
            {"labels", h.labels}, {"endpoint", h.endpoint},     {"joined_at", h.joined_at}};
  if (!h.tunnel_ip.empty()) j["tunnel_ip"] = h.tunnel_ip;
  return j.dump();
}

Result<HostRecord> hostFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::unexpected(corrupt("not a JSON object"));
  HostRecord h;
  auto str = [&](const char* field, std::string* out) -> bool {
    auto it = j.find(field);
    if (it == j.end() || !it->is_string()) return false;
    *out = it->get<std::string>();
    return true;
  };
  std::string state;
  if (!str("name", &h.name) || !str("state", &state) || !str("arch", &h.arch) ||
      !str("site", &h.site) || !str("endpoint", &h.endpoint) || !str("joined_at", &h.joined_at)) {
    return std::unexpected(corrupt("a text field is missing"));
  }
  if (j.contains("tunnel_ip") && !str("tunnel_ip", &h.tunnel_ip)) {
    return std::unexpected(corrupt("tunnel_ip"));
  }
  auto parsed = parseEnum<HostState>(state);
  if (!parsed || *parsed == HostState::kUnreachable) {
    return std::unexpected(corrupt("state \"" + state + "\""));
  }
  h.state = *parsed;
  auto vcpus = j.find("vcpus");
  auto memory = j.find("memory_mib");
  if (vcpus == j.end() || !vcpus->is_number_integer() || memory == j.end() ||
      !memory->is_number_integer()) {
    return std::unexpected(corrupt("vcpus or memory_mib"));
  }
  h.vcpus = vcpus->get<int>();
  h.memory_mib = memory->get<int64_t>();
  auto labels = j.find("labels");
  if (labels == j.end() || !labels->is_object()) return std::unexpected(corrupt("labels"));
  for (const auto& [k, v] : labels->items()) {
    if (!v.is_string()) return std::unexpected(corrupt("label " + k));
    h.labels[k] = v.get<std::string>();
  }
  return h;
}

Membership::Membership(RadosCluster& rados, ClusterPool pool, Clock& clock)
    : rados_(rados), pool_(std::move(pool)), clock_(clock), table_(rados, pool_.table("hosts")) {}

Result<HostRecord> Membership::registerSelf(const HostRecord& self) {
  HostRecord written;
  auto done = table_.update(
      self.name,
      [&](const std::optional<std::string>& current) -> Result<std::optional<std::string>> {
        written = self;
        if (current) {
          auto stored = hostFromJson(*current);
          if (!stored) return std::unexpected(stored.error());
          if (stored->state == HostState::kRemoved) {
            return makeError(ErrorCode::kConflict, "cluster",
                             "host " + self.name +
                                 " was removed from the cluster: enroll it again with a join "
                                 "token");
          }
          written.state = stored->state;
          written.joined_at = stored->joined_at;
        } else if (written.joined_at.empty()) {
          written.joined_at = utcText(clock_.wallNow());
        }
        return std::optional<std::string>{hostToJson(written)};
      });
  if (!done) return std::unexpected(done.error());
  return written;
}

Status Membership::noteRenewal(const std::string& host) {
  OmapWrite write;
  write.set[kRenewedKey] = std::to_string(wallMs(clock_.wallNow()));
  auto written = rados_.omapWrite(pool_.hostLease(host), write);
  if (!written) return std::unexpected(written.error());
  return {};
}

Result<HostStatus> Membership::statusOf(HostRecord record) {
  HostStatus status;
  status.state = record.state;
  const RadosObject lease = pool_.hostLease(record.name);
  auto holders = rados_.lockers(lease, kLeaseName);
  if (!holders) {
    if (holders.error().code != ErrorCode::kNotFound) return std::unexpected(holders.error());
  } else if (!holders->empty()) {
    status.lease_held = true;
    status.lease_holder = holders->front().address;
  }
  if (auto renewed = rados_.omapGet(lease, {kRenewedKey}); renewed) {
    if (auto it = renewed->entries.find(kRenewedKey); it != renewed->entries.end()) {
      int64_t ms = 0;
      auto [end, ec] =
          std::from_chars(it->second.data(), it->second.data() + it->second.size(), ms);
      if (ec == std::errc()) {
        status.lease_age_s = static_cast<double>(wallMs(clock_.wallNow()) - ms) / 1000.0;
      }
    }
  }
  if (record.state == HostState::kReady && !status.lease_held) {
    status.state = HostState::kUnreachable;
  }
  status.record = std::move(record);
  return status;
}

Result<std::vector<HostStatus>> Membership::list() {
  auto all = table_.readAll();
  if (!all) return std::unexpected(all.error());
  std::vector<HostStatus> out;
  for (const auto& [name, text] : all->entries) {
    auto record = hostFromJson(text);
    if (!record) return std::unexpected(record.error());
    auto status = statusOf(std::move(*record));
    if (!status) return std::unexpected(status.error());
    out.push_back(std::move(*status));
  }
  return out;
}

Result<HostStatus> Membership::get(const std::string& name) {
  auto text = table_.get(name);
  if (!text) return std::unexpected(text.error());
  if (!*text)
    return makeError(ErrorCode::kNotFound, "cluster", "no host " + name + " in the cluster");
  auto record = hostFromJson(**text);
  if (!record) return std::unexpected(record.error());
  return statusOf(std::move(*record));
}

Status Membership::setState(const std::string& name, HostState state, std::optional<uint64_t> epoch,
                            std::optional<HostState> only_from) {
  if (state == HostState::kUnreachable) {
    return makeError(ErrorCode::kInvalidArgument, "cluster",
                     "unreachable is observed from the lease, never set");
  }
  auto done = table_.update(
      name,
      [&](const std::optional<std::string>& current) -> Result<std::optional<std::string>> {
        if (!current) return makeError(ErrorCode::kNotFound, "cluster", "no host " + name);
        auto record = hostFromJson(*current);
        if (!record) return std::unexpected(record.error());
        if (only_from && record->state != *only_from) {
          return makeError(
              ErrorCode::kConflict, "cluster",
              "host " + name + " is " + toString(record->state) + ", not " + toString(*only_from));
        }
        record->state = state;
        return std::optional<std::string>{hostToJson(*record)};
      },
      epoch);
  if (!done) return std::unexpected(done.error());
  return {};
}

}  // namespace qiao
