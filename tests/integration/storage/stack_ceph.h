// The Ceph of the test stack (scripts/ceph-stack: $QIAO_CEPH_DIR, default /var/lib/qiao-ceph)
// as client.qiao sees it, for the tests and benches that use librados directly.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>

#include "storage/rados_cluster.h"

namespace qiao::testing {

inline std::string stackCephDir() {
  const char* dir = std::getenv("QIAO_CEPH_DIR");
  return dir ? dir : "/var/lib/qiao-ceph";
}

// A new client (each is its own Ceph client, with its own address, as each qiaod is).
inline std::unique_ptr<LibradosCluster> stackCephClient() {
  CephClientOptions options;
  options.conf = stackCephDir() + "/ceph.conf";
  options.keyring = stackCephDir() + "/client.qiao.keyring";
  options.op_timeout_s = 20;
  return std::make_unique<LibradosCluster>(options);
}

}  // namespace qiao::testing
