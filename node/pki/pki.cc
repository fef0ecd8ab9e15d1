#include "node/pki/pki.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "base/clock.h"
#include "base/files.h"
#include "base/handle.h"
#include "base/names.h"

namespace qiao {
namespace {

using KeyPtr = CPtr<EVP_PKEY, EVP_PKEY_free>;
using CertPtr = CPtr<X509, X509_free>;
using BioPtr = CPtr<BIO, BIO_free>;

std::unexpected<Error> pkiError(ErrorCode code, const std::string& message) {
  return makeError(code, "pki", message);
}

std::string opensslError() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

// writeFileAtomic, refusing to replace a file unless asked to.
Status writeFile(const std::string& path, const std::string& data, mode_t mode, bool overwrite) {
  if (!overwrite && std::filesystem::exists(path)) {
    return pkiError(ErrorCode::kConflict, path + " exists; pass --force to replace it");
  }
  return writeFileAtomic(path, data, mode);
}

// readFileBytes, its error the PKI's.
Result<std::string> readFile(const std::string& path) {
  auto bytes = readFileBytes(path);
  if (!bytes) return pkiError(ErrorCode::kNotFound, bytes.error().message);
  return bytes;
}

Status makeDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return pkiError(ErrorCode::kInternal, "cannot create " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  return {};
}

Result<KeyPtr> newKey() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return pkiError(ErrorCode::kInternal, "key generation failed: " + opensslError());
  return key;
}

std::string pemOf(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string pemOf(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

struct San {
  std::vector<std::string> dns, ips, uris;
};

// Subject alternative names built as ASN.1 values, never through OpenSSL's config syntax, so
// that no name can smuggle in another entry.
bool addSan(X509* cert, const San& san) {
  GENERAL_NAMES* names = sk_GENERAL_NAME_new_null();
  auto push = [&](int type, ASN1_STRING* value) {
    GENERAL_NAME* gn = GENERAL_NAME_new();
    GENERAL_NAME_set0_value(gn, type, value);
    sk_GENERAL_NAME_push(names, gn);
  };
  for (const auto& d : san.dns) {
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    ASN1_STRING_set(s, d.data(), static_cast<int>(d.size()));
    push(GEN_DNS, s);
  }
  for (const auto& ip : san.ips) {
    unsigned char buf[16];
    int len = 0;
    if (inet_pton(AF_INET, ip.c_str(), buf) == 1) len = 4;
    else if (inet_pton(AF_INET6, ip.c_str(), buf) == 1) len = 16;
    if (len == 0) continue;
    ASN1_OCTET_STRING* s = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(s, buf, len);
    push(GEN_IPADD, s);
  }
  for (const auto& u : san.uris) {
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    ASN1_STRING_set(s, u.data(), static_cast<int>(u.size()));
    push(GEN_URI, s);
  }
  int ok = X509_add1_ext_i2d(cert, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT);
  GENERAL_NAMES_free(names);
  return ok == 1;
}

bool addExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return false;
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1;
}

struct CertRequest {
  std::string common_name;
  EVP_PKEY* subject_key = nullptr;
  X509* issuer = nullptr;  // null: self-signed
  EVP_PKEY* issuer_key = nullptr;
  int64_t not_before = 0;
  int64_t not_after = 0;
  bool ca = false;
  bool server = false;
  San san;
};

Result<CertPtr> makeCert(const CertRequest& r) {
  CertPtr cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7F;  // positive
  CPtr<BIGNUM, BN_free> bn(BN_bin2bn(serial, sizeof serial, nullptr));
  BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get()));
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), static_cast<time_t>(r.not_before));
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(r.not_after));
  X509_set_pubkey(cert.get(), r.subject_key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("Qiao"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(r.common_name.c_str()), -1, -1,
                             0);
  X509* issuer = r.issuer ? r.issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer));
  bool ok = addExt(cert.get(), issuer, NID_subject_key_identifier, "hash");
  if (r.ca) {
    ok = ok && addExt(cert.get(), issuer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
         addExt(cert.get(), issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    ok = ok && addExt(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE") &&
         addExt(cert.get(), issuer, NID_authority_key_identifier, "keyid:always") &&
         addExt(cert.get(), issuer, NID_key_usage, "critical,digitalSignature") &&
         addExt(cert.get(), issuer, NID_ext_key_usage,
                r.server ? "serverAuth,clientAuth" : "clientAuth") &&
         addSan(cert.get(), r.san);
  }
  if (!ok) return pkiError(ErrorCode::kInternal, "cannot build certificate: " + opensslError());
  if (X509_sign(cert.get(), r.issuer_key ? r.issuer_key : r.subject_key, EVP_sha256()) == 0) {
    return pkiError(ErrorCode::kInternal, "cannot sign certificate: " + opensslError());
  }
  return cert;
}

Result<CertPtr> loadCert(const std::string& path) {
  auto pem = readFile(path);
  if (!pem) return std::unexpected(pem.error());
  BioPtr bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  CertPtr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return pkiError(ErrorCode::kInvalidArgument, path + " is not a PEM certificate");
  return cert;
}

Result<KeyPtr> loadKey(const std::string& path) {
  auto pem = readFile(path);
  if (!pem) return std::unexpected(pem.error());
  BioPtr bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return pkiError(ErrorCode::kInvalidArgument, path + " is not a PEM private key");
  return key;
}

bool isHostName(const std::string& h) {
  if (h.empty() || h.size() > 253) return false;
  size_t start = 0;
  while (start <= h.size()) {
    size_t dot = h.find('.', start);
    if (dot == std::string::npos) dot = h.size();
    if (!isDnsLabel(std::string_view(h).substr(start, dot - start))) return false;
    start = dot + 1;
  }
  return true;
}

using CsrPtr = CPtr<X509_REQ, X509_REQ_free>;

// A CSR whose self-signature verifies, with an EC key of at least 256 bits.
Result<CsrPtr> parseCsr(std::string_view csr_pem) {
  if (csr_pem.size() > 16384) {
    return pkiError(ErrorCode::kInvalidArgument, "the certificate request is too large");
  }
  BioPtr bio(BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size())));
  CsrPtr req(bio ? PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!req) {
    ERR_clear_error();
    return pkiError(ErrorCode::kInvalidArgument, "the certificate request is not a PEM CSR");
  }
  EVP_PKEY* subject_key = X509_REQ_get0_pubkey(req.get());
  if (subject_key == nullptr || X509_REQ_verify(req.get(), subject_key) != 1) {
    ERR_clear_error();
    return pkiError(ErrorCode::kInvalidArgument,
                    "the certificate request's signature does not verify with its key");
  }
  if (EVP_PKEY_get_base_id(subject_key) != EVP_PKEY_EC || EVP_PKEY_get_bits(subject_key) < 256) {
    return pkiError(ErrorCode::kInvalidArgument,
                    "the certificate request's key must be an EC key of 256 bits or more");
  }
  return req;
}

