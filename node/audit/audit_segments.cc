#include "node/audit/audit_segments.h"

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/crypto.h"
#include "base/files.h"

namespace qiao {
namespace {

Error auditError(ErrorCode code, const std::string& message) {
  return Error{code, "audit", message};
}

// Walks the lines of a segment file from `from` (when null: from its first entry's link).
// Returns the walker's end, or the problem.
struct FileWalk {
  bool ok = false;
  AuditLink first_prev;  // the link the file's first entry names
  AuditLink last;
  int64_t entries = 0;
  std::string problem;
};

FileWalk walkSegmentBytes(const std::string& bytes, const AuditLink* from) {
  FileWalk walk;
  std::istringstream in(bytes);
  std::string line;
  std::optional<AuditChainWalker> walker;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    auto entry = auditEntryFromJson(line);
    if (!entry) {
      walk.problem = "line " + std::to_string(line_no) + ": " + entry.error().message;
      return walk;
    }
    if (!walker) {
      walk.first_prev = {entry->seq - 1, entry->prev_hash};
      walker.emplace(from ? *from : walk.first_prev);
    }
    if (!walker->next(*entry)) {
      walk.problem = walker->problem();
      return walk;
    }
  }
  if (!walker) {
    walk.problem = "it holds no entries";
    return walk;
  }
  walk.ok = true;
  walk.last = walker->last();
  walk.entries = walker->entries();
  return walk;
}

std::string range(int64_t first, int64_t last) {
  return std::to_string(first) + "-" + std::to_string(last);
}

}  // namespace

std::string segmentFileName(int64_t first_seq, int64_t last_seq) {
  char name[64];
  std::snprintf(name, sizeof name, "audit-%012lld-%012lld.jsonl", static_cast<long long>(first_seq),
                static_cast<long long>(last_seq));
  return name;
}

std::string auditEntryJson(const AuditEntry& e) {
  nlohmann::json j = {{"seq", e.seq},
                      {"at", e.at},
                      {"identity", e.identity},
                      {"method", e.method},
                      {"path", e.path},
                      {"tenant", e.tenant},
                      {"target", e.target},
                      {"status", e.status},
                      {"request_digest", e.request_digest},
                      {"prev_hash", e.prev_hash},
                      {"hash", e.hash}};
  // Stored fields are bytes; a field that is not UTF-8 is written with replacement characters
  // and then fails verification, which is right: it cannot be proven from the file.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<AuditEntry> auditEntryFromJson(const std::string& line) {
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return std::unexpected(auditError(ErrorCode::kInvalidArgument, "not a JSON object"));
  }
  AuditEntry e;
  try {
    e.seq = j.at("seq").get<int64_t>();
    e.at = j.at("at").get<std::string>();
    e.identity = j.at("identity").get<std::string>();
    e.method = j.at("method").get<std::string>();
    e.path = j.at("path").get<std::string>();
    e.tenant = j.at("tenant").get<std::string>();
    e.target = j.at("target").get<std::string>();
    e.status = j.at("status").get<int>();
    e.request_digest = j.at("request_digest").get<std::string>();
    e.prev_hash = j.at("prev_hash").get<std::string>();
    e.hash = j.at("hash").get<std::string>();
  } catch (const nlohmann::json::exception& ex) {
    return std::unexpected(
        auditError(ErrorCode::kInvalidArgument, std::string("not an audit entry: ") + ex.what()));
  }
  return e;
}

