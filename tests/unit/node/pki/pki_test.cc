#include "node/pki/pki.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "node/pki/pki_cli.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// X509_verify_cert of `cert` against `ca`; returns the OpenSSL verify error (0 = ok).
int verify(const std::string& ca_path, const std::string& cert_path) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_load_file(store, ca_path.c_str());
  FILE* f = std::fopen(cert_path.c_str(), "r");
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, cert, nullptr);
  int ok = X509_verify_cert(ctx);
  int err = ok == 1 ? 0 : X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_free(cert);
  X509_STORE_free(store);
  return err;
}

class PkiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qiao-pki-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    ASSERT_TRUE(initPki({.cluster = "c1", .dir = (dir_ / "pki").string(), .hostname = "node1.example"}));
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string pki() const { return (dir_ / "pki").string(); }
  fs::path dir_;
};

TEST_F(PkiTest, InitWritesPrivateKeysAndTheNodeIdentity) {
  for (const char* key : {"ca.key", "node.key"}) {
    struct stat st {};
    ASSERT_EQ(stat((dir_ / "pki" / key).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << key;
  }
  EXPECT_EQ(*readClusterName(pki()), "c1");
  auto uri = identityUriOfCertPem(readAll(pki() + "/node.crt"));
  ASSERT_TRUE(uri.has_value());
  EXPECT_EQ(*uri, "qiao://c1/node/node1");
  EXPECT_EQ(verify(pki() + "/ca.crt", pki() + "/node.crt"), 0);
  auto again = initPki({.cluster = "c1", .dir = pki()});
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
}

TEST_F(PkiTest, IssuedCertificatesChainAndExpire) {
  IssueOptions o;
  o.ca_dir = pki();
  o.identity = *parseIdentityUri("qiao://c1/user/alice");
  o.out_dir = (dir_ / "out").string();
  auto issued = issueCert(o);
  ASSERT_TRUE(issued.has_value()) << issued.error().message;
  EXPECT_EQ(verify(pki() + "/ca.crt", issued->cert_path), 0);
  EXPECT_EQ(*identityUriOfCertPem(readAll(issued->cert_path)), "qiao://c1/user/alice");
  EXPECT_EQ(issueCert(o).error().code, ErrorCode::kConflict);  // no silent overwrite
  o.force = true;
  int64_t now = std::time(nullptr);
  o.not_before_unix = now - 864000;
  o.not_after_unix = now - 86400;
  auto expired = issueCert(o);
  ASSERT_TRUE(expired.has_value());
  EXPECT_EQ(verify(pki() + "/ca.crt", expired->cert_path), X509_V_ERR_CERT_HAS_EXPIRED);
  // Another CA's certificate does not chain.
  ASSERT_TRUE(initPki({.cluster = "c1", .dir = (dir_ / "other").string(), .hostname = "x"}));
  EXPECT_NE(verify((dir_ / "other" / "ca.crt").string(), issued->cert_path), 0);
}

// A node's certificate names the addresses its API answers on, so that a client (which checks
// the IP or name it connects to) accepts it there; no other kind carries addresses.
TEST_F(PkiTest, NodeCertificatesCarryTheirAddresses) {
  IssueOptions o;
  o.ca_dir = pki();
  o.identity = *parseIdentityUri("qiao://c1/node/h1");
  o.out_dir = (dir_ / "h1").string();
  o.ips = {"198.18.3.11", "127.0.0.1"};
  o.dns_names = {"h1.sim.example"};
  auto issued = issueCert(o);
  ASSERT_TRUE(issued.has_value()) << issued.error().message;
  EXPECT_EQ(verify(pki() + "/ca.crt", issued->cert_path), 0);
  EXPECT_EQ(*identityUriOfCertPem(readAll(issued->cert_path)), "qiao://c1/node/h1");
  FILE* f = std::fopen(issued->cert_path.c_str(), "r");
  ASSERT_NE(f, nullptr);
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(X509_check_ip_asc(cert, "198.18.3.11", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert, "198.18.3.12", 0), 0);
  EXPECT_EQ(X509_check_host(cert, "h1.sim.example", 0, 0, nullptr), 1);
  X509_free(cert);

  o.force = true;
  o.ips = {"198.18.3.11; DNS:evil"};
  o.dns_names = {};
  EXPECT_EQ(issueCert(o).error().code, ErrorCode::kInvalidArgument);
  o.ips = {};
  o.dns_names = {"not a name"};
  EXPECT_EQ(issueCert(o).error().code, ErrorCode::kInvalidArgument);
  o.dns_names = {};
  o.ips = {"10.0.0.1"};
  o.identity = *parseIdentityUri("qiao://c1/user/alice");
  EXPECT_EQ(issueCert(o).error().code, ErrorCode::kInvalidArgument) << "only nodes have addresses";
}

TEST_F(PkiTest, SignsANodeCsrWithTheIdentityAndAddressesItIsGiven) {
  const std::string key = (dir_ / "join" / "node.key").string();
  fs::create_directories(dir_ / "join");
  auto csr = makeKeyAndCsr(key, "h7", /*overwrite=*/false);
  ASSERT_TRUE(csr.has_value()) << csr.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(makeKeyAndCsr(key, "h7", false).error().code, ErrorCode::kConflict)
      << "an existing key is not replaced";

  CsrSignOptions o;
  o.ca_dir = pki();
  o.identity = *parseIdentityUri("qiao://c1/node/h7");
  o.ips = {"198.18.3.17", "127.0.0.1"};
  o.dns_names = {"h7.sim.example"};
  auto signed_cert = signNodeCsr(o, *csr);
  ASSERT_TRUE(signed_cert.has_value()) << signed_cert.error().message;
  EXPECT_EQ(signed_cert->identity_uri, "qiao://c1/node/h7");
  const std::string crt = (dir_ / "join" / "node.crt").string();
  { std::ofstream(crt) << signed_cert->pem; }
  EXPECT_EQ(verify(pki() + "/ca.crt", crt), 0);
  EXPECT_EQ(*identityUriOfCertPem(signed_cert->pem), "qiao://c1/node/h7");
  EXPECT_EQ(*serialOfCertFile(crt), signed_cert->serial);
  FILE* f = std::fopen(crt.c_str(), "r");
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(X509_check_ip_asc(cert, "198.18.3.17", 0), 1);
  EXPECT_EQ(X509_check_host(cert, "h7.sim.example", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_purpose(cert, X509_PURPOSE_SSL_SERVER, 0), 1);
  EXPECT_EQ(X509_check_purpose(cert, X509_PURPOSE_SSL_CLIENT, 0), 1);
  // The certificate's key is the joiner's: it matches node.key.
  FILE* kf = std::fopen(key.c_str(), "r");
  EVP_PKEY* pkey = PEM_read_PrivateKey(kf, nullptr, nullptr, nullptr);
  std::fclose(kf);
  ASSERT_NE(pkey, nullptr);
  EXPECT_EQ(X509_check_private_key(cert, pkey), 1);
  EVP_PKEY_free(pkey);
  X509_free(cert);

  // What the request asks for besides its key is not taken: the identity is the signer's.
  EXPECT_EQ(certPemSha256(signed_cert->pem)->size(), 64u);
  EXPECT_EQ(*certPemSha256(readAll(pki() + "/ca.crt")), *certSha256(pki() + "/ca.crt"));
}

TEST_F(PkiTest, RefusesCsrsThatDoNotVerifyAndNamesThatAreNotNames) {
  fs::create_directories(dir_ / "join");
  auto csr = makeKeyAndCsr((dir_ / "join" / "node.key").string(), "h7", false);
  ASSERT_TRUE(csr.has_value());
  CsrSignOptions o;
  o.ca_dir = pki();
  o.identity = *parseIdentityUri("qiao://c1/node/h7");
  EXPECT_EQ(signNodeCsr(o, "not a csr").error().code, ErrorCode::kInvalidArgument);
  // A request whose signature was tampered with (a byte of its base64 body changed).
  std::string tampered = *csr;
  size_t at = tampered.find('\n') + 40;
  tampered[at] = tampered[at] == 'A' ? 'B' : 'A';
  EXPECT_EQ(signNodeCsr(o, tampered).error().code, ErrorCode::kInvalidArgument);
  o.ips = {"198.18.3.17; DNS:evil"};
  EXPECT_EQ(signNodeCsr(o, *csr).error().code, ErrorCode::kInvalidArgument);
  o.ips = {};
  o.dns_names = {"not a name"};
  EXPECT_EQ(signNodeCsr(o, *csr).error().code, ErrorCode::kInvalidArgument);
  o.dns_names = {};
  o.identity = *parseIdentityUri("qiao://c1/user/alice");
  EXPECT_EQ(signNodeCsr(o, *csr).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(makeKeyAndCsr((dir_ / "join" / "x.key").string(), "bad/name", false).error().code,
            ErrorCode::kInvalidArgument);
}

TEST(Identity, ParsesStrictly) {
  auto id = parseIdentityUri("qiao://c1/installer/rack-7");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->kind, IdentityKind::kInstaller);
  EXPECT_EQ(id->uri(), "qiao://c1/installer/rack-7");
  for (const std::string& bad :
       {std::string("qiao://c/user/a/b"), std::string("qiao://C/user/a"),
        std::string("http://c/user/a"), std::string("qiao://c/root/a"),
        std::string("qiao://c/user/a\"b"), std::string(""), std::string("qiao://c/user/"),
        "qiao://c/user/" + std::string(300, 'a'), std::string("qiao://c/user/a?x=1")}) {
    EXPECT_FALSE(parseIdentityUri(bad).has_value()) << bad;
  }
}

// The node's records as the command line keeps them, in memory.
class FakePkiRecords final : public PkiRecords {
 public:
  Status bind(const Binding& b) override {
    bindings_[b.identity] = b;
    return {};
  }
  Result<Binding> binding(const std::string& uri) override {
    auto it = bindings_.find(uri);
    if (it == bindings_.end()) return makeError(ErrorCode::kNotFound, "store", "no binding");
    return it->second;
  }
  Status unbind(const std::string& uri) override {
    if (bindings_.erase(uri) == 0) return makeError(ErrorCode::kNotFound, "store", "no binding");
    return {};
  }
  Status recordCertificate(const CertificateRecord& c) override {
    certs_.push_back(c);
    return {};
  }
  Result<int> revoke(const std::string& serial, const std::string& uri,
                     const std::string& reason) override {
    int n = 0;
    for (auto& c : certs_) {
      if (c.revoked_at.empty() && ((!serial.empty() && c.serial == serial) ||
                                   (!uri.empty() && c.identity == uri))) {
        c.revoked_at = "2026-12-06T00:00:00Z";
        c.reason = reason;
        ++n;
      }
    }
    return n;
  }
  Result<std::vector<Binding>> bindings() override {
    std::vector<Binding> out;
    for (const auto& [k, b] : bindings_) out.push_back(b);
    return out;
  }
  Result<std::vector<CertificateRecord>> certificates() override { return certs_; }

  std::map<std::string, Binding> bindings_;
  std::vector<CertificateRecord> certs_;
};

TEST_F(PkiTest, CommandLineUsageAndBinding) {
  FakePkiRecords records;
  std::FILE* null = std::fopen("/dev/null", "w");
  auto run = [&](std::vector<std::string> args) { return pkiCommand(args, records, null, null); };
  EXPECT_EQ(run({}), 2);
  EXPECT_EQ(run({"frob"}), 2);
  EXPECT_EQ(run({"issue", "--kind", "user", "--name", "bob", "--dir", pki()}), 2);  // no role
  EXPECT_EQ(run({"issue", "--kind", "user", "--name", "bob", "--role", "operator", "--dir", pki()}), 2);
  EXPECT_EQ(run({"issue", "--kind", "user", "--name", "bob", "--role", "admin", "--tenant", "t",
                 "--dir", pki()}), 2);
  EXPECT_EQ(run({"issue", "--kind", "wizard", "--name", "bob", "--role", "admin", "--dir", pki()}), 2);
  EXPECT_EQ(run({"issue", "--kind", "user", "--name", "Bad Name", "--role", "admin"}), 2);
  EXPECT_EQ(run({"issue", "--help"}), 0);
  EXPECT_EQ(run({"issue", "--kind", "user", "--name", "bob", "--role", "admin", "--ip", "10.0.0.1",
                 "--dir", pki()}),
            2);  // addresses are for nodes
  EXPECT_EQ(run({"issue", "--kind", "user", "--name", "bob", "--role", "operator", "--tenant",
                 "fund-a", "--dir", pki(), "--out", (dir_ / "bob").string()}), 0);
  auto bob = records.binding("qiao://c1/user/bob");
  ASSERT_TRUE(bob.has_value());
  EXPECT_EQ(bob->role, "operator");
  EXPECT_EQ(bob->tenants, std::vector<std::string>{"fund-a"});
  ASSERT_EQ(records.certs_.size(), 1u);
  EXPECT_EQ(bob->serial, records.certs_[0].serial) << "bound to its certificate";
  EXPECT_EQ(run({"issue", "--kind", "node", "--name", "h2", "--ip", "10.0.0.2", "--ip", "::1",
                 "--dns", "h2.example", "--dir", pki(), "--out", (dir_ / "h2").string()}),
            0);
  EXPECT_TRUE(fs::exists(dir_ / "h2" / "h2.crt"));
  std::fclose(null);
}

// The serials a CRL file lists.
std::set<std::string> crlSerials(const std::string& file) {
  std::set<std::string> out;
  BIO* bio = BIO_new_file(file.c_str(), "r");
  if (bio == nullptr) return out;
  X509_CRL* crl = PEM_read_bio_X509_CRL(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (crl == nullptr) return out;
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl);
  for (int i = 0; i < sk_X509_REVOKED_num(revoked); ++i) {
    BIGNUM* bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, i)),
                                    nullptr);
    char* hex = BN_bn2hex(bn);
    out.insert(hex);
    OPENSSL_free(hex);
    BN_free(bn);
  }
  X509_CRL_free(crl);
  return out;
}