Status checkSanNames(const std::vector<std::string>& dns_names,
                     const std::vector<std::string>& ips) {
  for (const auto& d : dns_names) {
    if (!isHostName(d)) {
      return pkiError(ErrorCode::kInvalidArgument,
                      "DNS name " + quoteForMessage(d) + " is not a host name");
    }
  }
  for (const auto& ip : ips) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, ip.c_str(), buf) != 1 && inet_pton(AF_INET6, ip.c_str(), buf) != 1) {
      return pkiError(ErrorCode::kInvalidArgument,
                      "IP address " + quoteForMessage(ip) + " is not an IPv4 or IPv6 address");
    }
  }
  return {};
}

}  // namespace

Status initPki(const InitOptions& o) {
  if (auto ok = checkDnsLabel("cluster", o.cluster); !ok) return ok;
  if (o.dir.empty()) return pkiError(ErrorCode::kInvalidArgument, "--dir is required");
  std::string host = o.hostname;
  if (host.empty()) {
    char buf[256] = {};
    gethostname(buf, sizeof buf - 1);
    host = buf;
  }
  for (auto& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!isHostName(host)) {
    return pkiError(ErrorCode::kInvalidArgument,
                    "host name " + quoteForMessage(host) + " is not a DNS name; pass --hostname");
  }
  std::string short_host = host.substr(0, host.find('.'));
  PkiPaths paths{o.dir};
  if (std::filesystem::exists(paths.caCert()) && !o.force) {
    return pkiError(ErrorCode::kConflict,
                    "a cluster CA already exists in " + o.dir +
                        "; pass --force to replace it (every issued certificate stops working)");
  }
  if (auto ok = makeDir(o.dir); !ok) return ok;
  int64_t now = std::time(nullptr);
  auto ca_key = newKey();
  if (!ca_key) return std::unexpected(ca_key.error());
  CertRequest ca_req;
  ca_req.common_name = "Qiao cluster CA " + o.cluster;
  ca_req.subject_key = ca_key->get();
  ca_req.not_before = now - 300;
  ca_req.not_after = now + int64_t{o.ca_days} * 86400;
  ca_req.ca = true;
  auto ca = makeCert(ca_req);
  if (!ca) return std::unexpected(ca.error());

  auto node_key = newKey();
  if (!node_key) return std::unexpected(node_key.error());
  Identity node{o.cluster, IdentityKind::kNode, short_host};
  CertRequest node_req;
  node_req.common_name = host;
  node_req.subject_key = node_key->get();
  node_req.issuer = ca->get();
  node_req.issuer_key = ca_key->get();
  node_req.not_before = now - 300;
  node_req.not_after = now + int64_t{o.cert_days} * 86400;
  node_req.server = true;
  node_req.san.dns = {host, "localhost"};
  if (short_host != host) node_req.san.dns.push_back(short_host);
  node_req.san.ips = {"127.0.0.1", "::1"};
  node_req.san.uris = {node.uri()};
  auto node_cert = makeCert(node_req);
  if (!node_cert) return std::unexpected(node_cert.error());

  for (auto [path, data, mode] :
       {std::tuple{paths.caKey(), pemOf(ca_key->get()), mode_t{0600}},
        std::tuple{paths.caCert(), pemOf(ca->get()), mode_t{0644}},
        std::tuple{paths.nodeKey(), pemOf(node_key->get()), mode_t{0600}},
        std::tuple{paths.nodeCert(), pemOf(node_cert->get()), mode_t{0644}},
        std::tuple{paths.clusterFile(), o.cluster + "\n", mode_t{0644}}}) {
    if (auto ok = writeFile(path, data, mode, /*overwrite=*/true); !ok) return ok;
  }
  return writeCrl(o.dir, {});  // none revoked yet
}

