// Error: the one error type that crosses module boundaries in Qiao.
// Functions that can fail return Result<T> = std::expected<T, Error>.
// An Error carries a code (which maps to exactly one HTTP status at the API edge),
// the subsystem that raised it, a message an operator can act on, and optional
// structured details (a JSON object as text).
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace qiao {

enum class ErrorCode {
  kInvalidArgument,    // 400: the caller sent something malformed or out of range
  kUnauthenticated,    // 401: no usable client identity
  kPermissionDenied,   // 403: identity known, role does not allow it
  kNotFound,           // 404: no such object (or not visible to this tenant)
  kConflict,           // 409: the object's state forbids the operation
  kPayloadTooLarge,    // 413
  kResourceExhausted,  // 429: the caller is over a cap (parallel uploads); try again later
  kInsufficientStorage,  // 507: the host's disk would fall below its reserve
  kUnavailable,        // 503: a backend (libvirt, Ceph, OVS) cannot be reached now
  kTimeout,            // 504: a call that left the process did not answer in time
  kUnimplemented,      // 501: declared, not built yet (live migration before the cluster)
  kInternal,           // 500: a bug or a broken invariant
};

inline constexpr ErrorCode kAllErrorCodes[] = {
    ErrorCode::kInvalidArgument,   ErrorCode::kUnauthenticated,
    ErrorCode::kPermissionDenied,  ErrorCode::kNotFound,
    ErrorCode::kConflict,          ErrorCode::kPayloadTooLarge,
    ErrorCode::kResourceExhausted, ErrorCode::kInsufficientStorage,
    ErrorCode::kUnavailable,       ErrorCode::kTimeout,
    ErrorCode::kUnimplemented,     ErrorCode::kInternal};

std::string_view errorCodeName(ErrorCode code);  // "invalid_argument", ...
int httpStatus(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string subsystem;     // "api", "libvirt", "store", "config", ...
  std::string message;       // what happened and, where possible, what to do
  std::string details_json;  // optional JSON object, "" when none

  // "libvirt: domain acme.web1 not found"
  std::string describe() const;
};

template <typename T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

inline std::unexpected<Error> makeError(ErrorCode code, std::string subsystem, std::string message,
                                        std::string details_json = {}) {
  return std::unexpected<Error>(
      Error{code, std::move(subsystem), std::move(message), std::move(details_json)});
}

}  // namespace qiao
