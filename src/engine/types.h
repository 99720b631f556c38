// Value types that cross the engine boundary: actions, reasons, statuses, and the read-only views
// the engine hands to its callers and to its EventSink.
//
// Views (MemberView, PresenceEvent, StatusView, ...) hold std::string_views into engine-owned
// strings: they are valid until the next call into the Engine, on the engine's thread. Copy what
// you need to keep. JsonText members are reference-counted and may be kept freely.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/json_text.h"

namespace presenced::engine {

// Identifies a connection inside the engine: an index plus a generation, so a stale handle never
// reaches a reused slot. 0 is never a valid handle.
using ConnectionHandle = uint64_t;
// The slot of a handle: small and dense (slots are reused), so callers may index a vector by it.
// A slot outlives its handle: compare the whole handle to tell a reused slot apart.
constexpr uint32_t ConnectionSlot(ConnectionHandle handle) { return static_cast<uint32_t>(handle); }

enum class Action : uint8_t { kEnter = 0, kUpdate = 1, kLeave = 2 };
std::string_view ActionName(Action action);
std::optional<Action> ParseAction(std::string_view name);

// A set of actions, for subscription filters.
using ActionMask = uint8_t;
constexpr ActionMask ActionBit(Action a) {
  return static_cast<ActionMask>(1u << static_cast<int>(a));
}
constexpr ActionMask kAllActions = 0b111;

enum class LeaveReason : uint8_t {
  kNone = 0,      // not a leave
  kLeft,          // explicit leave
  kDisconnected,  // clean close of the connection, or graceful server shutdown
  kTimeout,       // grace period after an abrupt drop ran out
  kExpired,       // TTL ran out
};
std::string_view LeaveReasonName(LeaveReason reason);

// Status values of the wire contract. For a device (connection), only online/away/offline occur.
enum class Presence : uint8_t { kOnline = 0, kAway, kDnd, kOffline };
std::string_view PresenceName(Presence p);
std::optional<Presence> ParsePresence(std::string_view name);

constexpr TimeMs kNoExpiry = 0;

struct MemberView {
  std::string_view client_id;
  std::string_view connection_id;
  JsonText data;
  TimeMs timestamp = 0;
  TimeMs expires_at = kNoExpiry;  // kNoExpiry = null on the wire
};

// One presence event. `serial` grows by exactly one per event of a channel.
struct PresenceEvent {
  std::string_view channel;
  uint64_t serial = 0;
  Action action = Action::kEnter;
  LeaveReason reason = LeaveReason::kNone;  // set on leave only
  MemberView member;
  uint64_t channel_members = 0;  // the channel's members after the event (webhooks: 1 on the
                                 // first enter = occupied, 0 after the last leave = vacated)
};

// A user's status as others see it (the wire's STATUS object).
struct StatusView {
  std::string_view client_id;
  Presence status = Presence::kOffline;
  std::optional<std::string_view> text;
  std::optional<TimeMs> last_seen;
  std::optional<std::string_view> active_device;
};

struct DeviceView {
  std::string_view connection_id;
  std::string_view device;
  // The device's effective status: set by hand (away/dnd/offline), else its own
  // online/away/offline from its idle time.
  Presence status = Presence::kOffline;
  TimeMs last_seen = 0;
  bool active = false;
  bool manual = false;  // `status` was set by hand (device.status.set)
};

// A status push: `previous` is the status others saw before this change. `device`: the device
// whose own status was just set (pushes to the user's own connections only).
struct StatusChange {
  StatusView status;
  Presence previous = Presence::kOffline;
  std::optional<DeviceView> device;
};

// What device.status.set answers: the device after the change, and its user's status.
struct DeviceChange {
  DeviceView device;
  StatusView status;
};

struct ActivityRecord {
  std::string kind;
  std::string channel;  // empty = none
  JsonText data;
  TimeMs timestamp = 0;
  std::string connection_id;
};

struct Occupancy {
  uint64_t members = 0;
  uint64_t clients = 0;
};

struct ChannelSummary {
  std::string_view channel;
  Occupancy occupancy;
};

// One device of a user after `/presence sync`.
struct SyncedDevice {
  std::string_view connection_id;
  std::string_view device;
  bool in_sync = false;                  // holds the user's current status
  std::optional<TimeMs> last_synced_at;  // when a status push last reached it
};

struct SyncReport {
  StatusView status;
  std::vector<SyncedDevice> devices;
};

}  // namespace presenced::engine
