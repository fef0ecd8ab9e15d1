// AuditService: the audit log's upkeep in the daemon, on one thread of its own: ships new
// entries to the syslog collector when one is configured, and closes a segment (exports it and
// removes it from the database) whenever the database holds more than segment_entries, never
// past what the collector confirmed.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "base/error.h"
#include "node/audit/audit_segments.h"
#include "node/audit/syslog.h"
#include "node/state/store.h"

namespace qiao {

struct AuditServiceOptions {
  std::string export_dir;
  int64_t segment_entries = 50000;  // 0: no rotation by the daemon
  std::chrono::milliseconds rotate_check{60000};
  std::optional<ShipperOptions> syslog;  // nullopt: not shipped
};

// The rotation both the daemon and `qiaod audit rotate` do: at most max_entries from the
// checkpoint, never past what the configured syslog destination confirmed.
Result<AuditSegment> rotateWithinShipping(Store& store, const AuditServiceOptions& options,
                                          int64_t max_entries);

class AuditService {
 public:
  // Fails on a syslog destination or TLS file that cannot be used.
  static Result<std::unique_ptr<AuditService>> create(Store& store, AuditServiceOptions options);
  ~AuditService();  // stops
  void start();
  void stop();

 private:
  AuditService(Store& store, AuditServiceOptions options, std::unique_ptr<SyslogShipper> shipper);
  void run();
  void rotateIfDue();

  Store& store_;
  AuditServiceOptions options_;
  std::unique_ptr<SyslogShipper> shipper_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace qiao
