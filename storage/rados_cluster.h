// RadosCluster: this process's one Ceph client, and what the cluster does with Ceph besides
// volumes: fencing a host by blocklisting its client's address, and leases as RADOS object
// locks (held for a duration the primary OSD's clock measures, renewed by the same client and
// cookie, broken by another client after it fenced the holder). The RBD driver uses the same
// connection. HOST-STACK.md ("Ceph as the cluster's coordinator") has the facts behind it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
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

// Objects with omap: how the cluster keeps its records. One write is atomic on its object:
// every guard is checked first, then every change is applied, or none is.
struct OmapGuard {
  std::string key;
  // The entry's value must equal this ("" = the key must be absent: stored values are never
  // empty).
  std::string value;
};

// An xattr holding a number (a leader's epoch), compared as a number.
struct EpochGuard {
  std::string xattr;  // say "epoch"
  uint64_t epoch = 0;
  // The write passes only when the object's number is at most `epoch` (a missing xattr is 0);
  // it then holds `epoch`. A writer whose epoch is older than the object's is refused.
};

struct OmapWrite {
  bool create = false;                     // the object must not exist yet
  bool must_exist = false;                 // the object must exist already
  std::optional<uint64_t> version;         // the object's version must be exactly this
  std::vector<OmapGuard> guards;           // each entry compared before the write
  std::optional<EpochGuard> epoch;         // checked, then stored
  std::map<std::string, std::string> set;  // entries written (values never empty)
  std::vector<std::string> remove;         // entries removed (absent ones ignored)
};

// A slice of an object's omap, in key order, and the object's version when it was read.
struct OmapPage {
  std::map<std::string, std::string> entries;
  uint64_t version = 0;
  bool more = false;  // entries after the last key remain
};

// What a watcher hears: a notify (with its payload), or that the watch broke and notifies may
// have been missed (re-read the object; the watch is re-established by the next watch()).
struct WatchEvent {
  enum class Kind { kNotify, kBroken } kind = Kind::kNotify;
  std::string payload;
};

// A watch on one object; destroying it unwatches.
class RadosWatch {
 public:
  virtual ~RadosWatch() = default;
  // OK while the watch is registered with the OSD; kUnavailable (or the error) when it broke.
  virtual Status check() = 0;
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

  // One atomic guarded write (see OmapWrite); returns the object's version after it.
  // kConflict naming the guard that failed (an entry changed, a newer epoch, the object
  // exists, another version), kNotFound when the object must exist and does not; nothing is
  // written then. kInvalidArgument for `create` with `must_exist` or `version` (never passes).
  virtual Result<uint64_t> omapWrite(const RadosObject& object, const OmapWrite& write) = 0;
  // Up to `max` entries with keys after `after` ("" = from the first) and starting with
  // `prefix`. kNotFound when the object does not exist.
  virtual Result<OmapPage> omapRead(const RadosObject& object, const std::string& after,
                                    const std::string& prefix, size_t max) = 0;
  // The given entries that exist, with the object's version. kNotFound when the object does not.
  virtual Result<OmapPage> omapGet(const RadosObject& object,
                                   const std::vector<std::string>& keys) = 0;
  // The object's number xattr (0 when missing), as an EpochGuard compares it.
  virtual Result<uint64_t> epochOf(const RadosObject& object, const std::string& xattr) = 0;
  // Removes the object (idempotent); its watches break.
  virtual Status removeObject(const RadosObject& object) = 0;
  // The names of the objects in the pool's namespace.
  virtual Result<std::vector<std::string>> listObjects(const std::string& pool,
                                                       const std::string& ns) = 0;
  // Watches the object (created empty when missing); `on_event` runs on a librados thread and
  // must not block long. A notify from this very watch's client is heard too. The watch breaks
  // when the object is removed or this client blocklisted. Do not destroy it from `on_event`.
  virtual Result<std::unique_ptr<RadosWatch>> watch(
      const RadosObject& object, std::function<void(const WatchEvent&)> on_event) = 0;
  // Tells every watcher of the object; returns once they acked or `timeout` passed (a watcher
  // that did not ack is not an error: it re-reads when its watch breaks). kNotFound when the
  // object does not exist (nobody watches it: a watch makes it).
  virtual Status notify(const RadosObject& object, const std::string& payload,
                        std::chrono::milliseconds timeout) = 0;
  // notify() that returns at once: what a writer does after its change, so that a watcher that
  // no longer answers (its host cut off, until the OSD drops its watch) never holds the writer
  // for the timeout. Errors are logged; a watcher that missed it re-reads when its watch breaks.
  // By default (test doubles) the notify itself.
  virtual void notifyInBackground(const RadosObject& object, const std::string& payload,
                                  std::chrono::milliseconds timeout);

  // cephx users, through the monitors ("auth get-or-create", "auth rm"): each host's own Ceph
  // identity, made when it joins and deleted when it is removed. `entity` is "client.NAME";
  // `caps` maps a daemon type ("mon", "osd", "mgr") to its cap text. Returns the user's key
  // (base64); an existing user keeps its key, and kConflict when its caps differ.
  virtual Result<std::string> authGetOrCreate(const std::string& entity,
                                              const std::map<std::string, std::string>& caps) = 0;
  // Deletes the user (idempotent).
  virtual Status authRemove(const std::string& entity) = 0;
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
  Result<uint64_t> omapWrite(const RadosObject& object, const OmapWrite& write) override;
  Result<OmapPage> omapRead(const RadosObject& object, const std::string& after,
                            const std::string& prefix, size_t max) override;
  Result<OmapPage> omapGet(const RadosObject& object,
                           const std::vector<std::string>& keys) override;
  Result<uint64_t> epochOf(const RadosObject& object, const std::string& xattr) override;
  Status removeObject(const RadosObject& object) override;
  Result<std::vector<std::string>> listObjects(const std::string& pool,
                                               const std::string& ns) override;
  Result<std::unique_ptr<RadosWatch>> watch(
      const RadosObject& object, std::function<void(const WatchEvent&)> on_event) override;
  Status notify(const RadosObject& object, const std::string& payload,
                std::chrono::milliseconds timeout) override;
  void notifyInBackground(const RadosObject& object, const std::string& payload,
                          std::chrono::milliseconds timeout) override;
  Result<std::string> authGetOrCreate(const std::string& entity,
                                      const std::map<std::string, std::string>& caps) override;
  Status authRemove(const std::string& entity) override;

  // For librados/librbd users of this folder: the connection (a rados_t), made when needed.
  Result<void*> handle();
  // This client's instance id (the N of client.N), for telling our own watches apart.
  Result<uint64_t> instanceId();
  const CephClientOptions& options() const { return options_; }

 private:
  struct Impl;
  CephClientOptions options_;
  std::shared_ptr<Impl> impl_;  // shared with this client's watches: they outlive it safely
};

// Ceph's error as ours: ENOENT kNotFound, EEXIST/EBUSY kConflict, ETIMEDOUT kTimeout,
// unreachable kUnavailable, EPERM/EACCES naming the cephx capabilities.
Error cephError(int rc, const std::string& what, const std::string& subsystem = "ceph");

}  // namespace qiao
