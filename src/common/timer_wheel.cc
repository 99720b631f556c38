// TimerWheel (timer_wheel.h).
#include "common/timer_wheel.h"

#include <algorithm>
#include <bit>

namespace presenced {

TimerWheel::TimerWheel(TimeMs tick_ms, size_t slots, TimeMs now)
    : tick_ms_(std::max<TimeMs>(tick_ms, 1)),
      slots_(std::bit_ceil(std::max<size_t>(slots, 2)), nullptr),
      mask_(slots_.size() - 1),
      cursor_(now / tick_ms_) {}

TimerWheel::~TimerWheel() {
  for (Entry* head : slots_) {
    for (Entry* e = head; e;) {
      Entry* next = e->next_;
      e->wheel_ = nullptr;
      e->prev_ = e->next_ = nullptr;
      e = next;
    }
  }
}

uint32_t TimerWheel::SlotOf(TimeMs deadline) const {
  // The deadline's own tick, or the cursor's for one already looked at: Advance looks at the
  // cursor's slot again each time, so an entry fires at the first Advance at or after it.
  const int64_t tick = std::max<int64_t>(deadline / tick_ms_, cursor_);
  return static_cast<uint32_t>(static_cast<uint64_t>(tick) & mask_);
}

void TimerWheel::Link(Entry& e, uint32_t slot) {
  e.wheel_ = this;
  e.slot_ = slot;
  e.prev_ = nullptr;
  e.next_ = slots_[slot];
  if (e.next_) e.next_->prev_ = &e;
  slots_[slot] = &e;
  ++size_;
}

void TimerWheel::Unlink(Entry& e) {
  if (e.prev_) {
    e.prev_->next_ = e.next_;
  } else {
    slots_[e.slot_] = e.next_;
  }
  if (e.next_) e.next_->prev_ = e.prev_;
  e.prev_ = e.next_ = nullptr;
  e.wheel_ = nullptr;
  --size_;
}

void TimerWheel::Schedule(Entry& e, TimeMs deadline) {
  const uint32_t slot = SlotOf(deadline);
  if (e.wheel_ == this && e.slot_ == slot) {
    e.deadline_ = deadline;  // same slot: nothing to relink
    return;
  }
  if (e.wheel_) e.wheel_->Unlink(e);
  e.deadline_ = deadline;
  Link(e, slot);
}

void TimerWheel::Cancel(Entry& e) {
  if (e.wheel_ == this) Unlink(e);
}

}  // namespace presenced
