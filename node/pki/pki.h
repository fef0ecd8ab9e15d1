// The cluster PKI: the cluster CA, each node's server certificate and the client certificates
// of users, peers, installers and nodes (EC P-256, SHA-256). Identities live in a URI SAN,
// qiao://<cluster>/<kind>/<name>. Keys are written 0600 from creation, atomically.
// No OpenSSL type appears here; pki.cc owns them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "node/pki/identity.h"

namespace qiao {

struct PkiPaths {
  std::string dir;
  std::string caCert() const { return dir + "/ca.crt"; }
  std::string caKey() const { return dir + "/ca.key"; }
  std::string nodeCert() const { return dir + "/node.crt"; }
  std::string nodeKey() const { return dir + "/node.key"; }
  std::string clusterFile() const { return dir + "/cluster"; }
  // The CA's revocation list (X.509 CRL), checked at every TLS handshake.
  std::string crl() const { return dir + "/crl.pem"; }
};

struct InitOptions {
  std::string cluster;
  std::string dir;
  std::string hostname;  // "" = this host's name
  int ca_days = 3650;
  int cert_days = 825;
  bool force = false;
};

// Makes the CA and this node's certificate. kConflict when a CA exists and !force.
Status initPki(const InitOptions& options);

struct IssueOptions {
  std::string ca_dir;
  Identity identity;
  std::string out_dir;
  int days = 365;
  std::optional<int64_t> not_before_unix;  // tests make expired certificates with these
  std::optional<int64_t> not_after_unix;
  bool force = false;  // overwrite existing files
  // Where a node answers (kind node only): DNS names and IP addresses its server certificate
  // carries besides its identity, so that clients can check it at those addresses.
  std::vector<std::string> dns_names;
  std::vector<std::string> ips;
};

struct IssuedCert {
  std::string cert_path, key_path, ca_path, identity_uri;
  std::string serial;     // hex
  std::string not_after;  // ISO 8601, UTC
};

Result<IssuedCert> issueCert(const IssueOptions& options);

// Writes the CA's CRL (crl.pem in the PKI directory, signed by ca.key, atomically) listing
// these serials (hex) as revoked at these times (Unix seconds). Valid for ten years: it is
// written anew at every revocation, not on a schedule.
struct Revoked {
  std::string serial;
  int64_t at_unix = 0;
};
Status writeCrl(const std::string& pki_dir, const std::vector<Revoked>& revoked);
// Replaces crl.pem in the PKI directory with `pem` (atomically) after checking that it is a
// CRL signed by this directory's CA (ca.crt): what a member installs from the cluster.
Status installCrl(const std::string& pki_dir, const std::string& pem);
// The serials (hex) a CRL in PEM lists, with their revocation times.
Result<std::vector<Revoked>> revokedInCrl(const std::string& pem);
// The SHA-256 (lowercase hex) of a certificate file's DER: the pin a join token carries.
Result<std::string> certSha256(const std::string& cert_path);
// The serial (hex) of a certificate file.
Result<std::string> serialOfCertFile(const std::string& cert_path);
// The serial of a certificate (X509*), in hex as OpenSSL prints it.
std::string serialOfX509(const void* x509);
Result<std::string> readClusterName(const std::string& pki_dir);
// The single qiao:// URI SAN of a certificate; an error when it has none or several.
Result<std::string> identityUriOfCertPem(std::string_view pem);
Result<std::string> identityUriOfX509(const void* x509 /* X509* */);

// Enrollment (`qiaod join`, POST /v1/cluster/join). The joiner makes its key (written 0600 from
// creation, atomically; kConflict when one exists and !overwrite) and a PKCS#10 request naming
// `common_name` (a DNS label); the request's PEM is returned.
Result<std::string> makeKeyAndCsr(const std::string& key_path, const std::string& common_name,
                                  bool overwrite);

struct CsrSignOptions {
  std::string ca_dir;                       // ca.crt and ca.key
  Identity identity;                        // a node's: qiao://<cluster>/node/<name>
  std::vector<std::string> dns_names, ips;  // where it answers (checked as issueCert does)
  int days = 825;
};
struct SignedCert {
  std::string pem, serial, not_after, identity_uri;
};
// Signs a CSR (PEM) as a node certificate for `identity`: only the request's public key is
// taken, once its self-signature verifies; its subject and the extensions it asks for are
// ignored (the identity and SANs are the signer's). kInvalidArgument for a request that does not
// parse or verify, or names that are not host names or addresses.
Result<SignedCert> signNodeCsr(const CsrSignOptions& options, std::string_view csr_pem);
// What signNodeCsr checks of the request itself (parses, signature, key), signing nothing.
Status checkCsr(std::string_view csr_pem);
// The SHA-256 (lowercase hex) of a PEM certificate's DER (certSha256 of text).
Result<std::string> certPemSha256(std::string_view pem);

}  // namespace qiao
