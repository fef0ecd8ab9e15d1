// RAII owners for C handles: CPtr<T, Deleter> for pointer handles (virDomainPtr, X509*, ...)
// and UniqueFd for file descriptors. Every C handle in Qiao has exactly one owner.
#pragma once

#include <unistd.h>

#include <memory>
#include <utility>

namespace qiao {

// CPtr<virDomain, virDomainFree>: a unique_ptr whose deleter is a C function.
// The deleter's return value (many C free functions return int) is ignored.
template <auto Fn>
struct CDeleter {
  template <typename T>
  void operator()(T* p) const {
    if (p != nullptr) (void)Fn(p);
  }
};
template <typename T, auto Fn>
using CPtr = std::unique_ptr<T, CDeleter<Fn>>;

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace qiao
