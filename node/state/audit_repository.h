// The hash-chained audit log in the store: its entries, the segments exported from it, and
// how far each syslog destination has confirmed delivery.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "node/state/records.h"

namespace qiao {

class Database;

// Walks a run of audit entries from a link, checking order, links and hashes; stops at the
// first broken entry. One walker for the database's entries and exported segments.
class AuditChainWalker {
 public:
  explicit AuditChainWalker(const AuditLink& from)
      : prev_(from.hash), expected_seq_(from.seq + 1) {}
  // False (and problem() says why) when `entry` does not follow the entries before it.
  bool next(const AuditEntry& entry);
  int64_t entries() const { return entries_; }
  AuditLink last() const { return {expected_seq_ - 1, prev_}; }
  int64_t brokenSeq() const { return broken_seq_; }
  const std::string& problem() const { return problem_; }

 private:
  std::string prev_;
  int64_t expected_seq_;
  int64_t entries_ = 0;
  int64_t broken_seq_ = 0;
  std::string problem_;
};

class AuditRepository {
 public:
  explicit AuditRepository(Database& db) : db_(db) {}

  // Fills seq, at, prev_hash and hash.
  Status append(AuditEntry entry);
  struct Report {
    bool ok = true;
    int64_t from_seq = 0;  // the checkpoint the walk started after (0: the first entry)
    int64_t entries = 0;
    int64_t first_broken_seq = 0;
    std::string problem;
  };
  // Walks the entries in the database from the checkpoint.
  Result<Report> verify();
  Result<std::vector<AuditEntry>> list(int64_t after_seq, int limit);
  // The last exported entry (the chain in the database goes on from it); {0, genesis} if none.
  Result<AuditLink> checkpoint();
  // The newest entry (the checkpoint when the database holds none).
  Result<AuditLink> head();
  Result<int64_t> count();
  // Records an exported segment and removes its entries, in one transaction. kConflict when it
  // does not start right after the checkpoint or does not end on an entry of the database.
  Status closeSegment(const AuditSegment& segment);
  Result<std::vector<AuditSegment>> segments();
  // The last entry a syslog destination confirmed (0: none yet).
  Result<int64_t> confirmed(const std::string& destination);
  Status setConfirmed(const std::string& destination, int64_t seq);

 private:
  Result<AuditLink> checkpointLocked();  // the database's mutex held
  Result<AuditLink> headLocked();        // the database's mutex held

  Database& db_;
};

// The hash of one audit entry given its predecessor's: SHA-256 over length-prefixed fields, so
// that moving characters between fields changes it.
std::string auditHash(const AuditEntry& entry, const std::string& prev_hash);
// The link the first entry of the audit log names as its predecessor.
extern const std::string kAuditGenesisHash;

}  // namespace qiao
