// Names of the engine's value types on the wire (types.h); pure.
#include "engine/types.h"

namespace presenced::engine {

std::string_view ActionName(Action action) {
  switch (action) {
    case Action::kEnter:
      return "enter";
    case Action::kUpdate:
      return "update";
    case Action::kLeave:
      return "leave";
  }
  return "enter";
}

std::optional<Action> ParseAction(std::string_view name) {
  if (name == "enter") return Action::kEnter;
  if (name == "update") return Action::kUpdate;
  if (name == "leave") return Action::kLeave;
  return std::nullopt;
}

std::string_view LeaveReasonName(LeaveReason reason) {
  switch (reason) {
    case LeaveReason::kNone:
      return "";
    case LeaveReason::kLeft:
      return "left";
    case LeaveReason::kDisconnected:
      return "disconnected";
    case LeaveReason::kTimeout:
      return "timeout";
    case LeaveReason::kExpired:
      return "expired";
  }
  return "";
}

std::string_view PresenceName(Presence p) {
  switch (p) {
    case Presence::kOnline:
      return "online";
    case Presence::kAway:
      return "away";
    case Presence::kDnd:
      return "dnd";
    case Presence::kOffline:
      return "offline";
  }
  return "offline";
}

std::optional<Presence> ParsePresence(std::string_view name) {
  if (name == "online") return Presence::kOnline;
  if (name == "away") return Presence::kAway;
  if (name == "dnd") return Presence::kDnd;
  if (name == "offline") return Presence::kOffline;
  return std::nullopt;
}

}  // namespace presenced::engine
