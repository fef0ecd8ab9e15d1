#include "node/state/audit_repository.h"

#include "base/crypto.h"
#include "node/state/database.h"
#include "node/state/table.h"

namespace qiao {
namespace {

const Table<AuditEntry> kAudit{"audit",
                               {
                                   field("seq", &AuditEntry::seq),
                                   field("at", &AuditEntry::at),
                                   field("identity", &AuditEntry::identity),
                                   field("method", &AuditEntry::method),
                                   field("path", &AuditEntry::path),
                                   field("tenant", &AuditEntry::tenant),
                                   field("target", &AuditEntry::target),
                                   field("status", &AuditEntry::status),
                                   field("request_digest", &AuditEntry::request_digest),
                                   field("prev_hash", &AuditEntry::prev_hash),
                                   field("hash", &AuditEntry::hash),
                               }};

const Table<AuditSegment> kSegments{
    "audit_segments",
    {
        field("first_seq", &AuditSegment::first_seq),
        field("last_seq", &AuditSegment::last_seq),
        field("first_prev_hash", &AuditSegment::first_prev_hash),
        field("last_hash", &AuditSegment::last_hash),
        field("file", &AuditSegment::file),
        field("sha256", &AuditSegment::sha256),
        field("exported_at", &AuditSegment::exported_at, Column<AuditSegment>::Fill::kCreatedAt),
    }};

// How far a syslog destination has confirmed delivery.
struct Shipping {
  std::string destination;
  int64_t confirmed_seq = 0;
  std::string updated_at;
};

const Table<Shipping> kShipping{"audit_shipping",
                                {
                                    field("destination", &Shipping::destination),
                                    field("confirmed_seq", &Shipping::confirmed_seq),
                                    updatedAt(&Shipping::updated_at),
                                }};

AuditEntry readEntry(const Statement& q) { return kAudit.read(q); }

}  // namespace

const std::string kAuditGenesisHash(64, '0');

std::string auditHash(const AuditEntry& e, const std::string& prev_hash) {
  std::string canonical;
  auto field = [&](const std::string& v) {
    canonical += std::to_string(v.size());
    canonical += ':';
    canonical += v;
    canonical += ';';
  };
  field(prev_hash);
  field(std::to_string(e.seq));
  field(e.at);
  field(e.identity);
  field(e.method);
  field(e.path);
  field(e.tenant);
  field(e.target);
  field(std::to_string(e.status));
  field(e.request_digest);
  return sha256Hex(canonical);
}

bool AuditChainWalker::next(const AuditEntry& e) {
  std::string why;
  if (e.seq != expected_seq_) {
    why = "expected entry " + std::to_string(expected_seq_) + " next, found " +
          std::to_string(e.seq) + " (entries missing)";
  } else if (e.prev_hash != prev_) {
    why =
        "its link to the previous entry does not match (an entry before it was removed or "
        "changed)";
  } else if (auditHash(e, prev_) != e.hash) {
    why = "its content does not match its hash (it was changed)";
  }
  if (!why.empty()) {
    broken_seq_ = e.seq;
    problem_ = "entry " + std::to_string(e.seq) + ": " + why;
    return false;
  }
  prev_ = e.hash;
  expected_seq_ = e.seq + 1;
  ++entries_;
  return true;
}

Status AuditRepository::append(AuditEntry entry) {
  std::lock_guard lock(db_.mutex());
  Transaction tx(db_);
  if (!tx.status()) return tx.status();
  auto head = headLocked();
  if (!head) return std::unexpected(head.error());
  {
    // The time is part of the hashed entry, so it is read before the insert.
    Statement q(db_, std::string("SELECT ") + kSqlNow);
    q.step();
    entry.at = q.text(0);
  }
  entry.seq = head->seq + 1;
  entry.prev_hash = head->hash;
  entry.hash = auditHash(entry, entry.prev_hash);
  Statement q(db_, kAudit.insert());
  kAudit.bindInsert(q, entry);
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("append audit"));
  return tx.commit();
}

Result<AuditRepository::Report> AuditRepository::verify() {
  std::lock_guard lock(db_.mutex());
  auto checkpoint = checkpointLocked();
  if (!checkpoint) return std::unexpected(checkpoint.error());
  Report report;
  report.from_seq = checkpoint->seq;
  AuditChainWalker walker(*checkpoint);
  Statement q(db_, kAudit.select() + " ORDER BY seq");
  Statement::Step step;
  while ((step = q.step()) == Statement::Step::kRow) {
    if (!walker.next(readEntry(q))) {
      report.ok = false;
      report.entries = walker.entries();
      report.first_broken_seq = walker.brokenSeq();
      report.problem = walker.problem();
      return report;
    }
  }
  if (step != Statement::Step::kDone) return std::unexpected(db_.error("verify audit"));
  report.entries = walker.entries();
  return report;
}

