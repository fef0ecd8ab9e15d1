#include "node/audit/audit_service.h"

#include "base/log.h"

namespace qiao {
namespace {
const Logger kLog("audit");
}  // namespace

Result<AuditSegment> rotateWithinShipping(Store& store, const AuditServiceOptions& options,
                                          int64_t max_entries) {
  RotateOptions rotate{options.export_dir, max_entries, -1};
  if (options.syslog) {
    auto confirmed = store.audit().confirmed(options.syslog->destination);
    if (!confirmed) return std::unexpected(confirmed.error());
    rotate.up_to_seq = *confirmed;
  }
  return rotateAudit(store, rotate);
}

Result<std::unique_ptr<AuditService>> AuditService::create(Store& store,
                                                           AuditServiceOptions options) {
  std::unique_ptr<SyslogShipper> shipper;
  if (options.syslog) {
    auto made = SyslogShipper::create(store, *options.syslog);
    if (!made) return std::unexpected(made.error());
    shipper = std::move(*made);
  }
  return std::unique_ptr<AuditService>(
      new AuditService(store, std::move(options), std::move(shipper)));
}

AuditService::AuditService(Store& store, AuditServiceOptions options,
                           std::unique_ptr<SyslogShipper> shipper)
    : store_(store), options_(std::move(options)), shipper_(std::move(shipper)) {}

AuditService::~AuditService() { stop(); }

void AuditService::start() {
  thread_ = std::thread(withLogScope([this] { run(); }));
}

void AuditService::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  if (shipper_) shipper_->interrupt();
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AuditService::rotateIfDue() {
  if (options_.segment_entries <= 0) return;
  // One segment per pass; a backlog (a collector down for long) is worked off pass by pass.
  auto count = store_.audit().count();
  if (!count || *count <= options_.segment_entries) return;
  auto segment = rotateWithinShipping(store_, options_, options_.segment_entries);
  if (!segment) {
    kLog.error("cannot rotate the audit log", {{"error", segment.error().describe()}});
  } else if (segment->last_seq > 0) {
    kLog.info("audit segment exported", {{"file", segment->file},
                                         {"first", std::to_string(segment->first_seq)},
                                         {"last", std::to_string(segment->last_seq)}});
  }
}

void AuditService::run() {
  auto next_rotate = std::chrono::steady_clock::now();
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    auto wait = options_.rotate_check;
    if (shipper_) wait = std::min(wait, shipper_->step());
    if (std::chrono::steady_clock::now() >= next_rotate) {
      rotateIfDue();
      next_rotate = std::chrono::steady_clock::now() + options_.rotate_check;
    }
    lock.lock();
    wake_.wait_for(lock, wait, [this] { return stopping_; });
  }
}

}  // namespace qiao
