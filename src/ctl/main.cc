// presencectl: the operator CLI of presenced (docs/operations.md, "presencectl").
//
// It talks to a running server over the REST API with the API key, and for `watch` over one
// WebSocket with a token it mints through the API; it shares nothing with the server but
// presenced_common.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "ctl/commands.h"
#include "ctl/endpoint.h"

namespace presenced::ctl {
namespace {

constexpr const char* kDefaultUrl = "http://127.0.0.1:7070";

constexpr const char* kFooter = R"(Exit codes:
  0  ok
  1  the server replied with an error (printed as "error: CODE: message")
  2  usage error
  3  cannot connect, or the connection failed or timed out
  4  unauthorized: missing or wrong API key

Environment: PRESENCED_URL, PRESENCED_API_KEY, NO_COLOR (no colour).)";

// The first line of `path` without surrounding whitespace, or nullopt when unreadable.
std::optional<std::string> ReadKeyFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string key;
  std::getline(in, key);
  const auto first = key.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return std::string();
  const auto last = key.find_last_not_of(" \t\r\n");
  return key.substr(first, last - first + 1);
}

// Edit distance (insertions, deletions, substitutions) between two short words.
size_t Distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The first word that is neither an option nor an option's value, when it names no subcommand:
// "unknown subcommand X (did you mean Y?)" instead of CLI11's "A subcommand is required".
std::optional<std::string> UnknownSubcommand(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("-")) {
      const bool takes_value = arg == "--url" || arg == "--api-key" || arg == "--api-key-file";
      if (takes_value) ++i;
      continue;
    }
    std::string best;
    size_t best_distance = 3;  // suggest only close names
    for (const CLI::App* sc : app.get_subcommands([](const CLI::App*) { return true; })) {
      if (sc->get_name() == arg) return std::nullopt;
      const size_t d = Distance(arg, sc->get_name());
      if (d < best_distance) {
        best_distance = d;
        best = sc->get_name();
      }
    }
    std::string message = "unknown subcommand " + std::string(arg);
    if (!best.empty()) message += " (did you mean " + best + "?)";
    return message;
  }
  return std::nullopt;
}

template <typename T>
std::optional<T> IfGiven(const CLI::Option* option, const T& value) {
  return option->count() > 0 ? std::optional<T>(value) : std::nullopt;
}

