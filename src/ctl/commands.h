// The presencectl subcommands. Each calls the REST API (and, for Watch, one WebSocket), prints its
// result to stdout (a table or line for people; with `json`, the server's JSON as received),
// prints "error: ..." to stderr on failure, and returns the process exit code.
//
// Called from main's thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "ctl/api_client.h"
#include "ctl/format.h"

namespace presenced::ctl {

struct Context {
  const ApiClient& api;
  bool json = false;  // print the raw JSON result instead of a table
  Style style;        // colour, when stdout is a terminal
  const Clock& clock;
};

struct TokenOptions {
  std::string client_id;
  std::optional<std::vector<std::string>> channels;  // patterns; absent = all channels
  std::optional<int64_t> ttl_ms;                     // absent = the server's default
};

struct WatchOptions {
  std::vector<std::string> channels;
  std::vector<std::string> users;
  std::string as;      // the clientId the watcher connects as; empty: an observer (the API key)
  uint64_t count = 0;  // exit after this many events; 0 = until SIGINT/SIGTERM
};

ExitCode Who(const Context& ctx, const std::optional<std::string>& channel);
ExitCode StatusGet(const Context& ctx, const std::vector<std::string>& client_ids);
// `text`: set it; `clear_text`: set it to null; neither: leave it as it is.
ExitCode StatusSet(const Context& ctx, const std::string& client_id, const std::string& status,
                   const std::optional<std::string>& text, bool clear_text);
ExitCode Devices(const Context& ctx, const std::string& client_id);
ExitCode Activity(const Context& ctx, const std::string& client_id, std::optional<int64_t> limit);
// `cursor`: a `next` from an earlier page (printed on stderr when there may be more).
ExitCode History(const Context& ctx, const std::string& channel, std::optional<int64_t> limit,
                 const std::optional<std::string>& direction, std::optional<int64_t> cursor);
ExitCode Occupancy(const Context& ctx, const std::string& channel);
ExitCode Channels(const Context& ctx);
ExitCode Presence(const Context& ctx, const std::string& channel);
ExitCode Token(const Context& ctx, const TokenOptions& options);
ExitCode Command(const Context& ctx, const std::string& client_id, const std::string& text);
ExitCode Watch(const Context& ctx, const WatchOptions& options);

// Agent sessions (protocol-ext §3).
struct SessionStartOptions {
  std::optional<std::string> request;  // JSON text
  std::optional<int64_t> inactivity_ms;
  std::optional<int64_t> abandon_ms;
};
ExitCode SessionsList(const Context& ctx);
ExitCode SessionGet(const Context& ctx, const std::string& conversation_id);
ExitCode SessionStart(const Context& ctx, const std::string& conversation_id,
                      const SessionStartOptions& options);
ExitCode SessionStop(const Context& ctx, const std::string& conversation_id);

}  // namespace presenced::ctl
