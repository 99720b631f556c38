// Error codes, their wire names and Error/Result helpers (error.h); no thread affinity.
#include "common/error.h"

namespace presenced {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kBadRequest:
      return "bad_request";
    case ErrorCode::kUnauthorized:
      return "unauthorized";
    case ErrorCode::kForbidden:
      return "forbidden";
    case ErrorCode::kNotPresent:
      return "not_present";
    case ErrorCode::kTooLarge:
      return "too_large";
    case ErrorCode::kLimitExceeded:
      return "limit_exceeded";
    case ErrorCode::kRateLimited:
      return "rate_limited";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kMethodNotAllowed:
      return "method_not_allowed";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "internal";
}

}  // namespace presenced
