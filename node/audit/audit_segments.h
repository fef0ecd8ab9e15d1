// The audit log's rotation: closed segments of the hash chain are exported to files (one JSON
// object per line, with a sha256sum-style sidecar) and removed from the database, which keeps
// the last exported entry as its checkpoint; and the verification of the whole chain, exported
// segments first, then the database from the checkpoint.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "node/state/store.h"

namespace qiao {

struct RotateOptions {
  std::string dir;          // where segments are written (made 0700 when missing)
  int64_t max_entries = 0;  // close at most this many entries into the segment
  int64_t up_to_seq = -1;   // never past this entry (a syslog destination's confirmed one)
};

// Exports the oldest entries of the database (after the checkpoint, at most max_entries and
// up to up_to_seq) as one segment file and removes them. Returns the segment; nullopt-like
// (last_seq == 0) when there was nothing to close. A crash between the file and the database
// leaves the entries in the database, and the next rotation writes the same file again.
Result<AuditSegment> rotateAudit(Store& store, const RotateOptions& options);

// The file name of the segment with these entries: audit-<first>-<last>.jsonl, zero-padded.
std::string segmentFileName(int64_t first_seq, int64_t last_seq);

// One line of a segment file, and back (kInvalidArgument with the reason when malformed).
std::string auditEntryJson(const AuditEntry& entry);
Result<AuditEntry> auditEntryFromJson(const std::string& line);

// What a verification found: one line per part walked, and the first problem.
struct AuditVerification {
  bool ok = true;
  std::vector<std::string> lines;
  std::string problem;
};

// Verifies the exported segments the database lists (file present, its SHA-256 as recorded,
// its chain whole and linked to the segment before) and then the database's entries from the
// checkpoint.
Result<AuditVerification> verifyAuditLog(Store& store);

// Verifies segment files on their own (an archive away from the node): each file's sidecar
// hash when it has one, its chain, and each file's link to the one before it in `files`.
AuditVerification verifySegmentFiles(const std::vector<std::string>& files);

}  // namespace qiao
