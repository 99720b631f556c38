// Error codes and Result<T>: how every presenced module reports a recoverable failure.
//
// The codes are the wire contract's error codes (docs/protocol.md); a module never invents a code
// that the protocol cannot name. Result<T> holds either a value or an Error and is a plain value
// type: no thread affinity, callers own what they receive.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace presenced {

enum class ErrorCode {
  kBadRequest,        // malformed input, unknown op, missing or mistyped field
  kUnauthorized,      // missing or invalid credentials
  kForbidden,         // credentials valid, but not for this channel or resource
  kNotPresent,        // update/leave without being present
  kTooLarge,          // frame, data or name over a size limit
  kLimitExceeded,     // a count limit (channels per connection, members per channel, watches)
  kRateLimited,       // too many requests
  kNotFound,          // unknown resource (REST route, resume key)
  kMethodNotAllowed,  // REST route exists, but not with this method
  kInternal,          // a bug or an unexpected environment failure
};

// The wire name of `code`, e.g. "not_present".
std::string_view ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;
};

inline Error MakeError(ErrorCode code, std::string message) {
  return Error{code, std::move(message)};
}

// Either a T or an Error. Check ok() before value().
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : state_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(state_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(state_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(state_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(state_);
  }

 private:
  std::variant<T, Error> state_;
};

// Success or an Error, for operations that return nothing.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT: implicit by design

  static Status Ok() { return Status(); }
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const {
    assert(failed_);
    return error_;
  }

 private:
  Error error_{ErrorCode::kInternal, {}};
  bool failed_ = false;
};

}  // namespace presenced
