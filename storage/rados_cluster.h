// RadosCluster: this process's one Ceph client, and what the cluster does with Ceph besides
// volumes: fencing a host by blocklisting its client's address, and leases as RADOS object
// locks (held for a duration the primary OSD's clock measures, renewed by the same client and
// cookie, broken by another client after it fenced the holder). The RBD driver uses the same
// connection. HOST-STACK.md ("Ceph as the cluster's coordinator") has the facts behind it.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"

namespace qiao {

struct CephClientOptions {
  std::string conf;           // ceph.conf (monitors; the keyring it names holds the user's key)
  std::string user = "qiao";  // cephx user, without "client."
  std::string keyring;        // optional: overrides the conf's keyring
  int op_timeout_s = 30;      // monitor and OSD operations
  // Where the client's address is kept. At connect, the client of the previous run (a process
  // that was killed) is blocklisted for an hour: its watches would otherwise hold what it had
  // open for half a minute. Empty: no fencing.
  std::string instance_file;
};

// A RADOS object: pool, namespace ("" = the default one), name.
struct RadosObject {
  std::string pool, ns, name;
  std::string describe() const;
};

// Who holds a lock: the client ("client.4123"), its cookie and its address as OSDs see it.
struct LockHolder {
  std::string client, cookie, address;
};

struct BlocklistEntry {
  std::string address;  // "IP:0/NONCE" (one client) or "IP:0/0" (every client of the IP)
  std::string until;    // as the monitors say it
};

class RadosCluster {
 public:
  virtual ~RadosCluster() = default;
  // Connects when not yet connected; kUnavailable when Ceph cannot be reached.
  virtual Status ping() = 0;
  // This client's address ("IP:0/NONCE"): what another host blocklists to fence this one.
  virtual Result<std::string> clientAddress() = 0;
  // The address's ops are refused by every OSD from the map epoch holding the entry on; when
  // this returns, a client connecting later can no longer be overtaken by the fenced one.
  virtual Status blocklistAdd(const std::string& address, std::chrono::seconds expire) = 0;
  // kNotFound when the address is not blocklisted.
  virtual Status blocklistRemove(const std::string& address) = 0;
  virtual Result<std::vector<BlocklistEntry>> blocklist() = 0;

  // Takes an exclusive lock on the object (made empty when missing) for `duration` (0: until
  // unlocked), or renews it when this client holds it with this cookie. kConflict naming the
  // holder when another does.
  virtual Status lock(const RadosObject& object, const std::string& lock_name,
                      const std::string& cookie, const std::string& description,
                      std::chrono::seconds duration) = 0;
  // kNotFound when this client does not hold it with this cookie.
  virtual Status unlock(const RadosObject& object, const std::string& lock_name,
                        const std::string& cookie) = 0;
  // Removes another client's lock (fence it first: a live holder would go on writing).
  virtual Status breakLock(const RadosObject& object, const std::string& lock_name,
                           const LockHolder& holder) = 0;
  // The holders of a lock that has not expired (none, or one for an exclusive lock).
  virtual Result<std::vector<LockHolder>> lockers(const RadosObject& object,
                                                  const std::string& lock_name) = 0;
};

// The real one, over librados. The connection is made on first use and kept; a failed attempt
// is retried on the next call (Ceph may come up after qiaod).
class LibradosCluster final : public RadosCluster {
 public:
  explicit LibradosCluster(CephClientOptions options);
  ~LibradosCluster() override;
  LibradosCluster(const LibradosCluster&) = delete;
  LibradosCluster& operator=(const LibradosCluster&) = delete;

  Status ping() override;
  Result<std::string> clientAddress() override;
  Status blocklistAdd(const std::string& address, std::chrono::seconds expire) override;
  Status blocklistRemove(const std::string& address) override;
  Result<std::vector<BlocklistEntry>> blocklist() override;
  Status lock(const RadosObject& object, const std::string& lock_name, const std::string& cookie,
              const std::string& description, std::chrono::seconds duration) override;
  Status unlock(const RadosObject& object, const std::string& lock_name,
                const std::string& cookie) override;
  Status breakLock(const RadosObject& object, const std::string& lock_name,
                   const LockHolder& holder) override;
  Result<std::vector<LockHolder>> lockers(const RadosObject& object,
                                          const std::string& lock_name) override;

  // For librados/librbd users of this folder: the connection (a rados_t), made when needed.
  Result<void*> handle();
  // This client's instance id (the N of client.N), for telling our own watches apart.
  Result<uint64_t> instanceId();
  const CephClientOptions& options() const { return options_; }

 private:
  struct Impl;
  CephClientOptions options_;
  std::unique_ptr<Impl> impl_;
};

// Ceph's error as ours: ENOENT kNotFound, EEXIST/EBUSY kConflict, ETIMEDOUT kTimeout,
// unreachable kUnavailable, EPERM/EACCES naming the cephx capabilities.
Error cephError(int rc, const std::string& what, const std::string& subsystem = "ceph");

}  // namespace qiao
