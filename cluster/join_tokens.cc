#include "cluster/join_tokens.h"

#include <nlohmann/json.hpp>

#include "base/crypto.h"

namespace qiao {
namespace {

using nlohmann::json;

constexpr char kPrefix[] = "qiao-join.";
constexpr size_t kIdHex = 16, kSecretHex = 32, kPinHex = 64;

bool lowerHex(std::string_view s, size_t length) {
  if (s.size() != length) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Compares without stopping at the first difference (the stored hash against the presented).
bool sameDigest(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

int64_t unixMs(Clock::Wall t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

Error refused(const std::string& why) {
  return Error{ErrorCode::kPermissionDenied, "cluster", "join token refused: " + why, ""};
}

}  // namespace

std::string JoinTokenText::text() const { return kPrefix + id + "." + secret + "." + ca_sha256; }

Result<JoinTokenText> parseJoinToken(std::string_view text) {
  auto bad = [](const std::string& why) {
    return makeError(ErrorCode::kInvalidArgument, "cluster",
                     "not a join token (" + why +
                         "): it looks like qiao-join.<16 hex>.<32 hex>.<64 hex>, as `qiaoctl "
                         "cluster token create` prints it");
  };
  const std::string_view prefix = kPrefix;
  if (text.substr(0, prefix.size()) != prefix) return bad("wrong prefix");
  text.remove_prefix(prefix.size());
  JoinTokenText t;
  auto dot1 = text.find('.');
  if (dot1 == std::string_view::npos) return bad("too few parts");
  auto dot2 = text.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos) return bad("too few parts");
  std::string_view id = text.substr(0, dot1);
  std::string_view secret = text.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string_view pin = text.substr(dot2 + 1);
  if (!lowerHex(id, kIdHex)) return bad("the id");
  if (!lowerHex(secret, kSecretHex)) return bad("the secret");
  if (!lowerHex(pin, kPinHex)) return bad("the CA pin");
  t.id = id;
  t.secret = secret;
  t.ca_sha256 = pin;
  return t;
}

std::string tokenToJson(const JoinTokenRecord& r) {
  json j = {{"id", r.id},
            {"secret_sha256", r.secret_sha256},
            {"created_at", r.created_at},
            {"expires_at", r.expires_at},
            {"expires_unix_ms", r.expires_unix_ms},
            {"site", r.site},
            {"labels", r.labels},
            {"creator", r.creator},
            {"used_by", r.used_by},
            {"used_at", r.used_at}};
  return j.dump();
}

Result<JoinTokenRecord> tokenFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  auto corrupt = [](const std::string& what) {
    return makeError(ErrorCode::kInternal, "cluster", "a stored join token is not valid: " + what);
  };
  if (j.is_discarded() || !j.is_object()) return corrupt("not a JSON object");
  JoinTokenRecord r;
  for (auto [field, out] : std::initializer_list<std::pair<const char*, std::string*>>{
           {"id", &r.id},
           {"secret_sha256", &r.secret_sha256},
           {"created_at", &r.created_at},
           {"expires_at", &r.expires_at},
           {"site", &r.site},
           {"creator", &r.creator},
           {"used_by", &r.used_by},
           {"used_at", &r.used_at}}) {
    auto it = j.find(field);
    if (it == j.end() || !it->is_string()) return corrupt(field);
    *out = it->get<std::string>();
  }
  auto expires = j.find("expires_unix_ms");
  if (expires == j.end() || !expires->is_number_integer()) return corrupt("expires_unix_ms");
  r.expires_unix_ms = expires->get<int64_t>();
  auto labels = j.find("labels");
  if (labels == j.end() || !labels->is_object()) return corrupt("labels");
  for (const auto& [k, v] : labels->items()) {
    if (!v.is_string()) return corrupt("labels");
    r.labels[k] = v.get<std::string>();
  }
  return r;
}

JoinTokens::JoinTokens(RadosCluster& rados, ClusterPool pool, Clock& clock)
    : clock_(clock), table_(rados, pool.table("tokens")) {}

Result<JoinTokenText> JoinTokens::create(const JoinTokenRequest& request,
                                         const std::string& ca_sha256, JoinTokenRecord* out) {
  if (request.ttl < std::chrono::seconds(1) || request.ttl > kMaxTtl) {
    return makeError(ErrorCode::kInvalidArgument, "cluster",
                     "a join token expires after 1 s to 7 days (168h); asked " +
                         std::to_string(request.ttl.count()) + " s");
  }
  if (!lowerHex(ca_sha256, kPinHex)) {
    return makeError(ErrorCode::kInternal, "cluster", "the CA pin is not a SHA-256 in hex");
  }
  JoinTokenText token{randomHex(kIdHex / 2), randomHex(kSecretHex / 2), ca_sha256};
  const Clock::Wall now = clock_.wallNow();
  JoinTokenRecord record;
  record.id = token.id;
  record.secret_sha256 = sha256Hex(token.secret);
  record.created_at = utcText(now);
  record.expires_at = utcText(now + request.ttl);
  record.expires_unix_ms = unixMs(now + request.ttl);
  record.site = request.site;
  record.labels = request.labels;
  record.creator = request.creator;
  if (auto added = table_.insert(token.id, tokenToJson(record)); !added) {
    return std::unexpected(added.error());
  }
  if (out) *out = record;
  return token;
}

Result<JoinTokenRecord> JoinTokens::acceptable(const JoinTokenText& token,
                                               const std::optional<std::string>& stored) {
  // The same answer for an unknown id and a wrong secret: a guesser learns nothing.
  if (!stored) return std::unexpected(refused("it is not a token of this cluster"));
  auto record = tokenFromJson(*stored);
  if (!record) return std::unexpected(record.error());
  if (!sameDigest(record->secret_sha256, sha256Hex(token.secret))) {
    return std::unexpected(refused("it is not a token of this cluster"));
  }
  if (!record->used_by.empty()) {
    return std::unexpected(refused("token " + token.id + " was used already, by host " +
                                   record->used_by + " at " + record->used_at +
                                   "; create a new one"));
  }
  if (unixMs(clock_.wallNow()) >= record->expires_unix_ms) {
    return std::unexpected(
        refused("token " + token.id + " expired at " + record->expires_at + "; create a new one"));
  }
  return record;
}

Result<JoinTokenRecord> JoinTokens::check(const JoinTokenText& token) {
  auto stored = table_.get(token.id);
  if (!stored) return std::unexpected(stored.error());
  return acceptable(token, *stored);
}

Result<JoinTokenRecord> JoinTokens::consume(const JoinTokenText& token, const std::string& host) {
  JoinTokenRecord accepted;
  auto done = table_.update(
      token.id,
      [&](const std::optional<std::string>& current) -> Result<std::optional<std::string>> {
        auto record = acceptable(token, current);
        if (!record) return std::unexpected(record.error());
        accepted = *record;
        record->used_by = host;
        record->used_at = utcText(clock_.wallNow());
        return std::optional<std::string>{tokenToJson(*record)};
      });
  if (!done) return std::unexpected(done.error());
  return accepted;
}

}  // namespace qiao
