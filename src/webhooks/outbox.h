// Webhooks (protocol-ext §4): the outbox of events waiting for each endpoint, and the delivery of
// each endpoint's oldest event (signed, retried with backoff, given up after the retry period).
//
// Outbox is state: per endpoint, its undelivered events in order. It is the same on every node of
// a cluster (the Dispatcher adds events as it applies the log, and an event leaves an endpoint's
// queue only at a "delivered" log entry), and it is saved and loaded exactly (SaveState); a single
// node keeps it in its store instead (Restore at start). Ids are `<epoch>-<seq>`: stable across
// retries and restarts, unique per data set.
//
// Deliverer is this node's sending of it: one request in flight per endpoint, the head of its
// queue; a 2xx answer reports the event delivered (the owner pops it, directly or through the
// log), anything else (or no answer within the timeout) retries after 1 s, doubling up to 5 min,
// until the retry period after the event was created, when it is reported given up. In a cluster
// one node delivers (the owner decides which); the schedule is that node's own.
//
// Threading: the owner's thread (the Dispatcher's). Time from the injected clocks.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/http_client.h"

namespace presenced::webhooks {

// Event types, as a bit mask (PRESENCED_WEBHOOK_EVENTS).
enum Type : uint32_t {
  kChannelOccupied = 1u << 0,
  kChannelVacated = 1u << 1,
  kMemberEntered = 1u << 2,
  kMemberLeft = 1u << 3,
  kUserOnline = 1u << 4,
  kUserOffline = 1u << 5,
  kSessionStarted = 1u << 6,
  kSessionStopped = 1u << 7,
};
inline constexpr uint32_t kAllTypes = 0xff;
inline constexpr uint32_t kDefaultTypes = kAllTypes & ~(kMemberEntered | kMemberLeft);
std::string_view TypeName(Type type);
// A comma list of type names ("" = the default); unknown names are an error.
Result<uint32_t> ParseTypes(std::string_view list);

struct Options {
  std::vector<std::string> endpoints;  // URLs, in the order given
  std::string secret;                  // the signing key's bytes
  uint32_t types = kDefaultTypes;
  TimeMs retry_ms = 86400000;  // after an event's creation, it is given up
  TimeMs timeout_ms = 5000;    // one try
  TimeMs first_backoff_ms = 1000;
  TimeMs max_backoff_ms = 300000;
  size_t max_queue = 100000;  // per endpoint; over it the oldest are dropped
};

struct Event {
  uint64_t seq = 0;
  std::string id;
  TimeMs created_at = 0;
  std::shared_ptr<const std::string> body;  // {"id","type","timestamp","data"}
};

// One endpoint's queued event as a store keeps it (single-node mode).
struct StoredEvent {
  size_t endpoint = 0;
  Event event;
};

class Outbox {
 public:
  explicit Outbox(Options options)
      : options_(std::move(options)), queues_(options_.endpoints.size()) {}

  bool enabled() const { return !options_.endpoints.empty(); }
  bool Wants(Type type) const { return enabled() && (options_.types & type) != 0; }
  const Options& options() const { return options_; }

  // Queues an event for every endpoint (when wanted): `data` is a JSON object's text. Returns the
  // event (null when not wanted), and counts in `overflowed` the oldest events dropped to make
  // room.
  const Event* Add(Type type, std::string_view data, TimeMs at, std::string_view epoch);
  const Event* Head(size_t endpoint) const;
  // Removes the endpoint's head when it is event `seq`; false otherwise (already gone).
  bool Pop(size_t endpoint, uint64_t seq);
  size_t depth(size_t endpoint) const { return queues_[endpoint].size(); }
  size_t total_depth() const;
  size_t endpoint_count() const { return queues_.size(); }
  uint64_t overflowed() const { return overflowed_; }

  // Single-node mode: what the store kept, in (endpoint, seq) order.
  void Restore(std::vector<StoredEvent> events);
  std::string SaveState() const;
  Status LoadState(std::string_view state);

 private:
  Options options_;
  std::vector<std::deque<std::shared_ptr<const Event>>> queues_;
  uint64_t next_seq_ = 1;
  uint64_t overflowed_ = 0;
};

// "v1,BASE64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))" (Standard Webhooks).
std::string Signature(std::string_view secret, std::string_view id, int64_t timestamp_s,
                      std::string_view body);

class Deliverer {
 public:
  struct Callbacks {
    // The event reached the endpoint (2xx), or was given up after the retry period.
    std::function<void(size_t endpoint, uint64_t seq, bool delivered)> done;
    // Runs a task on the owner's thread later (HTTP answers come back through it).
    std::function<void(std::function<void()>)> post;
    // Each try's result: "ok", "error" (will retry) or "dropped".
    std::function<void(std::string_view result)> count;
  };
  // `outbox`, `clock` and `client` must outlive the Deliverer; `clock` is the wall clock.
  Deliverer(Outbox& outbox, const Clock& clock, HttpClient& client, Callbacks callbacks);
  ~Deliverer();

  // Sends each endpoint's head when due and nothing is in flight for it.
  void Pump();
  // When Pump has something to do next (a retry), if anything.
  std::optional<TimeMs> NextDeadline() const;
  // The owner popped the head (or will): the next one may go. `seq` is the one reported done.
  void Settled(size_t endpoint, uint64_t seq);

 private:
  struct State {
    bool in_flight = false;
    uint64_t seq = 0;  // the head this schedule is for
    int attempts = 0;
    TimeMs next_try_at = 0;
    uint64_t reported = 0;  // reported done, not yet popped: not sent again
  };
  void Send(size_t endpoint, const Event& e);
  void Answered(size_t endpoint, uint64_t seq, const HttpOutcome& outcome);

  Outbox& outbox_;
  const Clock& clock_;
  HttpClient& client_;
  Callbacks callbacks_;
  std::vector<State> states_;
  std::shared_ptr<bool> alive_;  // answers arriving after destruction are ignored
};

}  // namespace presenced::webhooks
