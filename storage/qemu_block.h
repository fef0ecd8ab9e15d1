// How QEMU opens a volume: the block nodes of a DiskSource as blockdev-add arguments (QEMU's
// -blockdev JSON), one description for the VMs' disks, the NVRAM on RBD and the block jobs in
// a guest's QEMU or a qemu-storage-daemon. JSON, never text pasted together: nothing of a name
// reaches QEMU unquoted.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "storage/volume_driver.h"

namespace qiao {

// The id of the QEMU secret object holding the Ceph key (base64, from a file of qiaod's):
// every QEMU and qemu-storage-daemon that opens RBD volumes defines it under this id.
inline constexpr const char* kCephKeyId = "qiao-ceph-key";

// The protocol node: rbd (pool, namespace, image, cephx user, conf, key from kCephKeyId) or
// file. `read_only` for a source that must never be written.
nlohmann::json protocolNode(const DiskSource& source, const std::string& node_name,
                            bool read_only = false);
// The raw format node over `file_node`.
nlohmann::json rawNode(const std::string& node_name, const std::string& file_node,
                       bool read_only = false);

}  // namespace qiao