TEST_F(PkiTest, ReissuingSupersedesAndRevokingListsTheSerialInTheCrl) {
  FakePkiRecords records;
  std::FILE* null = std::fopen("/dev/null", "w");
  auto run = [&](std::vector<std::string> args) { return pkiCommand(args, records, null, null); };
  const std::string crl = pki() + "/crl.pem";
  ASSERT_TRUE(fs::exists(crl)) << "init writes an empty revocation list";
  EXPECT_TRUE(crlSerials(crl).empty());
  const std::vector<std::string> issue = {"issue", "--kind", "user", "--name", "carol", "--role",
                                          "viewer", "--tenant", "t", "--dir", pki(), "--out",
                                          (dir_ / "carol").string(), "--force"};
  ASSERT_EQ(run(issue), 0);
  const std::string first = records.certs_.at(0).serial;
  ASSERT_EQ(run(issue), 0);
  const std::string second = records.certs_.at(1).serial;
  EXPECT_NE(first, second);
  EXPECT_EQ(records.binding("qiao://c1/user/carol")->serial, second);
  EXPECT_EQ(crlSerials(crl), std::set<std::string>{first}) << "the superseded one is revoked";
  EXPECT_NE(records.certs_[0].reason.find("superseded by " + second), std::string::npos);
  // By serial, in lower case as a person may type it.
  std::string lower = second;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_EQ(run({"revoke", "--serial", lower, "--dir", pki()}), 0);
  EXPECT_EQ(crlSerials(crl), (std::set<std::string>{first, second}));
  EXPECT_EQ(run({"revoke", "--serial", second, "--dir", pki()}), 1) << "already revoked";
  EXPECT_EQ(run({"revoke", "--serial", "xyz", "--dir", pki()}), 2);
  EXPECT_EQ(run({"revoke", "--dir", pki()}), 2);
  EXPECT_EQ(run({"revoke", "--identity", "not-a-uri", "--dir", pki()}), 2);
  EXPECT_EQ(run({"unbind", "--identity", "qiao://c1/user/carol"}), 0);
  EXPECT_EQ(run({"unbind", "--identity", "qiao://c1/user/carol"}), 1);
  EXPECT_EQ(run({"list"}), 0);
  std::fclose(null);
}

}  // namespace
}  // namespace qiao
