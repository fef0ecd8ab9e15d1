// Revocations: the node and client certificates the cluster no longer accepts. Each is a record
// of the "revocations" table keyed by its serial; the CRL that lists them, signed by the cluster
// CA on a member that holds ca.key, is kept in the object "crl" (entry "pem"), and every member
// installs it as its pki crl.pem (watch/notify, and a periodic re-read), where the API server
// checks it at every TLS handshake. docs/operators/cluster.md "Removing a host".
//
// The "identities" table holds each node's current certificate (entry "node/NAME": its
// identity and serial), which is what removing the host revokes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "cluster/cluster_pool.h"
#include "cluster/record_table.h"
#include "storage/rados_cluster.h"

namespace qiao {

struct RevocationRecord {
  std::string serial;  // hex, as OpenSSL prints it
  std::string identity;
  std::string reason;
  int64_t at_unix = 0;
};

struct NodeCertRecord {
  std::string host, identity, serial;
};

class Revocations {
 public:
  Revocations(RadosCluster& rados, ClusterPool pool);

  // Adds the record (a serial revoked already keeps its first record).
  Status add(const RevocationRecord& record);
  Result<std::vector<RevocationRecord>> list();

  // The CRL as stored (nullopt before the first revocation) and the object's version.
  struct StoredCrl {
    std::optional<std::string> pem;
    uint64_t version = 0;
  };
  Result<StoredCrl> crl();
  // Replaces the stored CRL if it is still `previous` (kConflict otherwise: another member
  // published one meanwhile; sign again from the records), then tells the watchers.
  Status publishCrl(const std::string& pem, const std::optional<std::string>& previous);
  RadosObject crlObject() const { return pool_.object("crl"); }

  // A node's current certificate (written by whoever issued it, or the node itself).
  Status setNodeCert(const NodeCertRecord& record);
  Result<std::optional<NodeCertRecord>> nodeCert(const std::string& host);
  Status removeNodeCert(const std::string& host);

 private:
  RadosCluster& rados_;
  const ClusterPool pool_;
  RecordTable revoked_;
  RecordTable identities_;
};

}  // namespace qiao