Status writeCrl(const std::string& pki_dir, const std::vector<Revoked>& revoked) {
  PkiPaths paths{pki_dir};
  auto ca = loadCert(paths.caCert());
  if (!ca) return std::unexpected(ca.error());
  auto ca_key = loadKey(paths.caKey());
  if (!ca_key) return std::unexpected(ca_key.error());
  CPtr<X509_CRL, X509_CRL_free> crl(X509_CRL_new());
  X509_CRL_set_version(crl.get(), 1);  // v2
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca->get()));
  const time_t now = std::time(nullptr);
  CPtr<ASN1_TIME, ASN1_TIME_free> last(ASN1_TIME_set(nullptr, now - 300));
  CPtr<ASN1_TIME, ASN1_TIME_free> next(ASN1_TIME_set(nullptr, now + time_t{3650} * 86400));
  X509_CRL_set1_lastUpdate(crl.get(), last.get());
  X509_CRL_set1_nextUpdate(crl.get(), next.get());
  for (const auto& r : revoked) {
    BIGNUM* raw = nullptr;
    if (BN_hex2bn(&raw, r.serial.c_str()) == 0) {
      return pkiError(ErrorCode::kInvalidArgument, "not a serial: " + quoteForMessage(r.serial));
    }
    CPtr<BIGNUM, BN_free> bn(raw);
    CPtr<ASN1_INTEGER, ASN1_INTEGER_free> serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
    CPtr<ASN1_TIME, ASN1_TIME_free> when(ASN1_TIME_set(nullptr, static_cast<time_t>(r.at_unix)));
    X509_REVOKED* entry = X509_REVOKED_new();
    X509_REVOKED_set_serialNumber(entry, serial.get());
    X509_REVOKED_set_revocationDate(entry, when.get());
    X509_CRL_add0_revoked(crl.get(), entry);  // the CRL owns it now
  }
  X509_CRL_sort(crl.get());
  if (X509_CRL_sign(crl.get(), ca_key->get(), EVP_sha256()) == 0) {
    return pkiError(ErrorCode::kInternal, "cannot sign the CRL: " + opensslError());
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_CRL(bio.get(), crl.get());
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return writeFile(paths.crl(), std::string(data, static_cast<size_t>(len)), 0644,
                   /*overwrite=*/true);
}

