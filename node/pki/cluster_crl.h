// ClusterCrl: the cluster's revocation list on this member. Revoking (removing a host) records
// the serial in the cluster's "revocations" table, signs a CRL of every recorded serial with the
// cluster CA key and publishes it in RADOS (cluster/revocations.h); only a member whose pki
// directory holds ca.key can sign. Every member installs the published CRL as its crl.pem when
// it changes (told by watch/notify, and re-read every few seconds whatever it heard), and the API
// server checks crl.pem at every TLS handshake: a revoked certificate is refused by every member.
// At start the member also records its own node certificate's serial in the cluster (what
// removing the host revokes). docs/operators/cluster.md "Removing a host".
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/clock.h"
#include "base/error.h"
#include "cluster/cluster_pool.h"
#include "cluster/revocations.h"
#include "storage/rados_cluster.h"

namespace qiao {

struct ClusterCrlOptions {
  ClusterPool pool;
  std::string pki_dir;   // ca.crt, node.crt, crl.pem (and ca.key on a member that signs)
  std::string host;      // this member's name
  std::string identity;  // its node identity URI
  std::chrono::milliseconds reread_every{5000};
};

class ClusterCrl {
 public:
  ClusterCrl(RadosCluster& rados, ClusterCrlOptions options, Clock& clock);
  ~ClusterCrl();
  ClusterCrl(const ClusterCrl&) = delete;
  ClusterCrl& operator=(const ClusterCrl&) = delete;

  // Starts the thread: records this node's certificate, watches and re-reads the CRL.
  void start();
  void stop();  // idempotent

  // One round: installs the published CRL when it differs from crl.pem; whether it did. On a
  // member that can sign, a serial its crl.pem lists (`qiaod pki revoke` there) and the
  // cluster's list lacks is first added to the cluster's list and a new CRL published: the
  // cluster's CRL never drops a revocation made on a CA member.
  Result<bool> sync();
  // Records this node's certificate (node.crt's serial) as its current one in the cluster.
  Status recordSelf();
  // Whether this member can sign a CRL (its pki directory holds ca.key).
  bool canSign() const;
  // Records the revocation, signs the CRL of every recorded serial, publishes and installs it.
  // kConflict naming what to do when this member cannot sign.
  Status revoke(const RevocationRecord& record);

  Revocations& revocations() { return revocations_; }

 private:
  void run();
  // mutex_ held: signs the CRL of every recorded serial and publishes it (retried over
  // concurrent publications).
  Status signAndPublish();

  RadosCluster& rados_;
  const ClusterCrlOptions options_;
  Clock& clock_;
  Revocations revocations_;
  std::mutex mutex_;  // one sync or revoke at a time
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool poked_ = false;
  bool self_recorded_ = false;
  std::unique_ptr<RadosWatch> watch_;
  std::thread thread_;
};

}  // namespace qiao