Result<AuditSegment> rotateAudit(Store& store, const RotateOptions& options) {
  auto checkpoint = store.audit().checkpoint();
  if (!checkpoint) return std::unexpected(checkpoint.error());
  int64_t limit = options.max_entries;
  if (options.up_to_seq >= 0) limit = std::min(limit, options.up_to_seq - checkpoint->seq);
  if (limit <= 0) return AuditSegment{};
  std::string text;
  AuditSegment segment;
  int64_t taken = 0;
  while (taken < limit) {
    const int batch = static_cast<int>(std::min<int64_t>(limit - taken, 4096));
    auto entries = store.audit().list(checkpoint->seq + taken, batch);
    if (!entries) return std::unexpected(entries.error());
    if (entries->empty()) break;
    for (const auto& e : *entries) {
      if (taken == 0) {
        segment.first_seq = e.seq;
        segment.first_prev_hash = e.prev_hash;
      }
      text += auditEntryJson(e);
      text += '\n';
      segment.last_seq = e.seq;
      segment.last_hash = e.hash;
      ++taken;
    }
  }
  if (taken == 0) return AuditSegment{};
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  ::chmod(options.dir.c_str(), 0700);
  const std::string name = segmentFileName(segment.first_seq, segment.last_seq);
  segment.file = options.dir + "/" + name;
  segment.sha256 = sha256Hex(text);
  if (auto written = writeFileAtomic(segment.file, text, 0600); !written) {
    return std::unexpected(written.error());
  }
  if (auto written =
          writeFileAtomic(segment.file + ".sha256", segment.sha256 + "  " + name + "\n", 0600);
      !written) {
    return std::unexpected(written.error());
  }
  if (auto closed = store.audit().closeSegment(segment); !closed) {
    return std::unexpected(closed.error());
  }
  return segment;
}

Result<AuditVerification> verifyAuditLog(Store& store) {
  AuditVerification out;
  auto segments = store.audit().segments();
  if (!segments) return std::unexpected(segments.error());
  AuditLink link{0, kAuditGenesisHash};
  auto broken = [&](const std::string& problem) {
    out.ok = false;
    out.problem = problem;
    out.lines.push_back("BROKEN: " + problem);
    return out;
  };
  for (const auto& s : *segments) {
    const std::string what = "segment " + range(s.first_seq, s.last_seq) + " (" + s.file + ")";
    if (s.first_seq != link.seq + 1 || s.first_prev_hash != link.hash) {
      return broken(what + ": does not follow entry " + std::to_string(link.seq) +
                    " (a segment is missing or was changed)");
    }
    auto bytes = readFileBytes(s.file);
    if (!bytes) return broken(what + ": the file is missing or unreadable");
    if (sha256Hex(*bytes) != s.sha256) {
      return broken(what +
                    ": the file's SHA-256 is not the one recorded at export (it was "
                    "changed)");
    }
    FileWalk walk = walkSegmentBytes(*bytes, &link);
    if (!walk.ok) return broken(what + ": " + walk.problem);
    if (walk.last.seq != s.last_seq || walk.last.hash != s.last_hash) {
      return broken(what + ": ends at entry " + std::to_string(walk.last.seq) +
                    ", not at the recorded last entry");
    }
    out.lines.push_back(what + ": ok, " + std::to_string(walk.entries) + " entries");
    link = walk.last;
  }
  auto report = store.audit().verify();
  if (!report) return std::unexpected(report.error());
  if (report->from_seq != link.seq) {
    return broken("the database's checkpoint " + std::to_string(report->from_seq) +
                  " is not the last exported entry " + std::to_string(link.seq));
  }
  if (!report->ok) return broken("database: " + report->problem);
  out.lines.push_back("database: ok, " + std::to_string(report->entries) + " entries after " +
                      std::to_string(report->from_seq));
  return out;
}

AuditVerification verifySegmentFiles(const std::vector<std::string>& files) {
  AuditVerification out;
  std::optional<AuditLink> link;
  for (const auto& file : files) {
    auto broken = [&](const std::string& problem) {
      out.ok = false;
      out.problem = file + ": " + problem;
      out.lines.push_back("BROKEN: " + out.problem);
      return out;
    };
    auto bytes = readFileBytes(file);
    if (!bytes) return broken("missing or unreadable");
    std::string how = "chain whole";
    if (auto sidecar = readFileBytes(file + ".sha256")) {
      if (sidecar->substr(0, 64) != sha256Hex(*bytes)) {
        return broken("its SHA-256 is not the one in " + file + ".sha256 (it was changed)");
      }
      how += ", SHA-256 as in its .sha256";
    }
    FileWalk walk = walkSegmentBytes(*bytes, nullptr);
    if (!walk.ok) return broken(walk.problem);
    if (link && (walk.first_prev.seq != link->seq || walk.first_prev.hash != link->hash)) {
      return broken("does not follow the file before it (entry " + std::to_string(link->seq) + ")");
    }
    out.lines.push_back(file + ": ok, entries " + range(walk.first_prev.seq + 1, walk.last.seq) +
                        ", " + how);
    link = walk.last;
  }
  return out;
}

}  // namespace qiao
