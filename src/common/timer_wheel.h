// TimerWheel: one hashed wheel for many deadlines that are mostly moved before they fire (a
// connection's heartbeat, silence and close deadlines), as Netty's HashedWheelTimer and the Linux
// kernel's timer wheel: scheduling, moving and cancelling are O(1) list operations on an entry
// the owner embeds (no allocation, no heap), and each Advance looks at the slots of the ticks it
// passes. A deadline fires at the first Advance at or after it: an owner that advances every
// `tick_ms` fires it less than one tick late.
//
// Pure and single-threaded: the owner calls Advance with its clock's time and guards the wheel
// if several threads touch it. Entries must be cancelled (or fired) before they are destroyed;
// an Entry's destructor unlinks it as a safety net.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "common/clock.h"

namespace presenced {

class TimerWheel {
 public:
  class Entry {
   public:
    Entry() = default;
    ~Entry() {
      if (wheel_) wheel_->Cancel(*this);
    }
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    bool scheduled() const { return wheel_ != nullptr; }
    TimeMs deadline() const { return deadline_; }

   private:
    friend class TimerWheel;
    TimerWheel* wheel_ = nullptr;
    Entry* prev_ = nullptr;
    Entry* next_ = nullptr;
    TimeMs deadline_ = 0;
    uint32_t slot_ = 0;
  };

  // `slots` is rounded up to a power of two. Deadlines before `now` fire at the next Advance.
  TimerWheel(TimeMs tick_ms, size_t slots, TimeMs now);
  ~TimerWheel();
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // Schedules `e` at `deadline`, moving it if it was scheduled.
  void Schedule(Entry& e, TimeMs deadline);
  // Unschedules `e` (nothing if it is not scheduled).
  void Cancel(Entry& e);
  // Fires every entry due at `now`: each is unscheduled, then `fire(entry)` is called. `fire` may
  // schedule or cancel any entry, and destroy the one it was given, but no other entry that is
  // due in the same slot.
  template <typename F>
  void Advance(TimeMs now, F&& fire);

  size_t size() const { return size_; }
  TimeMs tick_ms() const { return tick_ms_; }

 private:
  uint32_t SlotOf(TimeMs deadline) const;
  void Link(Entry& e, uint32_t slot);
  void Unlink(Entry& e);

  const TimeMs tick_ms_;
  std::vector<Entry*> slots_;  // heads of doubly linked lists
  const uint64_t mask_;
  int64_t cursor_;  // the last tick looked at
  size_t size_ = 0;
  std::vector<Entry*> due_;  // Advance's scratch
};

template <typename F>
void TimerWheel::Advance(TimeMs now, F&& fire) {
  const int64_t target = now / tick_ms_;
  if (size_ == 0) {
    cursor_ = std::max(cursor_, target);
    return;
  }
  // A jump of more than a revolution looks at every slot once. The cursor's own slot is looked
  // at again: an entry scheduled there late (deadline already past) must not wait a revolution.
  const int64_t from = std::max(cursor_, target - static_cast<int64_t>(mask_));
  for (int64_t tick = from; tick <= target; ++tick) {
    const auto slot = static_cast<uint32_t>(static_cast<uint64_t>(tick) & mask_);
    // Due entries are taken out first, then fired, so `fire` may schedule and cancel freely.
    due_.clear();
    for (Entry* e = slots_[slot]; e; e = e->next_) {
      if (e->deadline_ <= now) due_.push_back(e);
    }
    for (Entry* e : due_) Unlink(*e);
    cursor_ = std::max(cursor_, tick);
    for (size_t i = 0; i < due_.size(); ++i) fire(*due_[i]);
  }
  cursor_ = std::max(cursor_, target);
}

}  // namespace presenced
