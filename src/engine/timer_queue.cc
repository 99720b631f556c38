// TimerQueue (timer_queue.h): the engine's indexed deadline heap; the engine's thread.
#include "engine/timer_queue.h"

#include <cassert>

namespace presenced::engine {

TimerQueue::TimerQueue() { slots_.resize(1); }

TimerQueue::TimerId TimerQueue::Add(TimeMs deadline, uint8_t kind, void* target) {
  TimerId id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    id = static_cast<TimerId>(slots_.size());
    slots_.emplace_back();
  }
  slots_[id].target = target;
  slots_[id].kind = kind;
  heap_.emplace_back();
  Place(static_cast<uint32_t>(heap_.size() - 1), Entry{deadline, next_seq_++, id});
  SiftUp(static_cast<uint32_t>(heap_.size() - 1));
  return id;
}

void TimerQueue::Move(TimerId id, TimeMs deadline) {
  assert(id != kNoTimer && id < slots_.size());
  uint32_t pos = slots_[id].heap_pos;
  Entry e{deadline, next_seq_++, id};
  bool earlier = Before(e, heap_[pos]);
  heap_[pos] = e;
  if (earlier) {
    SiftUp(pos);
  } else {
    SiftDown(pos);
  }
}

void TimerQueue::Cancel(TimerId id) {
  assert(id != kNoTimer && id < slots_.size());
  RemoveAt(slots_[id].heap_pos);
  slots_[id].target = nullptr;
  free_.push_back(id);
}

std::optional<TimerQueue::Due> TimerQueue::PopDue(TimeMs now) {
  if (heap_.empty() || heap_[0].deadline > now) return std::nullopt;
  const Entry top = heap_[0];
  Due due{top.id, slots_[top.id].kind, slots_[top.id].target, top.deadline};
  Cancel(top.id);
  return due;
}

std::optional<TimeMs> TimerQueue::NextDeadline() const {
  if (heap_.empty()) return std::nullopt;
  return heap_[0].deadline;
}

std::vector<TimerQueue::Armed> TimerQueue::ListArmed() const {
  std::vector<Armed> out;
  out.reserve(heap_.size());
  for (const Entry& e : heap_) {
    out.push_back(Armed{e.id, slots_[e.id].kind, slots_[e.id].target, e.deadline, e.seq});
  }
  return out;
}

bool TimerQueue::Restore(size_t slot_count, const std::vector<Armed>& heap,
                         std::vector<TimerId> free, uint64_t next_seq) {
  *this = TimerQueue();
  std::vector<bool> used(slot_count, false);
  bool fine = slot_count >= 1 && heap.size() + free.size() + 1 == slot_count;
  for (size_t i = 0; fine && i < heap.size(); ++i) {
    const Armed& a = heap[i];
    fine = a.id != kNoTimer && a.id < slot_count && !used[a.id] && a.seq < next_seq &&
           (i == 0 || !Before(Entry{a.deadline, a.seq, a.id},
                              Entry{heap[(i - 1) / 2].deadline, heap[(i - 1) / 2].seq, 0}));
    if (fine) used[a.id] = true;
  }
  for (TimerId id : free) {
    if (!fine) break;
    fine = id != kNoTimer && id < slot_count && !used[id];
    if (fine) used[id] = true;
  }
  if (!fine) return false;
  slots_.resize(slot_count);
  heap_.reserve(heap.size());
  for (const Armed& a : heap) {
    slots_[a.id].target = a.target;
    slots_[a.id].kind = a.kind;
    heap_.emplace_back();
    Place(static_cast<uint32_t>(heap_.size() - 1), Entry{a.deadline, a.seq, a.id});
  }
  free_ = std::move(free);
  next_seq_ = next_seq;
  return true;
}

void TimerQueue::SiftUp(uint32_t pos) {
  Entry e = heap_[pos];
  while (pos > 0) {
    uint32_t parent = (pos - 1) / 2;
    if (!Before(e, heap_[parent])) break;
    Place(pos, heap_[parent]);
    pos = parent;
  }
  Place(pos, e);
}

void TimerQueue::SiftDown(uint32_t pos) {
  Entry e = heap_[pos];
  const uint32_t n = static_cast<uint32_t>(heap_.size());
  while (true) {
    uint32_t child = 2 * pos + 1;
    if (child >= n) break;
    if (child + 1 < n && Before(heap_[child + 1], heap_[child])) ++child;
    if (!Before(heap_[child], e)) break;
    Place(pos, heap_[child]);
    pos = child;
  }
  Place(pos, e);
}

void TimerQueue::RemoveAt(uint32_t pos) {
  const uint32_t last = static_cast<uint32_t>(heap_.size() - 1);
  if (pos != last) {
    Entry moved = heap_[last];
    heap_.pop_back();
    bool earlier = Before(moved, heap_[pos]);
    Place(pos, moved);
    if (earlier) {
      SiftUp(pos);
    } else {
      SiftDown(pos);
    }
  } else {
    heap_.pop_back();
  }
}

}  // namespace presenced::engine
