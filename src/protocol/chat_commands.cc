// The `/presence` command runner (chat_commands.h); the Dispatcher's thread.
#include "protocol/chat_commands.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstdio>

#include "protocol/auth.h"
#include "protocol/codec.h"
#include "protocol/commands.h"
#include "protocol/json_out.h"

namespace presenced::protocol {

using engine::Presence;

namespace {

std::string Ago(TimeMs t, TimeMs now) {
  const int64_t s = std::max<int64_t>(0, (now - t) / 1000);
  if (s < 10) return "just now";
  if (s < 60) return std::to_string(s) + "s ago";
  if (s < 3600) return std::to_string(s / 60) + "m ago";
  if (s < 86400) return std::to_string(s / 3600) + "h ago";
  return std::to_string(s / 86400) + "d ago";
}

std::string ClockTime(TimeMs t) {  // HH:MM:SS UTC
  const int64_t s = (t / 1000) % 86400;
  char b[16];
  snprintf(b, sizeof b, "%02d:%02d:%02d", static_cast<int>(s / 3600), static_cast<int>(s / 60 % 60),
           static_cast<int>(s % 60));
  return b;
}

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// "alice is away ("lunch") - active on phone - last seen 5m ago", from a serialized STATUS.
std::string StatusSentence(std::string_view status_json, TimeMs now) {
  boost::system::error_code ec;
  const json::value v = json::parse(status_json, ec);
  const json::object* st = ec ? nullptr : v.if_object();
  const json::value* id = st ? st->if_contains("clientId") : nullptr;
  const json::value* status = st ? st->if_contains("status") : nullptr;
  if (!id || !id->is_string() || !status || !status->is_string()) return "Status unavailable.";
  std::string out = std::string(id->get_string()) + " is " + std::string(status->get_string());
  if (const json::value* t = st->if_contains("text"); t && t->is_string()) {
    out += " (" + Quote(t->get_string()) + ")";
  }
  if (const json::value* d = st->if_contains("activeDevice"); d && d->is_string()) {
    out += " - active on " + std::string(d->get_string());
  }
  if (const json::value* l = st->if_contains("lastSeen"); l && l->is_int64()) {
    out += " - last seen " + Ago(l->get_int64(), now);
  }
  return out;
}

std::string Failed(std::string_view sentence, const Error& e) {
  return CommandFields(std::string(sentence) + e.message,
                       CommandErrorData(ErrorCodeName(e.code), e.message));
}

void Self(OpCall& c, TimeMs now, Responder respond) {
  c.core.store.StatusesOf({std::string(c.caller.client_id)}, [now, respond = std::move(respond)](
                                                                 Result<std::string> statuses) {
    if (!statuses.ok()) {
      return respond(CommandFields("Could not read your status: " + statuses.error().message,
                                   CommandErrorData("internal", statuses.error().message)));
    }
    // A one-element array of the server's own serialization: strip the brackets.
    const std::string one = statuses->substr(1, statuses->size() - 2);
    respond(CommandFields(StatusSentence(one, now), one));
  });
}

std::string WhoCommand(OpCall& c, const std::optional<std::string>& channel) {
  if (channel) {  // the checks of op `who`
    if (Status st = CheckChannel(c.core, c.caller, *channel); !st) {
      return Failed("Cannot show who is in " + *channel + ": ", st.error());
    }
  }
  const auto users = c.core.engine.Who(channel);
  std::string data = R"({"channel":)";
  AppendOptional(data, channel);
  data += R"(,"users":)";
  AppendStatuses(data, users);
  data += '}';
  const std::string where = channel ? " in " + *channel : "";
  if (users.empty()) return CommandFields("Nobody is online" + where + ".", data);
  std::string text = std::to_string(users.size()) + " online" + where + ": ";
  const size_t shown = std::min<size_t>(users.size(), 20);
  for (size_t i = 0; i < shown; ++i) {
    if (i) text += ", ";
    text += users[i].client_id;
    if (users[i].status != Presence::kOnline)
      text += " (" + std::string(PresenceName(users[i].status)) + ")";
  }
  if (shown < users.size()) text += " and " + std::to_string(users.size() - shown) + " more";
  return CommandFields(text, data);
}

void ActivityCommand(OpCall& c, Responder respond) {  // as activity.get for oneself
  c.core.store.VisibleActivities(
      std::string(c.caller.client_id), 10, std::nullopt, c.caller.Patterns(),
      [respond = std::move(respond)](Result<std::vector<storage::StoredActivity>> list) {
        if (!list.ok()) {
          return respond(CommandFields("Could not read your activity: " + list.error().message,
                                       CommandErrorData("internal", list.error().message)));
        }
        std::string data = R"({"activities":)";
        AppendActivities(data, *list);
        data += '}';
        if (list->empty()) return respond(CommandFields("No recent activity.", data));
        std::string text = "Recent activity:";
        for (const auto& a : *list) {
          text += "\n  " + ClockTime(a.timestamp) + " " + a.kind;
          if (!a.channel.empty()) text += " in " + a.channel;
        }
        respond(CommandFields(text, data));
      });
}

void SetStatusCommand(OpCall& c, const Command& cmd, Responder respond) {
  std::optional<Presence> status;
  std::optional<std::optional<std::string>> text;
  if (cmd.kind == CommandKind::kSetStatus) {
    status = cmd.status;
  } else {
    text = cmd.text;
  }
  engine::Engine& e = c.core.engine;
  auto v = c.caller.handle != 0 ? e.SetStatus(c.caller.handle, status, std::move(text))
                                : e.SetStatusOf(c.caller.client_id, status, std::move(text));
  if (!v.ok()) return respond(Failed("Could not set your status: ", v.error()));
  std::string data;
  AppendStatus(data, *v);
  std::string reply;
  if (cmd.kind == CommandKind::kSetText) {
    reply = cmd.text ? "Status text set to " + Quote(*cmd.text) + "." : "Status text cleared.";
  } else if (cmd.status == Presence::kOnline) {
    reply = "Status set to automatic: you are " + std::string(PresenceName(v->status)) + ".";
  } else if (cmd.status == Presence::kOffline) {
    reply = "You now appear offline.";
  } else {
    reply = "Status set to " + std::string(PresenceName(*status)) + ".";
  }
  // Set by hand: on disk before the reply, as for status.set.
  c.core.store.PersistSettings(
      std::string(c.caller.client_id),
      [respond = std::move(respond), fields = CommandFields(reply, data)](Status st) {
        if (!st.ok()) {
          return respond(CommandFields("Could not save your status: " + st.error().message,
                                       CommandErrorData("internal", st.error().message)));
        }
        respond(fields);
      });
}

std::string DevicesCommand(OpCall& c, TimeMs now) {
  const auto devices = c.core.engine.Devices(c.caller.client_id, c.caller.client_id);
  std::string data = R"({"devices":)";
  AppendDevices(data, devices);
  data += '}';
  if (devices.empty()) return CommandFields("No devices connected.", data);
  std::string text =
      std::to_string(devices.size()) + (devices.size() == 1 ? " device: " : " devices: ");
  for (size_t i = 0; i < devices.size(); ++i) {
    const auto& d = devices[i];
    if (i) text += ", ";
    text += std::string(d.device) + " (" + (d.active ? "active, " : "") +
            std::string(PresenceName(d.status)) + (d.manual ? " (set)" : "") + ", last seen " +
            Ago(d.last_seen, now) + ")";
  }
  return CommandFields(text, data);
}

std::string DeviceCommand(OpCall& c, const Command& cmd) {
  engine::Engine& e = c.core.engine;
  Result<engine::DeviceChange> d = MakeError(ErrorCode::kInternal, "unset");
  if (c.caller.handle != 0) {
    d = e.SetDeviceStatus(c.caller.handle, cmd.connection_id, cmd.status);
  } else if (!cmd.connection_id) {
    d = MakeError(ErrorCode::kBadRequest, "name the device: /presence device STATUS connectionId");
  } else {
    d = e.SetDeviceStatusOf(c.caller.client_id, *cmd.connection_id, cmd.status);
  }
  if (!d.ok()) {
    return CommandFields("Sorry, " + d.error().message + ".",
                         CommandErrorData(ErrorCodeName(d.error().code), d.error().message));
  }
  std::string data = R"({"device":)";
  AppendDevice(data, d->device);
  data += R"(,"status":)";
  AppendStatus(data, d->status);
  data += '}';
  std::string text = std::string(d->device.device) + " is now " +
                     std::string(PresenceName(d->device.status)) +
                     (d->device.manual ? "" : " (automatic)") + "; you are " +
                     std::string(PresenceName(d->status.status)) + ".";
  return CommandFields(text, data);
}

std::string SyncCommand(OpCall& c, TimeMs now) {
  const engine::SyncReport report = c.core.engine.SyncStatus(c.caller.client_id);
  const auto [in_sync, last] = Summarize(report);
  const std::string data = SyncReportData(report);
  if (report.devices.empty()) {
    return CommandFields("Nothing to sync: none of your devices is connected.", data);
  }
  std::string text = "Synced " + std::string(PresenceName(report.status.status)) + " to " +
                     std::to_string(in_sync) + " of " + std::to_string(report.devices.size()) +
                     (report.devices.size() == 1 ? " device" : " devices");
  text += last ? ", at " + ClockTime(*last) + " UTC." : ".";
  for (const auto& d : report.devices) {
    if (d.in_sync) continue;
    text += "\n  " + std::string(d.device) + " is reconnecting; last synced " +
            (d.last_synced_at ? Ago(*d.last_synced_at, now) : std::string("never")) + ".";
  }
  return CommandFields(text, data);
}

}  // namespace

void RunCommand(OpCall& c, std::string_view line, Responder respond) {
  const Command cmd = ParseCommand(line);
  const TimeMs now = c.core.clock.NowMs();
  switch (cmd.kind) {
    case CommandKind::kInvalid: {
      std::string data = CommandErrorData("bad_command", cmd.problem);
      data.pop_back();  // reopen the object to add the command list
      data += R"(,"commands":)" + CommandListJson() + "}";
      return respond(CommandFields("Sorry, " + cmd.problem + ".\n" + HelpText(), data));
    }
    case CommandKind::kHelp:
      return respond(CommandFields(HelpText(), R"({"commands":)" + CommandListJson() + "}"));
    case CommandKind::kSelf:
      return Self(c, now, std::move(respond));
    case CommandKind::kWho:
      return respond(WhoCommand(c, cmd.channel));
    case CommandKind::kActivity:
      return ActivityCommand(c, std::move(respond));
    case CommandKind::kSetStatus:
    case CommandKind::kSetText:
      return SetStatusCommand(c, cmd, std::move(respond));
    case CommandKind::kDevices:
      return respond(DevicesCommand(c, now));
    case CommandKind::kDevice:
      return respond(DeviceCommand(c, cmd));
    case CommandKind::kSync:
      return respond(SyncCommand(c, now));
  }
  respond(CommandFields(HelpText(), "null"));
}

}  // namespace presenced::protocol
