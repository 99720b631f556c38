// EngineLoop (engine_loop.h): the engine's rounds on the network's loop.
#include "server/engine_loop.h"

#include <algorithm>
#include <chrono>

#include "protocol/dispatcher.h"

namespace presenced::server {

void EngineLoop::Attach(TaskLoop& loop) {
  std::vector<std::function<void()>> early;
  {
    MutexLock lock(mu_);
    loop_.store(&loop, std::memory_order_release);
    early.swap(before_attach_);
  }
  last_flush_ =
      std::chrono::steady_clock::now() - std::chrono::microseconds(options_.coalesce_window_us);
  loop.SetWake([this] {
    wake_armed_ = false;
    Round();
  });
  for (auto& task : early) {
    loop.Post([this, task = std::move(task)]() mutable { Enqueue(std::move(task)); });
  }
}

void EngineLoop::Post(std::function<void()> task) {
  // On the loop (a session's message on the one I/O thread, a task queuing another): straight
  // into the round, no lock, no hand-off.
  if (TaskLoop* loop = loop_.load(std::memory_order_acquire); loop && loop->InLoop()) {
    if (stopped_fast_.load(std::memory_order_relaxed)) return;
    Enqueue(std::move(task));
    return;
  }
  MutexLock lock(mu_);
  // After Stop nothing reaches the loop any more: the task is dropped here, on the caller's
  // thread, while whatever it holds (a session) is still valid.
  if (stopped_) return;
  TaskLoop* loop = loop_.load(std::memory_order_relaxed);
  if (!loop) {
    before_attach_.push_back(std::move(task));
    return;
  }
  loop->Post([this, task = std::move(task)]() mutable { Enqueue(std::move(task)); });
}

void EngineLoop::Stop() {
  MutexLock lock(mu_);
  stopped_ = true;
  stopped_fast_.store(true, std::memory_order_relaxed);
  before_attach_.clear();
}

void EngineLoop::Enqueue(std::function<void()> task) {
  tasks_.push_back(std::move(task));
  if (round_posted_) return;
  round_posted_ = true;
  // Posted behind the handlers already ready (the other sockets' reads of this pass), so their
  // messages join this round and every socket gets one write for all of them.
  loop_.load(std::memory_order_relaxed)->Post([this] { Round(); });
}

void EngineLoop::Round() {
  round_posted_ = false;
  running_.swap(tasks_);
  for (auto& task : running_) task();
  running_.clear();
  dispatcher_.Tick();
  // A round that queued few frames goes out at once (no added latency at ordinary load). A
  // burst (a join storm: one event to thousands of subscribers per round) right after the
  // previous flush is held for the rest of the window, so each socket gets one write carrying
  // many frames instead of one write per event.
  const size_t pending = dispatcher_.pending_frames();
  const auto now = std::chrono::steady_clock::now();
  if (pending > 0 &&
      (pending < static_cast<size_t>(options_.coalesce_frames) || now - last_flush_ >= Hold())) {
    dispatcher_.FlushOutbound();
    // The hold counts from the flush's end and lasts at least as long as the flush took: on one
    // thread the writes are part of the flush, so in a burst at most half the time goes to
    // writing, and a longer flush is followed by a fuller one (one write per socket for all the
    // events of the hold), not by one write per event.
    const auto end = std::chrono::steady_clock::now();
    last_flush_took_ = end - now;
    last_flush_ = end;
  }
  ArmWake();
}

std::chrono::steady_clock::duration EngineLoop::Hold() const {
  return std::max<std::chrono::steady_clock::duration>(
      std::chrono::microseconds(options_.coalesce_window_us), last_flush_took_);
}

void EngineLoop::ArmWake() {
  using std::chrono::microseconds;
  using Steady = std::chrono::steady_clock;
  const auto now = Steady::now();
  std::optional<Steady::time_point> when;
  // A burst is being held back: flush at the end of the window (or earlier, with more work).
  if (dispatcher_.pending_frames() > 0) {
    when = last_flush_ + Hold();
  }
  if (auto deadline = dispatcher_.NextDeadline()) {
    const auto at = now + microseconds(std::max<TimeMs>(0, *deadline - clock_.NowMs()) * 1000);
    when = when ? std::min(*when, at) : at;
  }
  // Re-arming a timer costs a cancelled wait, so it is done only when the wake-up must come
  // earlier; one that comes too early (or for nothing) is a round with no work, which re-arms.
  if (!when || (wake_armed_ && armed_for_ <= *when)) return;
  wake_armed_ = true;
  armed_for_ = *when;
  loop_.load(std::memory_order_relaxed)
      ->WakeAfter(std::max(microseconds(0), std::chrono::duration_cast<microseconds>(*when - now)));
}

}  // namespace presenced::server
