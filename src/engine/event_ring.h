// EventRing: the most recent events of one channel, so a returning subscriber can ask for
// everything after serial N. Bounded: once full, each new event drops the oldest one.
// Owned by its channel; not thread-safe.
#pragma once

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

class EventRing {
 public:
  // `capacity`: most events kept. `last_serial`: the serial before the first event to come.
  EventRing(size_t capacity, uint64_t last_serial)
      : capacity_(capacity), first_serial_(last_serial + 1) {}

  // Appends the event with serial last_serial() + 1.
  void Push(EventRecord record) {
    if (count_ < buf_.size()) {
      buf_[(head_ + count_) % buf_.size()] = std::move(record);
      ++count_;
    } else if (buf_.size() < capacity_) {
      Grow();
      buf_[count_++] = std::move(record);
    } else {
      buf_[head_] = std::move(record);  // overwrite the oldest
      head_ = (head_ + 1) % buf_.size();
      ++first_serial_;
    }
  }

  uint64_t last_serial() const { return first_serial_ + count_ - 1; }
  size_t size() const { return count_; }

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
  void Grow() {
    // Unroll the ring into a larger buffer. Grows geometrically up to the capacity.
    size_t next =
        buf_.empty() ? std::min<size_t>(4, capacity_) : std::min(buf_.size() * 2, capacity_);
    std::vector<EventRecord> grown(next);
    for (size_t i = 0; i < count_; ++i) grown[i] = std::move(buf_[(head_ + i) % buf_.size()]);
    buf_ = std::move(grown);
    head_ = 0;
  }

  size_t capacity_;
  uint64_t first_serial_;  // serial of the oldest held event
  std::vector<EventRecord> buf_;
  size_t head_ = 0;
  size_t count_ = 0;
};

}  // namespace presenced::engine
