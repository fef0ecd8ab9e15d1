// Store: qiaod's durable state in SQLite (WAL, synchronous=FULL) under /var/lib/qiao/qiao.db.
// The Store owns the one connection, the schema and its migrations, and hands out one
// repository per kind of record: VMs, volumes, images, networks and their ports, security
// groups, tasks and the journal of their steps, the hash-chained audit log, identity bindings,
// certificates and quotas. A committed row survives a kill -9. Several processes may open the
// file at once (qiaod, and `qiaod pki issue` writing a binding): writes take the database lock
// up front (BEGIN IMMEDIATE) and wait for it up to 5 s.
// Thread-safe: one connection, one mutex (shared by the repositories); every call is short.
#pragma once

#include <memory>
#include <string>

#include "base/error.h"
#include "node/state/audit_repository.h"
#include "node/state/identity_repositories.h"
#include "node/state/image_repository.h"
#include "node/state/network_repository.h"
#include "node/state/records.h"
#include "node/state/security_group_repository.h"
#include "node/state/task_repository.h"
#include "node/state/vm_repository.h"
#include "node/state/volume_repository.h"

namespace qiao {

class Database;

class Store {
 public:
  // Opens (creating) the database at `path` and migrates it to this qiaod's schema.
  static Result<std::unique_ptr<Store>> open(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  VmRepository& vms() { return vms_; }
  VolumeRepository& volumes() { return volumes_; }
  ImageRepository& images() { return images_; }
  NetworkRepository& networks() { return networks_; }
  PortRepository& ports() { return ports_; }
  SecurityGroupRepository& groups() { return groups_; }
  TaskRepository& tasks() { return tasks_; }
  AuditRepository& audit() { return audit_; }
  BindingRepository& bindings() { return bindings_; }
  CertificateRepository& certificates() { return certificates_; }
  QuotaRepository& quotas() { return quotas_; }

 private:
  explicit Store(std::unique_ptr<Database> db);
  Status migrate(const std::string& path);

  std::unique_ptr<Database> db_;
  TaskRepository tasks_;
  VmRepository vms_;
  VolumeRepository volumes_;
  ImageRepository images_;
  NetworkRepository networks_;
  PortRepository ports_;
  SecurityGroupRepository groups_;
  AuditRepository audit_;
  BindingRepository bindings_;
  CertificateRepository certificates_;
  QuotaRepository quotas_;
};

}  // namespace qiao