Status installCrl(const std::string& pki_dir, const std::string& pem) {
  PkiPaths paths{pki_dir};
  auto ca = loadCert(paths.caCert());
  if (!ca) return std::unexpected(ca.error());
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  CPtr<X509_CRL, X509_CRL_free> crl(
      bio ? PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!crl) return pkiError(ErrorCode::kInvalidArgument, "the revocation list does not parse");
  EVP_PKEY* ca_public = X509_get0_pubkey(ca->get());
  if (ca_public == nullptr || X509_CRL_verify(crl.get(), ca_public) != 1) {
    ERR_clear_error();
    return pkiError(ErrorCode::kInvalidArgument,
                    "the revocation list is not signed by the CA of " + paths.caCert());
  }
  return writeFile(paths.crl(), pem, 0644, /*overwrite=*/true);
}

Result<std::vector<Revoked>> revokedInCrl(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  CPtr<X509_CRL, X509_CRL_free> crl(
      bio ? PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!crl) return pkiError(ErrorCode::kInvalidArgument, "the revocation list does not parse");
  std::vector<Revoked> out;
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
  for (int i = 0; i < sk_X509_REVOKED_num(revoked); ++i) {
    const X509_REVOKED* entry = sk_X509_REVOKED_value(revoked, i);
    CPtr<BIGNUM, BN_free> bn(ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(entry), nullptr));
    if (!bn) continue;
    char* hex = BN_bn2hex(bn.get());
    Revoked r;
    r.serial = hex != nullptr ? hex : "";
    OPENSSL_free(hex);
    struct tm when {};
    if (ASN1_TIME_to_tm(X509_REVOKED_get0_revocationDate(entry), &when) == 1) {
      r.at_unix = static_cast<int64_t>(timegm(&when));
    }
    if (!r.serial.empty()) out.push_back(std::move(r));
  }
  return out;
}

namespace {

Result<std::string> sha256OfCert(X509* cert, const std::string& what) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_digest(cert, EVP_sha256(), digest, &length) != 1) {
    return pkiError(ErrorCode::kInternal, "cannot digest " + what + ": " + opensslError());
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

}  // namespace

Result<std::string> certSha256(const std::string& cert_path) {
  auto cert = loadCert(cert_path);
  if (!cert) return std::unexpected(cert.error());
  return sha256OfCert(cert->get(), cert_path);
}

Result<std::string> certPemSha256(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  CertPtr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return pkiError(ErrorCode::kInvalidArgument, "not a PEM certificate");
  return sha256OfCert(cert.get(), "the certificate");
}

