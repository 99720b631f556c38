// TimerQueue: every engine deadline (TTL expiry, grace period, idle transitions) in one indexed
// binary min-heap.
//
// Adding, moving and cancelling a timer cost O(log n) and firing costs O(log n) per due timer; no
// operation scans all timers. Timers with equal deadlines fire in the order they were last set,
// so the engine is deterministic. Ids are reused after a timer fires or is cancelled; 0 is never
// an id. Not thread-safe: owned by the Engine.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "common/clock.h"

namespace presenced::engine {

class TimerQueue {
 public:
  using TimerId = uint32_t;
  static constexpr TimerId kNoTimer = 0;

  struct Due {
    TimerId id;
    uint8_t kind;
    void* target;
    TimeMs deadline;
  };

  TimerQueue();

  // Arms a timer; `kind` and `target` come back when it fires.
  TimerId Add(TimeMs deadline, uint8_t kind, void* target);
  // Changes the deadline of an armed timer.
  void Move(TimerId id, TimeMs deadline);
  // Disarms a timer; its id may be handed out again.
  void Cancel(TimerId id);
  TimeMs Deadline(TimerId id) const { return heap_[slots_[id].heap_pos].deadline; }

  // Disarms and returns the earliest timer whose deadline is <= now, if any.
  std::optional<Due> PopDue(TimeMs now);
  std::optional<TimeMs> NextDeadline() const;
  size_t size() const { return heap_.size(); }

  // The queue as it stands, for a state snapshot: every armed timer in heap order, the free ids
  // in the order they will be reused, and the sequence that orders equal deadlines. Restored
  // exactly, the queue fires and reuses ids as the saved one would have.
  struct Armed {
    TimerId id;
    uint8_t kind;
    void* target;
    TimeMs deadline;
    uint64_t seq;
  };
  std::vector<Armed> ListArmed() const;
  const std::vector<TimerId>& free_ids() const { return free_; }
  size_t slot_count() const { return slots_.size(); }
  uint64_t next_seq() const { return next_seq_; }
  // Replaces the queue with a saved one; false (and the queue left empty) when it cannot be one:
  // an id out of range or used twice, a heap out of order, a sequence not above every entry's.
  bool Restore(size_t slot_count, const std::vector<Armed>& heap, std::vector<TimerId> free,
               uint64_t next_seq);

 private:
  struct Entry {
    TimeMs deadline;
    uint64_t seq;
    TimerId id;
  };
  struct Slot {
    void* target = nullptr;
    uint32_t heap_pos = 0;
    uint8_t kind = 0;
  };

  static bool Before(const Entry& a, const Entry& b) {
    return a.deadline < b.deadline || (a.deadline == b.deadline && a.seq < b.seq);
  }
  void Place(uint32_t pos, const Entry& e) {
    heap_[pos] = e;
    slots_[e.id].heap_pos = pos;
  }
  void SiftUp(uint32_t pos);
  void SiftDown(uint32_t pos);
  void RemoveAt(uint32_t pos);

  std::vector<Slot> slots_;  // indexed by TimerId; slot 0 unused
  std::vector<TimerId> free_;
  std::vector<Entry> heap_;
  uint64_t next_seq_ = 0;
};

}  // namespace presenced::engine
