#include "base/crypto.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "base/handle.h"

namespace qiao {
namespace {

std::string toHex(const unsigned char* data, size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out += kHex[data[i] >> 4];
    out += kHex[data[i] & 0xF];
  }
  return out;
}

std::vector<unsigned char> randomBytes(size_t n) {
  std::vector<unsigned char> buf(n);
  // Failing to get randomness is not recoverable: ids and keys would repeat.
  if (n > 0 && RAND_bytes(buf.data(), static_cast<int>(n)) != 1) std::abort();
  return buf;
}

}  // namespace

struct Sha256::State {
  CPtr<EVP_MD_CTX, EVP_MD_CTX_free> ctx{EVP_MD_CTX_new()};
};

Sha256::Sha256() : state_(std::make_unique<State>()) {
  if (!state_->ctx || EVP_DigestInit_ex(state_->ctx.get(), EVP_sha256(), nullptr) != 1) {
    std::abort();
  }
}

Sha256::~Sha256() = default;

void Sha256::update(std::string_view data) {
  EVP_DigestUpdate(state_->ctx.get(), data.data(), data.size());
}

std::string Sha256::finishHex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(state_->ctx.get(), digest, &len);
  return toHex(digest, len);
}

std::string sha256Hex(std::string_view data) {
  Sha256 sha;
  sha.update(data);
  return sha.finishHex();
}

std::string randomHex(size_t bytes) {
  auto buf = randomBytes(bytes);
  return toHex(buf.data(), buf.size());
}

std::string newUuid() {
  auto b = randomBytes(16);
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80);  // RFC 4122 variant
  std::string hex = toHex(b.data(), b.size());
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20, 12);
}

}  // namespace qiao
