// Hashes and randomness for ids and the audit chain (OpenSSL underneath, in crypto.cc).
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace qiao {

// Lowercase hex SHA-256 of `data`.
std::string sha256Hex(std::string_view data);

// Incremental SHA-256, for streams.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  std::string finishHex();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// `bytes` random bytes from the OS's CSPRNG, as lowercase hex.
std::string randomHex(size_t bytes);

// A random (version 4) UUID, lowercase: "3f0c5b1e-8a2d-4c7e-9b1a-0d2e4f6a8c10".
std::string newUuid();

}  // namespace qiao
