// EventRing: the most recent events of one channel, so a returning subscriber can ask for
// everything after serial N. Bounded twice: by its own capacity (once full, each new event drops
// the oldest one), and by the RetainedBudget it shares with every other ring (once all rings
// together retain more bytes than the budget, the oldest events of the largest rings go first).
//
// RetainedBudget: the bytes retained by all the rings that share it, and the cap on them. Rings
// are kept in size classes (four per power of two), so the largest one is found in O(1) and each
// event costs O(1) to account for, however many channels exist; "largest" is exact up to its size
// class (within 25 %). Trimming happens inside EventRing::Push, so the cap holds after every
// event; each trimmed event was pushed once, so trimming is O(1) amortized per event.
//
// Ownership: a ring belongs to its channel; the budget (owned by the engine) must outlive every
// ring that uses it. Not thread-safe: the engine's thread only.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/json_text.h"
#include "engine/identity.h"
#include "engine/types.h"

namespace presenced::engine {

// One stored event. Its serial is implied by its position in the ring.
struct EventRecord {
  IdentityRef who;
  JsonText data;
  TimeMs timestamp = 0;
  TimeMs expires_at = kNoExpiry;
  Action action = Action::kEnter;
  LeaveReason reason = LeaveReason::kNone;
};

class EventRing;

class RetainedBudget {
 public:
  // `max_bytes`: the most bytes all rings together retain; 0 = no cap.
  explicit RetainedBudget(size_t max_bytes) : max_bytes_(max_bytes) {}
  RetainedBudget(const RetainedBudget&) = delete;
  RetainedBudget& operator=(const RetainedBudget&) = delete;

  size_t max_bytes() const { return max_bytes_; }
  // Bytes retained by all rings (EventRing::CostOf summed over every held event).
  size_t bytes() const { return bytes_; }
  // Rings that hold at least one event.
  size_t rings() const { return rings_; }
  // The ring retaining the most bytes (up to its size class); nullptr when none holds any.
  EventRing* Largest() const;

 private:
  friend class EventRing;
  static constexpr int kClasses = 256;  // 4 per power of two, up to 2^64
  static int ClassOf(size_t bytes);
  // The ring's bytes changed from `old_bytes` to ring.bytes(): moves it to its new size class.
  void Changed(EventRing& ring, size_t old_bytes);
  void Link(EventRing& ring, int size_class);
  void Unlink(EventRing& ring);
  // Drops the oldest events of the largest rings until the cap holds.
  void Enforce();

  size_t max_bytes_;
  size_t bytes_ = 0;
  size_t rings_ = 0;
  std::array<EventRing*, kClasses> heads_{};        // circular list of the rings per class
  std::array<uint64_t, kClasses / 64> occupied_{};  // bit per non-empty class
};

class EventRing {
 public:
  // `capacity`: most events kept (at least 1). `last_serial`: the serial before the first event
  // to come. `budget` (may be null: no shared cap) must outlive the ring.
  EventRing(size_t capacity, uint64_t last_serial, RetainedBudget* budget = nullptr)
      : capacity_(std::max<size_t>(capacity, 1)), first_serial_(last_serial + 1), budget_(budget) {}
  ~EventRing();
  EventRing(const EventRing&) = delete;
  EventRing& operator=(const EventRing&) = delete;

  // Appends the event with serial last_serial() + 1. May then drop the oldest events of this or
  // other rings to keep the budget.
  void Push(EventRecord record);
  // Drops the oldest held event. Requires size() > 0.
  void DropOldest();

  uint64_t last_serial() const { return first_serial_ + count_ - 1; }
  uint64_t first_serial() const { return first_serial_; }
  size_t size() const { return count_; }
  size_t bytes() const { return bytes_; }
  // What one held event counts against the budget: the record and its data's text.
  static size_t CostOf(const EventRecord& record) {
    return sizeof(EventRecord) + (record.data.is_null() ? 0 : record.data.size());
  }

  // True when every event after `since` is still held (nothing after it is lost).
  bool Covers(uint64_t since) const { return since + 1 >= first_serial_ && since <= last_serial(); }

  // Calls fn(serial, record) for each event after `since`, oldest first. Requires Covers(since).
  template <typename Fn>
  void ForEachAfter(uint64_t since, Fn&& fn) const {
    for (uint64_t s = since + 1; s <= last_serial(); ++s) {
      fn(s, buf_[(head_ + (s - first_serial_)) % buf_.size()]);
    }
  }

 private:
  friend class RetainedBudget;
  // Moves the held events, oldest first, into a buffer of `slots` (>= count_) slots.
  void Reallocate(size_t slots);
  void Account(size_t old_bytes);

  size_t capacity_;
  uint64_t first_serial_;  // serial of the oldest held event
  std::vector<EventRecord> buf_;
  size_t head_ = 0;
  size_t count_ = 0;
  size_t bytes_ = 0;

  // Budget bookkeeping (owned by the budget): size class, and the links of its class's list.
  RetainedBudget* budget_;
  int size_class_ = -1;  // -1: holds nothing, not listed
  EventRing* prev_ = nullptr;
  EventRing* next_ = nullptr;
};

}  // namespace presenced::engine