int Main(int argc, char** argv) {
  CLI::App app{"presencectl: inspect and operate a running presenced over its REST API"};
  app.footer(kFooter);
  app.fallthrough();  // global options may also follow the subcommand
  app.require_subcommand(1);
  app.set_version_flag("--version", "presencectl " PRESENCECTL_VERSION);

  std::string url = kDefaultUrl;
  std::string api_key;
  std::string api_key_file;
  bool json = false;
  bool no_color = false;
  app.add_option("--url", url, "server base URL, http://HOST[:PORT][/PREFIX]")
      ->envname("PRESENCED_URL")
      ->capture_default_str();
  auto* key_option =
      app.add_option("--api-key", api_key, "REST API key (default: $PRESENCED_API_KEY)");
  auto* key_file_option =
      app.add_option("--api-key-file", api_key_file, "read the API key from FILE")
          ->check(CLI::ExistingFile);
  key_option->excludes(key_file_option);
  app.add_flag("--json", json, "print the server's JSON instead of a table (watch: one per line)");
  app.add_flag("--no-color", no_color, "no colour even on a terminal");

  // The chosen subcommand's callback sets `run`; it runs once the global options are known.
  std::function<ExitCode(const Context&)> run;

  std::string channel;
  auto* who = app.add_subcommand("who", "users who are not offline, with status and device");
  auto* who_channel = who->add_option("--channel", channel, "only users present in CHANNEL");
  who->callback(
      [&] { run = [&](const Context& c) { return Who(c, IfGiven(who_channel, channel)); }; });

  auto* status = app.add_subcommand("status", "get or set users' status");
  status->require_subcommand(1);
  std::vector<std::string> ids;
  auto* status_get = status->add_subcommand("get", "status, text, device and last seen of users");
  status_get->add_option("client_ids", ids, "clientIds")->required();
  status_get->callback([&] { run = [&](const Context& c) { return StatusGet(c, ids); }; });

  std::string client_id;
  std::string status_value;
  std::string text;
  auto* status_set = status->add_subcommand("set", "set a user's status (and text) by hand");
  status_set->add_option("client_id", client_id, "clientId")->required();
  status_set->add_option("status", status_value, "online, away, dnd or offline")->required();
  auto* text_option = status_set->add_option("--text", text, "status text");
  bool clear_text = false;
  text_option->excludes(status_set->add_flag("--clear-text", clear_text, "remove the status text"));
  status_set->callback([&] {
    run = [&](const Context& c) {
      return StatusSet(c, client_id, status_value, IfGiven(text_option, text), clear_text);
    };
  });

  auto* devices = app.add_subcommand("devices", "a user's connections (devices)");
  devices->add_option("client_id", client_id, "clientId")->required();
  devices->callback([&] { run = [&](const Context& c) { return Devices(c, client_id); }; });

  int64_t limit = 0;
  auto* activity = app.add_subcommand("activity", "a user's recent activity, newest first");
  activity->add_option("client_id", client_id, "clientId")->required();
  auto* activity_limit =
      activity->add_option("--limit", limit, "at most N records")->check(CLI::PositiveNumber);
  activity->callback([&] {
    run = [&](const Context& c) { return Activity(c, client_id, IfGiven(activity_limit, limit)); };
  });

  std::string direction;
  auto* history = app.add_subcommand("history", "a channel's presence events");
  history->add_option("channel", channel, "channel")->required();
  auto* history_limit =
      history->add_option("--limit", limit, "at most N events")->check(CLI::PositiveNumber);
  auto* history_direction =
      history->add_option("--direction", direction, "newest first or oldest first")
          ->check(CLI::IsMember({"backwards", "forwards"}));
  int64_t cursor = 0;
  auto* history_cursor =
      history->add_option("--cursor", cursor, "continue where an earlier page ended (its next)");
  history->callback([&] {
    run = [&](const Context& c) {
      return History(c, channel, IfGiven(history_limit, limit),
                     IfGiven(history_direction, direction), IfGiven(history_cursor, cursor));
    };
  });

  auto* occupancy = app.add_subcommand("occupancy", "how many members and clients a channel has");
  occupancy->add_option("channel", channel, "channel")->required();
  occupancy->callback([&] { run = [&](const Context& c) { return Occupancy(c, channel); }; });

  auto* channels = app.add_subcommand("channels", "channels with members, and their occupancy");
  channels->callback([&] { run = [&](const Context& c) { return Channels(c); }; });

  auto* presence = app.add_subcommand("presence", "the members of a channel");
  presence->add_option("channel", channel, "channel")->required();
  presence->callback([&] { run = [&](const Context& c) { return Presence(c, channel); }; });

  WatchOptions watch_options;
  auto* watch = app.add_subcommand(
      "watch", "live tail: one line per presence event and status change, until Ctrl-C");
  watch->add_option("--channel", watch_options.channels,
                    "a channel's presence events (repeatable)");
  watch->add_option("--user", watch_options.users, "a user's status changes (repeatable)");
  watch->add_option("--count", watch_options.count, "exit 0 after N events")
      ->check(CLI::PositiveNumber);
  watch->add_option("--as", watch_options.as,
                    "connect as this clientId (it appears online); default: an observer with the "
                    "API key, which nobody sees");
  watch->callback([&] { run = [&](const Context& c) { return Watch(c, watch_options); }; });

  TokenOptions token_options;
  std::vector<std::string> token_channels;
  int64_t ttl_ms = 0;
  auto* token = app.add_subcommand("token", "mint a WebSocket client token and print it");
  token->add_option("client_id", token_options.client_id, "clientId (the token's sub)")->required();
  auto* token_channels_option = token->add_option("--channels", token_channels,
                                                  "channel patterns (* = any run); default all");
  auto* token_ttl =
      token->add_option("--ttl-ms", ttl_ms, "lifetime in milliseconds")->check(CLI::PositiveNumber);
  token->callback([&] {
    token_options.channels = IfGiven(token_channels_option, token_channels);
    token_options.ttl_ms = IfGiven(token_ttl, ttl_ms);
    run = [&](const Context& c) { return Token(c, token_options); };
  });

  std::string command_text;
  auto* sessions = app.add_subcommand("sessions", "agent sessions: list, get, start, stop");
  sessions->require_subcommand(1);
  std::string conversation;
  sessions->add_subcommand("list", "every agent session")->callback([&] {
    run = [&](const Context& c) { return SessionsList(c); };
  });
  auto* session_get = sessions->add_subcommand("get", "one conversation's session");
  session_get->add_option("conversation_id", conversation, "conversationId")->required();
  session_get->callback(
      [&] { run = [&](const Context& c) { return SessionGet(c, conversation); }; });
  auto* session_start = sessions->add_subcommand("start", "start (or find) a session");
  session_start->add_option("conversation_id", conversation, "conversationId")->required();
  std::string session_request;
  int64_t inactivity_ms = 0;
  int64_t abandon_ms = 0;
  auto* request_option =
      session_start->add_option("--request", session_request, "JSON handed to the worker");
  auto* inactivity_option = session_start->add_option("--inactivity-ms", inactivity_ms,
                                                      "stop after this long without activity");
  auto* abandon_option = session_start->add_option(
      "--abandon-ms", abandon_ms, "stop after this long with nobody but the agent");
  session_start->callback([&] {
    run = [&](const Context& c) {
      return SessionStart(c, conversation,
                          SessionStartOptions{IfGiven(request_option, session_request),
                                              IfGiven(inactivity_option, inactivity_ms),
                                              IfGiven(abandon_option, abandon_ms)});
    };
  });
  auto* session_stop = sessions->add_subcommand("stop", "stop a session (nothing when none runs)");
  session_stop->add_option("conversation_id", conversation, "conversationId")->required();
  session_stop->callback(
      [&] { run = [&](const Context& c) { return SessionStop(c, conversation); }; });

  auto* command = app.add_subcommand("command", "run a chat command, e.g. \"/presence who\"");
  command->add_option("text", command_text, "the command line")->required();
  command->add_option("--as", client_id, "clientId the command runs as")->required();
  command->callback(
      [&] { run = [&](const Context& c) { return Command(c, client_id, command_text); }; });

  if (auto unknown = UnknownSubcommand(app, argc, argv)) {
    std::cerr << "error: " << *unknown << "\nRun with --help for more information.\n";
    return static_cast<int>(ExitCode::kUsage);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are successes; every other parse error is a usage error.
    return app.exit(e) == 0 ? 0 : static_cast<int>(ExitCode::kUsage);
  }

  if (key_file_option->count() > 0) {
    auto key = ReadKeyFile(api_key_file);
    if (!key) {
      std::cerr << "error: cannot read " << api_key_file << '\n';
      return static_cast<int>(ExitCode::kUsage);
    }
    api_key = *key;
  } else if (key_option->count() == 0) {
    if (const char* env = std::getenv("PRESENCED_API_KEY")) api_key = env;
  }
  auto endpoint = ParseEndpoint(url);
  if (!endpoint.ok()) {
    std::cerr << "error: " << endpoint.error().message << '\n';
    return static_cast<int>(ExitCode::kUsage);
  }
  const bool color =
      !no_color && !json && ::isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr;
  SystemClock clock;
  const ApiClient api(std::move(endpoint).value(), api_key);
  const Context context{api, json, Style(color), clock};
  return static_cast<int>(run(context));
}

}  // namespace
}  // namespace presenced::ctl

int main(int argc, char** argv) { return presenced::ctl::Main(argc, argv); }