Result<std::string> serialOfCertFile(const std::string& cert_path) {
  auto cert = loadCert(cert_path);
  if (!cert) return std::unexpected(cert.error());
  return serialOfX509(cert->get());
}

std::string serialOfX509(const void* x509) {
  auto* cert = static_cast<X509*>(const_cast<void*>(x509));
  CPtr<BIGNUM, BN_free> bn(ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr));
  if (!bn) return {};
  char* hex = BN_bn2hex(bn.get());
  std::string out = hex != nullptr ? hex : "";
  OPENSSL_free(hex);
  return out;
}

Result<IssuedCert> issueCert(const IssueOptions& o) {
  if (auto ok = checkDnsLabel("cluster", o.identity.cluster); !ok) return std::unexpected(ok.error());
  if (auto ok = checkDnsLabel("name", o.identity.name); !ok) return std::unexpected(ok.error());
  PkiPaths paths{o.ca_dir};
  auto ca = loadCert(paths.caCert());
  if (!ca) return std::unexpected(ca.error());
  auto ca_key = loadKey(paths.caKey());
  if (!ca_key) return std::unexpected(ca_key.error());
  if (auto ok = makeDir(o.out_dir); !ok) return std::unexpected(ok.error());
  IssuedCert out;
  out.cert_path = o.out_dir + "/" + o.identity.name + ".crt";
  out.key_path = o.out_dir + "/" + o.identity.name + ".key";
  out.ca_path = paths.caCert();
  out.identity_uri = o.identity.uri();
  if (!o.force && std::filesystem::exists(out.key_path)) {
    return pkiError(ErrorCode::kConflict,
                    out.key_path + " exists; pass --force to replace it");
  }
  auto key = newKey();
  if (!key) return std::unexpected(key.error());
  int64_t now = std::time(nullptr);
  CertRequest req;
  req.common_name = o.identity.name;
  req.subject_key = key->get();
  req.issuer = ca->get();
  req.issuer_key = ca_key->get();
  req.not_before = o.not_before_unix.value_or(now - 300);
  req.not_after = o.not_after_unix.value_or(now + int64_t{o.days} * 86400);
  req.server = o.identity.kind == IdentityKind::kNode;
  req.san.uris = {out.identity_uri};
  if (!o.dns_names.empty() || !o.ips.empty()) {
    if (!req.server) {
      return pkiError(ErrorCode::kInvalidArgument,
                      "only a node's certificate carries DNS names and IP addresses");
    }
    if (auto ok = checkSanNames(o.dns_names, o.ips); !ok) return std::unexpected(ok.error());
    req.san.dns = o.dns_names;
    req.san.ips = o.ips;
  }
  auto cert = makeCert(req);
  if (!cert) return std::unexpected(cert.error());
  out.serial = serialOfX509(cert->get());
  out.not_after = utcText(std::chrono::system_clock::from_time_t(static_cast<time_t>(req.not_after)));
  if (auto ok = writeFile(out.key_path, pemOf(key->get()), 0600, true); !ok) {
    return std::unexpected(ok.error());
  }
  if (auto ok = writeFile(out.cert_path, pemOf(cert->get()), 0644, true); !ok) {
    return std::unexpected(ok.error());
  }
  return out;
}

Result<std::string> makeKeyAndCsr(const std::string& key_path, const std::string& common_name,
                                  bool overwrite) {
  if (auto ok = checkDnsLabel("name", common_name); !ok) return std::unexpected(ok.error());
  auto key = newKey();
  if (!key) return std::unexpected(key.error());
  CPtr<X509_REQ, X509_REQ_free> req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  if (X509_REQ_set_pubkey(req.get(), key->get()) != 1 ||
      X509_REQ_sign(req.get(), key->get(), EVP_sha256()) == 0) {
    return pkiError(ErrorCode::kInternal, "cannot sign the request: " + opensslError());
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req.get());
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  std::string pem(data, static_cast<size_t>(len));
  if (auto ok = writeFile(key_path, pemOf(key->get()), 0600, overwrite); !ok) {
    return std::unexpected(ok.error());
  }
  return pem;
}

