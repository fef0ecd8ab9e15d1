// LiveDisks: what the volume service needs of running VMs, without knowing the VM service: a
// grown volume told to the QEMU that has it open, and that QEMU's disk node for a live copy.
// node/vm's GuestMonitors is the implementation; NoLiveDisks serves a node without VMs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/error.h"
#include "node/state/store.h"

namespace qiao {

class QmpChannel;

// The running VM's QEMU that has a volume open and the raw node of its disk there; a null qmp
// when no running VM has it.
struct LiveDisk {
  std::shared_ptr<QmpChannel> qmp;
  std::string node;
};

class LiveDisks {
 public:
  virtual ~LiveDisks() = default;
  // A volume attached to a VM has grown: a running guest sees the new size at once.
  virtual Status growLive(const VolumeRecord& volume, int64_t size_bytes) = 0;
  // kConflict when a running VM has the volume in a way QMP cannot copy (a local file).
  virtual Result<LiveDisk> liveDiskOf(const VolumeRecord& volume) = 0;
};

// No VM runs here: nothing to tell, nobody has a disk open.
class NoLiveDisks final : public LiveDisks {
 public:
  Status growLive(const VolumeRecord&, int64_t) override { return {}; }
  Result<LiveDisk> liveDiskOf(const VolumeRecord&) override { return LiveDisk{}; }
};

}  // namespace qiao
