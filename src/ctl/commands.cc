// presencectl's subcommands (commands.h); main's thread only.
#include "ctl/commands.h"

#include <boost/json.hpp>
#include <iostream>

#include "ctl/watch.h"

namespace presenced::ctl {
namespace {

namespace json = boost::json;

// A token for `watch` only needs to outlive the upgrade.
constexpr int64_t kWatchTokenTtlMs = 60'000;

ExitCode Fail(const Outcome& outcome) {
  std::cerr << "error: " << outcome.message << '\n';
  return outcome.code;
}

// The reply's body as received, on one line.
void PrintRaw(const Reply& reply) {
  std::string_view raw = reply.raw;
  while (!raw.empty() && (raw.back() == '\n' || raw.back() == '\r')) raw.remove_suffix(1);
  std::cout << raw << '\n';
}

const json::object& Object(const Reply& reply) {
  static const json::object kEmpty;
  return reply.json.is_object() ? reply.json.get_object() : kEmpty;
}

// Prints `table`, or says there is nothing (on stderr, so stdout stays empty).
void PrintTable(const Context& ctx, const Table& table, std::string_view nothing) {
  if (table.empty()) {
    std::cerr << nothing << '\n';
    return;
  }
  std::cout << table.Render(ctx.style);
}

std::string When(const json::object& o, std::string_view key, TimeMs now,
                 std::string_view never = "-") {
  const std::optional<TimeMs> t = IntField(o, key);
  return t ? Relative(*t, now) : std::string(never);
}

// GETs `target`; prints it raw with --json, else hands it to `print`.
template <typename Print>
ExitCode Show(const Context& ctx, const std::string& target, Print print) {
  const Reply reply = ctx.api.Get(target);
  if (!reply.ok()) return Fail(reply.outcome);
  if (ctx.json) {
    PrintRaw(reply);
  } else {
    print(Object(reply));
  }
  return ExitCode::kOk;
}

Table StatusTable() { return Table({"CLIENT", "STATUS", "TEXT", "DEVICE", "LAST SEEN"}); }

void AddStatusRow(Table& table, const json::object& s, TimeMs now) {
  const std::string status = Field(s, "status");
  table.AddRow({{Field(s, "clientId")},
                {status, StatusColor(status)},
                {Field(s, "text")},
                {Field(s, "activeDevice")},
                {When(s, "lastSeen", now, "never")}});
}

Table OccupancyTable() { return Table({"CHANNEL", "MEMBERS", "CLIENTS"}); }

void AddOccupancyRow(Table& table, const std::string& channel, const json::object& o) {
  table.AddRow({{channel}, {Field(o, "members", "0")}, {Field(o, "clients", "0")}});
}

// POSTs `body` to /v1/tokens; the reply (with "token") or the failure.
Reply MintToken(const Context& ctx, const TokenOptions& options) {
  json::object body{{"clientId", options.client_id}};
  if (options.channels)
    body["channels"] = json::array(options.channels->begin(), options.channels->end());
  if (options.ttl_ms) body["ttlMs"] = *options.ttl_ms;
  const json::value v = std::move(body);
  return ctx.api.Call(Method::kPost, ctx.api.endpoint().Target({"v1", "tokens"}), &v);
}

}  // namespace

ExitCode Who(const Context& ctx, const std::optional<std::string>& channel) {
  QueryParams params;
  if (channel) params.emplace_back("channel", *channel);
  return Show(ctx, ctx.api.endpoint().Target({"v1", "who"}, params), [&](const json::object& o) {
    const TimeMs now = ctx.clock.NowMs();
    Table table = StatusTable();
    for (const auto& u : ArrayField(o, "users")) {
      if (u.is_object()) AddStatusRow(table, u.get_object(), now);
    }
    PrintTable(ctx, table, "no users online");
  });
}

ExitCode StatusGet(const Context& ctx, const std::vector<std::string>& client_ids) {
  Table table = StatusTable();
  for (const auto& id : client_ids) {
    const Reply reply = ctx.api.Get(ctx.api.endpoint().Target({"v1", "users", id, "status"}));
    if (!reply.ok()) return Fail(reply.outcome);
    if (ctx.json) {
      PrintRaw(reply);  // one STATUS object per line
    } else {
      AddStatusRow(table, Object(reply), ctx.clock.NowMs());
    }
  }
  if (!ctx.json) std::cout << table.Render(ctx.style);
  return ExitCode::kOk;
}

ExitCode StatusSet(const Context& ctx, const std::string& client_id, const std::string& status,
                   const std::optional<std::string>& text, bool clear_text) {
  json::object body{{"status", status}};
  if (text) body["text"] = *text;
  if (clear_text) body["text"] = nullptr;
  const json::value v = std::move(body);
  const Reply reply = ctx.api.Call(
      Method::kPut, ctx.api.endpoint().Target({"v1", "users", client_id, "status"}), &v);
  if (!reply.ok()) return Fail(reply.outcome);
  if (ctx.json) {
    PrintRaw(reply);
  } else {
    Table table = StatusTable();
    AddStatusRow(table, Object(reply), ctx.clock.NowMs());
    std::cout << table.Render(ctx.style);
  }
  return ExitCode::kOk;
}

ExitCode Devices(const Context& ctx, const std::string& client_id) {
  const std::string target = ctx.api.endpoint().Target({"v1", "users", client_id, "devices"});
  return Show(ctx, target, [&](const json::object& o) {
    const TimeMs now = ctx.clock.NowMs();
    Table table({"CONNECTION", "DEVICE", "STATUS", "LAST SEEN", "ACTIVE"});
    for (const auto& v : ArrayField(o, "devices")) {
      if (!v.is_object()) continue;
      const json::object& d = v.get_object();
      const std::string status = Field(d, "status");
      const json::value* active = d.if_contains("active");
      table.AddRow({{Field(d, "connectionId")},
                    {Field(d, "device")},
                    {status, StatusColor(status)},
                    {When(d, "lastSeen", now, "never")},
                    {active != nullptr && active->is_bool() && active->get_bool() ? "yes" : "no"}});
    }
    PrintTable(ctx, table, "no devices");
  });
}

ExitCode Activity(const Context& ctx, const std::string& client_id, std::optional<int64_t> limit) {
  QueryParams params;
  if (limit) params.emplace_back("limit", std::to_string(*limit));
  const std::string target =
      ctx.api.endpoint().Target({"v1", "users", client_id, "activity"}, params);
  return Show(ctx, target, [&](const json::object& o) {
    const TimeMs now = ctx.clock.NowMs();
    Table table({"WHEN", "KIND", "CHANNEL", "CONNECTION", "DATA"});
    for (const auto& v : ArrayField(o, "activities")) {
      if (!v.is_object()) continue;
      const json::object& a = v.get_object();
      const json::value* data = a.if_contains("data");
      table.AddRow({{When(a, "timestamp", now)},
                    {Field(a, "kind")},
                    {Field(a, "channel")},
                    {Field(a, "connectionId")},
                    {data != nullptr ? Compact(*data) : "null"}});
    }
    PrintTable(ctx, table, "no activity");
  });
}

ExitCode History(const Context& ctx, const std::string& channel, std::optional<int64_t> limit,
                 const std::optional<std::string>& direction, std::optional<int64_t> cursor) {
  QueryParams params;
  if (limit) params.emplace_back("limit", std::to_string(*limit));
  if (direction) params.emplace_back("direction", *direction);
  if (cursor) params.emplace_back("cursor", std::to_string(*cursor));
  const std::string target =
      ctx.api.endpoint().Target({"v1", "channels", channel, "history"}, params);
  return Show(ctx, target, [&](const json::object& o) {
    Table table({"TIME", "SERIAL", "ACTION", "CLIENT", "CONNECTION", "DATA"});
    for (const auto& v : ArrayField(o, "events")) {
      if (!v.is_object()) continue;
      const json::object& e = v.get_object();
      const json::object& member = ObjectField(e, "member");
      const std::optional<TimeMs> at = IntField(member, "timestamp");
      std::string action = Field(e, "action");
      const Color color = action == "enter"   ? Color::kGreen
                          : action == "leave" ? Color::kRed
                                              : Color::kYellow;
      if (e.contains("reason")) action += " (" + Field(e, "reason") + ")";
      const json::value* data = member.if_contains("data");
      table.AddRow({{at ? DateTime(*at) : "-"},
                    {Field(e, "serial")},
                    {action, color},
                    {Field(member, "clientId")},
                    {Field(member, "connectionId")},
                    {data != nullptr ? Compact(*data) : "null"}});
    }
    PrintTable(ctx, table, "no history");
    if (o.contains("next")) std::cerr << "more: --cursor " << Field(o, "next") << '\n';
  });
}

ExitCode Occupancy(const Context& ctx, const std::string& channel) {
  const std::string target = ctx.api.endpoint().Target({"v1", "channels", channel, "occupancy"});
  return Show(ctx, target, [&](const json::object& o) {
    Table table = OccupancyTable();
    AddOccupancyRow(table, Printable(channel), o);
    std::cout << table.Render(ctx.style);
  });
}

ExitCode Channels(const Context& ctx) {
  // The server lists channels by name in pages; follow `next` so the list is complete, and print
  // it (also with --json) as one {"channels":[...]}.
  json::array all;
  QueryParams params;
  while (true) {
    const Reply reply = ctx.api.Get(ctx.api.endpoint().Target({"v1", "channels"}, params));
    if (!reply.ok()) return Fail(reply.outcome);
    const json::object& page = Object(reply);
    for (const auto& c : ArrayField(page, "channels")) all.push_back(c);
    const json::value* next = page.if_contains("next");
    if (next == nullptr || !next->is_string()) break;
    if (!params.empty() && params[0].second == next->get_string()) break;  // no progress
    params = {{"after", std::string(next->get_string())}};
  }
  if (ctx.json) {
    std::cout << json::serialize(json::object{{"channels", std::move(all)}}) << '\n';
    return ExitCode::kOk;
  }
  Table table = OccupancyTable();
  for (const auto& v : all) {
    if (v.is_object()) AddOccupancyRow(table, Field(v.get_object(), "channel"), v.get_object());
  }
  PrintTable(ctx, table, "no channels");
  return ExitCode::kOk;
}

ExitCode Presence(const Context& ctx, const std::string& channel) {
  const std::string target = ctx.api.endpoint().Target({"v1", "channels", channel, "presence"});
  return Show(ctx, target, [&](const json::object& o) {
    const TimeMs now = ctx.clock.NowMs();
    Table table({"CLIENT", "CONNECTION", "CHANGED", "EXPIRES", "DATA"});
    for (const auto& v : ArrayField(o, "members")) {
      if (!v.is_object()) continue;
      const json::object& m = v.get_object();
      const json::value* data = m.if_contains("data");
      table.AddRow({{Field(m, "clientId")},
                    {Field(m, "connectionId")},
                    {When(m, "timestamp", now)},
                    {When(m, "expiresAt", now)},
                    {data != nullptr ? Compact(*data) : "null"}});
    }
    PrintTable(ctx, table, "no members");
  });
}

ExitCode Token(const Context& ctx, const TokenOptions& options) {
  const Reply reply = MintToken(ctx, options);
  if (!reply.ok()) return Fail(reply.outcome);
  if (ctx.json) {
    PrintRaw(reply);
  } else {
    std::cout << Field(Object(reply), "token", "") << '\n';
  }
  return ExitCode::kOk;
}

ExitCode Command(const Context& ctx, const std::string& client_id, const std::string& text) {
  const json::value body = json::object{{"clientId", client_id}, {"text", text}};
  const Reply reply =
      ctx.api.Call(Method::kPost, ctx.api.endpoint().Target({"v1", "commands"}), &body);
  if (!reply.ok()) return Fail(reply.outcome);
  if (ctx.json) {
    PrintRaw(reply);
    return ExitCode::kOk;
  }
  const json::value* reply_text = Object(reply).if_contains("text");
  if (reply_text != nullptr && reply_text->is_string()) {
    std::string out = Printable(reply_text->get_string(), /*keep_newlines=*/true);
    if (out.empty() || out.back() != '\n') out += '\n';
    std::cout << out;
  }
  return ExitCode::kOk;
}

ExitCode Watch(const Context& ctx, const WatchOptions& options) {
  if (options.channels.empty() && options.users.empty()) {
    std::cerr << "error: watch needs at least one --channel or --user\n";
    return ExitCode::kUsage;
  }
  WatchSpec spec;
  if (options.as.empty()) {
    spec.api_key = ctx.api.api_key();  // an observer: nobody online
  } else {
    TokenOptions token{options.as, std::nullopt, kWatchTokenTtlMs};
    if (!options.channels.empty()) token.channels = options.channels;
    const Reply minted = MintToken(ctx, token);
    if (!minted.ok()) return Fail(minted.outcome);
    const json::value* jwt = Object(minted).if_contains("token");
    if (jwt == nullptr || !jwt->is_string()) {
      return Fail(Outcome::Fail(ExitCode::kServerError, "POST /v1/tokens replied without a token"));
    }
    spec.token = std::string(jwt->get_string());
  }
  spec.channels = options.channels;
  spec.users = options.users;
  spec.max_events = options.count;

  WatchHandlers handlers;
  handlers.on_ready = [&] {
    std::string what;
    for (const auto& c : options.channels)
      what += (what.empty() ? "" : ", ") + ("channel " + Printable(c));
    for (const auto& u : options.users)
      what += (what.empty() ? "" : ", ") + ("user " + Printable(u));
    std::cerr << "watching " << what << " as "
              << (options.as.empty() ? std::string("an observer") : Printable(options.as))
              << std::endl;
  };
  handlers.on_event = [&](const json::object& frame) {
    if (ctx.json) {
      std::cout << json::serialize(frame) << std::endl;  // one object per line, flushed
      return;
    }
    const json::value* type = frame.if_contains("type");
    const bool status = type != nullptr && type->is_string() && type->get_string() == "status";
    std::cout << (status ? StatusLine(frame, ctx.clock.NowMs(), ctx.style)
                         : PresenceLine(frame, ctx.style))
              << std::endl;
  };
  const Outcome outcome = RunWatch(ctx.api.endpoint(), spec, handlers);
  return outcome.ok() ? ExitCode::kOk : Fail(outcome);
}

// ----- Agent sessions ---------------------------------------------------------------------------

namespace {

Table SessionTable() {
  return Table({"CONVERSATION", "AGENT", "STATE", "WORKER", "STARTED", "LAST ACTIVITY"});
}

void AddSessionRow(Table& table, const json::object& s, TimeMs now) {
  const std::string state = Field(s, "state");
  const json::value* worker = s.if_contains("workerConnectionId");
  table.AddRow({{Field(s, "conversationId")},
                {Field(s, "agentId")},
                {state, state == "running" ? Color::kGreen : Color::kYellow},
                {worker != nullptr && worker->is_string() ? std::string(worker->get_string())
                                                          : std::string("-")},
                {When(s, "startedAt", now)},
                {When(s, "lastActivityAt", now)}});
}

ExitCode PrintSession(const Context& ctx, const Reply& reply) {
  if (ctx.json) {
    PrintRaw(reply);
  } else {
    Table table = SessionTable();
    AddSessionRow(table, Object(reply), ctx.clock.NowMs());
    std::cout << table.Render(ctx.style);
  }
  return ExitCode::kOk;
}

}  // namespace

ExitCode SessionsList(const Context& ctx) {
  return Show(ctx, ctx.api.endpoint().Target({"v1", "sessions"}), [&](const json::object& o) {
    Table table = SessionTable();
    for (const auto& v : ArrayField(o, "sessions")) {
      if (v.is_object()) AddSessionRow(table, v.get_object(), ctx.clock.NowMs());
    }
    PrintTable(ctx, table, "no agent sessions");
  });
}

ExitCode SessionGet(const Context& ctx, const std::string& conversation_id) {
  const Reply reply = ctx.api.Get(ctx.api.endpoint().Target({"v1", "sessions", conversation_id}));
  if (!reply.ok()) return Fail(reply.outcome);
  return PrintSession(ctx, reply);
}

ExitCode SessionStart(const Context& ctx, const std::string& conversation_id,
                      const SessionStartOptions& options) {
  json::object body;
  if (options.request) {
    boost::system::error_code ec;
    json::value request = json::parse(*options.request, ec);
    if (ec) {
      std::cerr << "error: --request is not JSON: " << ec.message() << '\n';
      return ExitCode::kUsage;
    }
    body["request"] = std::move(request);
  }
  if (options.inactivity_ms) body["inactivityTimeoutMs"] = *options.inactivity_ms;
  if (options.abandon_ms) body["abandonAfterMs"] = *options.abandon_ms;
  const json::value v = std::move(body);
  const Reply reply = ctx.api.Call(
      Method::kPut, ctx.api.endpoint().Target({"v1", "sessions", conversation_id}), &v);
  if (!reply.ok()) return Fail(reply.outcome);
  return PrintSession(ctx, reply);
}

ExitCode SessionStop(const Context& ctx, const std::string& conversation_id) {
  const Reply reply =
      ctx.api.Call(Method::kDelete, ctx.api.endpoint().Target({"v1", "sessions", conversation_id}));
  if (!reply.ok()) return Fail(reply.outcome);
  if (!ctx.json) std::cout << "stopped " << conversation_id << '\n';
  return ExitCode::kOk;
}

}  // namespace presenced::ctl