Status checkCsr(std::string_view csr_pem) {
  auto req = parseCsr(csr_pem);
  if (!req) return std::unexpected(req.error());
  return {};
}

Result<SignedCert> signNodeCsr(const CsrSignOptions& o, std::string_view csr_pem) {
  if (o.identity.kind != IdentityKind::kNode) {
    return pkiError(ErrorCode::kInvalidArgument, "only a node's certificate is signed from a CSR");
  }
  if (auto ok = checkDnsLabel("cluster", o.identity.cluster); !ok) {
    return std::unexpected(ok.error());
  }
  if (auto ok = checkDnsLabel("name", o.identity.name); !ok) return std::unexpected(ok.error());
  if (auto ok = checkSanNames(o.dns_names, o.ips); !ok) return std::unexpected(ok.error());
  if (o.days < 1 || o.days > 3650) {
    return pkiError(ErrorCode::kInvalidArgument, "days must be 1 to 3650");
  }
  auto req = parseCsr(csr_pem);
  if (!req) return std::unexpected(req.error());
  EVP_PKEY* subject_key = X509_REQ_get0_pubkey(req->get());
  PkiPaths paths{o.ca_dir};
  auto ca = loadCert(paths.caCert());
  if (!ca) return std::unexpected(ca.error());
  auto ca_key = loadKey(paths.caKey());
  if (!ca_key) return std::unexpected(ca_key.error());
  const int64_t now = std::time(nullptr);
  CertRequest r;
  r.common_name = o.identity.name;
  r.subject_key = subject_key;
  r.issuer = ca->get();
  r.issuer_key = ca_key->get();
  r.not_before = now - 300;
  r.not_after = now + int64_t{o.days} * 86400;
  r.server = true;
  r.san.dns = o.dns_names;
  r.san.ips = o.ips;
  r.san.uris = {o.identity.uri()};
  auto cert = makeCert(r);
  if (!cert) return std::unexpected(cert.error());
  SignedCert out;
  out.pem = pemOf(cert->get());
  out.serial = serialOfX509(cert->get());
  out.not_after = utcText(std::chrono::system_clock::from_time_t(static_cast<time_t>(r.not_after)));
  out.identity_uri = o.identity.uri();
  return out;
}

Result<std::string> readClusterName(const std::string& pki_dir) {
  auto text = readFile(PkiPaths{pki_dir}.clusterFile());
  if (!text) {
    return pkiError(ErrorCode::kNotFound, "no cluster PKI in " + pki_dir + " (no cluster file)");
  }
  std::string name = *text;
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  if (auto ok = checkDnsLabel("cluster", name); !ok) return std::unexpected(ok.error());
  return name;
}

Result<std::string> identityUriOfX509(const void* x509) {
  auto* cert = static_cast<X509*>(const_cast<void*>(x509));
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) {
    return pkiError(ErrorCode::kUnauthenticated, "the certificate has no subject alternative names");
  }
  std::vector<std::string> uris;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type != GEN_URI) continue;
    const ASN1_IA5STRING* s = gn->d.uniformResourceIdentifier;
    std::string uri(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                    static_cast<size_t>(ASN1_STRING_length(s)));
    if (uri.starts_with("qiao://")) uris.push_back(uri);
  }
  GENERAL_NAMES_free(names);
  if (uris.size() != 1) {
    return pkiError(ErrorCode::kUnauthenticated,
                    uris.empty() ? "the certificate names no qiao:// identity"
                                 : "the certificate names several qiao:// identities");
  }
  return uris.front();
}

Result<std::string> identityUriOfCertPem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  CertPtr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return pkiError(ErrorCode::kInvalidArgument, "not a PEM certificate");
  return identityUriOfX509(cert.get());
}

}  // namespace qiao
