#include "node/pki/cluster_crl.h"

#include <unistd.h>

#include <set>

#include "base/files.h"
#include "base/log.h"
#include "node/pki/pki.h"

namespace qiao {
namespace {

const Logger kLog("cluster");
constexpr int kPublishAttempts = 16;

std::string localCrl(const std::string& pki_dir) {
  auto bytes = readFileBytes(PkiPaths{pki_dir}.crl());
  return bytes ? *bytes : std::string();
}

}  // namespace

ClusterCrl::ClusterCrl(RadosCluster& rados, ClusterCrlOptions options, Clock& clock)
    : rados_(rados),
      options_(std::move(options)),
      clock_(clock),
      revocations_(rados, options_.pool) {}

ClusterCrl::~ClusterCrl() { stop(); }

void ClusterCrl::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void ClusterCrl::stop() {
  {
    std::lock_guard lock(wake_mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  watch_.reset();
}

bool ClusterCrl::canSign() const {
  return ::access(PkiPaths{options_.pki_dir}.caKey().c_str(), R_OK) == 0;
}

Status ClusterCrl::recordSelf() {
  auto serial = serialOfCertFile(PkiPaths{options_.pki_dir}.nodeCert());
  if (!serial) return std::unexpected(serial.error());
  return revocations_.setNodeCert({options_.host, options_.identity, *serial});
}

Result<bool> ClusterCrl::sync() {
  std::lock_guard lock(mutex_);
  if (canSign()) {
    const std::string local = localCrl(options_.pki_dir);
    auto listed = local.empty() ? Result<std::vector<Revoked>>{} : revokedInCrl(local);
    auto recorded = revocations_.list();
    if (!recorded) return std::unexpected(recorded.error());
    std::set<std::string> known;
    for (const auto& r : *recorded) known.insert(r.serial);
    bool added = false;
    for (const auto& r : listed ? *listed : std::vector<Revoked>{}) {
      if (known.count(r.serial)) continue;
      RevocationRecord record{r.serial, "", "in crl.pem of " + options_.host, r.at_unix};
      if (auto done = revocations_.add(record); !done) return std::unexpected(done.error());
      added = true;
    }
    if (added) {
      if (auto done = signAndPublish(); !done) return std::unexpected(done.error());
    }
  }
  auto stored = revocations_.crl();
  if (!stored) return std::unexpected(stored.error());
  if (!stored->pem || *stored->pem == localCrl(options_.pki_dir)) return false;
  if (auto installed = installCrl(options_.pki_dir, *stored->pem); !installed) {
    return std::unexpected(installed.error());
  }
  kLog.info("installed the cluster's revocation list", {{"crl", PkiPaths{options_.pki_dir}.crl()}});
  return true;
}

Status ClusterCrl::revoke(const RevocationRecord& record) {
  if (!canSign()) {
    return makeError(ErrorCode::kConflict, "cluster",
                     "this member (" + options_.host + ") cannot sign the revocation list: " +
                         PkiPaths{options_.pki_dir}.caKey() +
                         " is not here; send the call to a member that holds the cluster CA key "
                         "(docs/operators/cluster.md \"Removing a host\")");
  }
  std::lock_guard lock(mutex_);
  if (auto added = revocations_.add(record); !added) return added;
  if (auto done = signAndPublish(); !done) return done;
  kLog.info("revoked a certificate and published the revocation list",
            {{"serial", record.serial}, {"identity", record.identity}});
  return {};
}

Status ClusterCrl::signAndPublish() {
  for (int attempt = 0; attempt < kPublishAttempts; ++attempt) {
    auto stored = revocations_.crl();
    if (!stored) return std::unexpected(stored.error());
    auto all = revocations_.list();
    if (!all) return std::unexpected(all.error());
    std::vector<Revoked> revoked;
    for (const auto& r : *all) revoked.push_back({r.serial, r.at_unix});
    // Signed into crl.pem here first: this member refuses the certificate at once.
    if (auto written = writeCrl(options_.pki_dir, revoked); !written) return written;
    auto pem = readFileBytes(PkiPaths{options_.pki_dir}.crl());
    if (!pem) return std::unexpected(pem.error());
    auto published = revocations_.publishCrl(*pem, stored->pem);
    if (published) return {};
    if (published.error().code != ErrorCode::kConflict) return published;
  }
  return makeError(ErrorCode::kConflict, "cluster",
                   "the revocation list kept changing while it was signed; try again");
}

void ClusterCrl::run() {
  auto stopping = [this] {
    std::lock_guard lock(wake_mutex_);
    return stopping_;
  };
  while (!stopping()) {
    if (!self_recorded_) {
      if (auto done = recordSelf(); done) {
        self_recorded_ = true;
      } else {
        kLog.warn("cannot record this node's certificate in the cluster",
                  {{"error", done.error().describe()}});
      }
    }
    if (!watch_ || !watch_->check()) {
      watch_.reset();
      auto watch = rados_.watch(revocations_.crlObject(), [this](const WatchEvent&) {
        {
          std::lock_guard lock(wake_mutex_);
          poked_ = true;
        }
        wake_.notify_all();
      });
      if (watch) watch_ = std::move(*watch);
    }
    if (auto synced = sync(); !synced) {
      kLog.warn("cannot install the cluster's revocation list",
                {{"error", synced.error().describe()}});
    }
    std::unique_lock lock(wake_mutex_);
    wake_.wait_for(lock, options_.reread_every, [this] { return stopping_ || poked_; });
    poked_ = false;
  }
}

}  // namespace qiao
