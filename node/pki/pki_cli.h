// `qiaod pki init|issue|revoke|unbind|list`: the command line over pki.h. What it keeps in
// the node's store (bindings, the certificates issued and revoked) goes through PkiRecords,
// which qiaod implements on its store and tests with a double.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "base/error.h"
#include "node/pki/identity.h"
#include "node/state/store.h"

namespace qiao {

class PkiRecords {
 public:
  virtual ~PkiRecords() = default;
  virtual Status bind(const Binding& binding) = 0;
  virtual Result<Binding> binding(const std::string& identity_uri) = 0;
  virtual Status unbind(const std::string& identity_uri) = 0;  // kNotFound when not bound
  virtual Status recordCertificate(const CertificateRecord& cert) = 0;
  // How many certificates were revoked now (by serial, or every one of an identity).
  virtual Result<int> revoke(const std::string& serial, const std::string& identity_uri,
                             const std::string& reason) = 0;
  virtual Result<std::vector<Binding>> bindings() = 0;
  virtual Result<std::vector<CertificateRecord>> certificates() = 0;
};

// Exit codes: 0 ok, 1 failure, 2 usage error.
int pkiCommand(const std::vector<std::string>& args, PkiRecords& records, std::FILE* out,
               std::FILE* err);

}  // namespace qiao
