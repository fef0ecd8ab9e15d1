// JoinTokens: the single-use tokens that enroll a server into the cluster. An admin (or an
// installer) creates one with an expiry, a site and labels; the new server presents it once
// (`qiaod join`). Each token is a record of the "tokens" table keyed by its id, holding only the
// SHA-256 of its secret, never the secret. Consuming it is one guarded update of that record:
// of two joins with one token exactly one wins. The token's text also pins the cluster CA (the
// SHA-256 of its certificate), so the joiner can trust the endpoint before it holds ca.crt.
// docs/operators/cluster.md "Enrollment".
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/error.h"
#include "cluster/cluster_pool.h"
#include "cluster/record_table.h"
#include "storage/rados_cluster.h"

namespace qiao {

// "qiao-join.<id>.<secret>.<ca-sha256>": id 16 hex digits, secret 32, the CA pin 64.
struct JoinTokenText {
  std::string id, secret, ca_sha256;
  std::string text() const;
};
// kInvalidArgument (without echoing the secret) when the text is not such a token.
Result<JoinTokenText> parseJoinToken(std::string_view text);

struct JoinTokenRecord {
  std::string id;
  std::string secret_sha256;  // hex
  std::string created_at, expires_at;
  int64_t expires_unix_ms = 0;
  std::string site;
  std::map<std::string, std::string> labels;
  std::string creator;  // the identity that created it
  std::string used_by;  // the host that consumed it ("" while unused)
  std::string used_at;
};

std::string tokenToJson(const JoinTokenRecord& record);
Result<JoinTokenRecord> tokenFromJson(const std::string& text);

struct JoinTokenRequest {
  std::chrono::seconds ttl{3600};
  std::string site;
  std::map<std::string, std::string> labels;
  std::string creator;
};

class JoinTokens {
 public:
  // At most this long-lived (a token is a key to the cluster).
  static constexpr std::chrono::hours kMaxTtl{24 * 7};

  JoinTokens(RadosCluster& rados, ClusterPool pool, Clock& clock);

  // A new token (its secret is returned here only). `ca_sha256`: the CA pin it carries.
  // kInvalidArgument for a ttl out of 1 s .. kMaxTtl.
  Result<JoinTokenText> create(const JoinTokenRequest& request, const std::string& ca_sha256,
                               JoinTokenRecord* record = nullptr);
  // Without consuming it: the token's record when it would be accepted now.
  Result<JoinTokenRecord> check(const JoinTokenText& token);
  // Marks the token used by `host`, in one guarded update; the record as it was accepted.
  // kPermissionDenied for an unknown id, a wrong secret, an expired or already used token.
  Result<JoinTokenRecord> consume(const JoinTokenText& token, const std::string& host);

  RecordTable& table() { return table_; }

 private:
  Result<JoinTokenRecord> acceptable(const JoinTokenText& token,
                                     const std::optional<std::string>& stored);

  Clock& clock_;
  RecordTable table_;
};

}  // namespace qiao
