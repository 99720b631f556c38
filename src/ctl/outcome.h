// Outcome: how a presencectl operation ended, as the process exit code and the line it prints to
// stderr after "error: ". A plain value type.
#pragma once

#include <string>
#include <utility>

namespace presenced::ctl {

// The process exit codes (also in `presencectl --help` and docs/operations.md).
enum class ExitCode : int {
  kOk = 0,
  kServerError = 1,   // the server replied with an error
  kUsage = 2,         // bad command line (CLI11's errors, a bad --url, an unreadable key file)
  kNetwork = 3,       // cannot connect, or the connection failed or timed out
  kUnauthorized = 4,  // HTTP 401: missing or wrong API key
};

struct Outcome {
  ExitCode code = ExitCode::kOk;
  std::string message;  // empty when ok

  static Outcome Ok() { return {}; }
  static Outcome Fail(ExitCode code, std::string message) { return {code, std::move(message)}; }
  bool ok() const { return code == ExitCode::kOk; }
};

}  // namespace presenced::ctl
