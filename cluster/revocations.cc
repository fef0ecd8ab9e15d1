#include "cluster/revocations.h"

#include <nlohmann/json.hpp>

namespace qiao {
namespace {

using nlohmann::json;

constexpr char kPemKey[] = "pem";
constexpr std::chrono::milliseconds kNotifyTimeout{2000};

std::string nodeKey(const std::string& host) { return "node/" + host; }

Error corrupt(const std::string& what) {
  return Error{ErrorCode::kInternal, "cluster", "a stored " + what + " record is not valid", ""};
}

}  // namespace

Revocations::Revocations(RadosCluster& rados, ClusterPool pool)
    : rados_(rados),
      pool_(std::move(pool)),
      revoked_(rados, pool_.table("revocations")),
      identities_(rados, pool_.table("identities")) {}

Status Revocations::add(const RevocationRecord& r) {
  json j = {
      {"serial", r.serial}, {"identity", r.identity}, {"reason", r.reason}, {"at_unix", r.at_unix}};
  auto done = revoked_.update(
      r.serial,
      [&](const std::optional<std::string>& current) -> Result<std::optional<std::string>> {
        if (current) return current;
        return std::optional<std::string>{j.dump()};
      });
  if (!done) return std::unexpected(done.error());
  return {};
}

Result<std::vector<RevocationRecord>> Revocations::list() {
  auto all = revoked_.readAll();
  if (!all) return std::unexpected(all.error());
  std::vector<RevocationRecord> out;
  for (const auto& [key, value] : all->entries) {
    json j = json::parse(value, nullptr, false);
    if (!j.is_object() || !j.contains("serial") || !j["serial"].is_string() ||
        !j.contains("at_unix") || !j["at_unix"].is_number_integer()) {
      continue;  // the leader's epoch stamp is an xattr, but be strict about entries only
    }
    RevocationRecord r;
    r.serial = j["serial"].get<std::string>();
    r.identity = j.value("identity", std::string());
    r.reason = j.value("reason", std::string());
    r.at_unix = j["at_unix"].get<int64_t>();
    out.push_back(std::move(r));
  }
  return out;
}

Result<Revocations::StoredCrl> Revocations::crl() {
  auto page = rados_.omapGet(crlObject(), {kPemKey});
  if (!page) {
    if (page.error().code == ErrorCode::kNotFound) return StoredCrl{};
    return std::unexpected(page.error());
  }
  StoredCrl out;
  out.version = page->version;
  if (auto it = page->entries.find(kPemKey); it != page->entries.end()) out.pem = it->second;
  return out;
}

Status Revocations::publishCrl(const std::string& pem, const std::optional<std::string>& previous) {
  OmapWrite write;
  write.guards.push_back({kPemKey, previous.value_or("")});
  write.set[kPemKey] = pem;
  auto written = rados_.omapWrite(crlObject(), write);
  if (!written) return std::unexpected(written.error());
  // Best effort: members also re-read it periodically.
  rados_.notifyInBackground(crlObject(), "crl", kNotifyTimeout);
  return {};
}

Status Revocations::setNodeCert(const NodeCertRecord& r) {
  json j = {{"host", r.host}, {"identity", r.identity}, {"serial", r.serial}};
  auto done = identities_.update(
      nodeKey(r.host),
      [&](const std::optional<std::string>&) -> Result<std::optional<std::string>> {
        return std::optional<std::string>{j.dump()};
      });
  if (!done) return std::unexpected(done.error());
  return {};
}

Result<std::optional<NodeCertRecord>> Revocations::nodeCert(const std::string& host) {
  auto stored = identities_.get(nodeKey(host));
  if (!stored) return std::unexpected(stored.error());
  if (!*stored) return std::optional<NodeCertRecord>{};
  json j = json::parse(**stored, nullptr, false);
  if (!j.is_object() || !j.contains("serial") || !j["serial"].is_string()) {
    return std::unexpected(corrupt("node identity"));
  }
  return std::optional<NodeCertRecord>{
      NodeCertRecord{host, j.value("identity", std::string()), j["serial"].get<std::string>()}};
}

Status Revocations::removeNodeCert(const std::string& host) {
  return identities_.remove(nodeKey(host));
}

}  // namespace qiao