Result<std::vector<AuditEntry>> AuditRepository::list(int64_t after_seq, int limit) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, kAudit.select() + " WHERE seq > ? ORDER BY seq LIMIT ?");
  q.bind(after_seq).bind(int64_t{limit});
  return readAll<AuditEntry>(db_, q, readEntry, "list audit");
}

Result<AuditLink> AuditRepository::checkpointLocked() {
  Statement q(db_, "SELECT last_seq, last_hash FROM audit_segments ORDER BY last_seq DESC LIMIT 1");
  auto step = q.step();
  if (step == Statement::Step::kRow) return AuditLink{q.integer(0), q.text(1)};
  if (step != Statement::Step::kDone) return std::unexpected(db_.error("audit checkpoint"));
  return AuditLink{0, kAuditGenesisHash};
}

Result<AuditLink> AuditRepository::headLocked() {
  Statement q(db_, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1");
  auto step = q.step();
  if (step == Statement::Step::kRow) return AuditLink{q.integer(0), q.text(1)};
  if (step != Statement::Step::kDone) return std::unexpected(db_.error("audit head"));
  return checkpointLocked();
}

Result<AuditLink> AuditRepository::checkpoint() {
  std::lock_guard lock(db_.mutex());
  return checkpointLocked();
}

Result<AuditLink> AuditRepository::head() {
  std::lock_guard lock(db_.mutex());
  return headLocked();
}

Result<int64_t> AuditRepository::count() {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "SELECT count(*) FROM audit");
  if (q.step() != Statement::Step::kRow) return std::unexpected(db_.error("count audit"));
  return q.integer(0);
}

Status AuditRepository::closeSegment(const AuditSegment& segment) {
  std::lock_guard lock(db_.mutex());
  Transaction tx(db_);
  if (!tx.status()) return tx.status();
  auto checkpoint = checkpointLocked();
  if (!checkpoint) return std::unexpected(checkpoint.error());
  if (segment.first_seq != checkpoint->seq + 1 || segment.first_prev_hash != checkpoint->hash ||
      segment.last_seq < segment.first_seq) {
    return makeError(ErrorCode::kConflict, "store",
                     "audit segment " + std::to_string(segment.first_seq) + "-" +
                         std::to_string(segment.last_seq) +
                         " does not follow the last exported entry " +
                         std::to_string(checkpoint->seq));
  }
  {
    Statement q(db_, "SELECT hash FROM audit WHERE seq = ?");
    q.bind(segment.last_seq);
    if (q.step() != Statement::Step::kRow || q.text(0) != segment.last_hash) {
      return makeError(
          ErrorCode::kConflict, "store",
          "audit entry " + std::to_string(segment.last_seq) + " is not the segment's last entry");
    }
  }
  Statement insert(db_, kSegments.insert());
  kSegments.bindInsert(insert, segment);
  if (insert.step() != Statement::Step::kDone) {
    return std::unexpected(db_.error("record audit segment"));
  }
  Statement remove(db_, "DELETE FROM audit WHERE seq <= ?");
  remove.bind(segment.last_seq);
  if (remove.step() != Statement::Step::kDone) {
    return std::unexpected(db_.error("remove audit segment"));
  }
  return tx.commit();
}

Result<std::vector<AuditSegment>> AuditRepository::segments() {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, kSegments.select() + " ORDER BY last_seq");
  return readAll<AuditSegment>(
      db_, q, [](const Statement& row) { return kSegments.read(row); }, "list audit segments");
}

Result<int64_t> AuditRepository::confirmed(const std::string& destination) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "SELECT confirmed_seq FROM audit_shipping WHERE destination = ?");
  q.bind(destination);
  auto step = q.step();
  if (step == Statement::Step::kRow) return q.integer(0);
  if (step != Statement::Step::kDone) return std::unexpected(db_.error("audit shipping"));
  return int64_t{0};
}

Status AuditRepository::setConfirmed(const std::string& destination, int64_t seq) {
  static const std::string kUpsert = kShipping.upsert({"destination"});
  std::lock_guard lock(db_.mutex());
  Statement q(db_, kUpsert);
  kShipping.bindInsert(q, Shipping{destination, seq, ""});
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("audit shipping"));
  return {};
}

}  // namespace qiao
