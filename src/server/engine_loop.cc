// EngineLoop (engine_loop.h): the engine thread, its inbox and its timer.
#include "server/engine_loop.h"

#include <chrono>

#include "protocol/dispatcher.h"

namespace presenced::server {

void EngineLoop::Post(std::function<void()> task) {
  {
    MutexLock lock(mu_);
    // After Stop nothing runs any more: the task is dropped here, on the caller's thread, while
    // whatever it holds (a session) is still valid.
    if (stopped_) return;
    inbox_.push_back(std::move(task));
    // The loop drains the whole inbox each round, so only the first task of a round needs to
    // wake it; later ones ride along (no futex call per message).
    if (inbox_.size() > 1) return;
  }
  wake_.notify_one();
}

void EngineLoop::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
}

void EngineLoop::Run() {
  using Steady = std::chrono::steady_clock;
  const std::chrono::microseconds window(options_.coalesce_window_us);
  const auto coalesce_frames = static_cast<size_t>(options_.coalesce_frames);
  std::vector<std::function<void()>> tasks;
  Steady::time_point last_flush = Steady::now() - window;
  bool stop = false;
  while (!stop) {
    {
      MutexLock lock(mu_);
      auto ready = [&]() EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !inbox_.empty(); };
      if (dispatcher_.pending_frames() > 0) {
        // A burst is being held back (below): more work or the end of the window, whichever
        // comes first.
        wake_.wait_until(mu_, last_flush + window, ready);
      } else if (auto deadline = dispatcher_.NextDeadline()) {
        const TimeMs wait = *deadline - clock_.NowMs();
        if (wait > 0) wake_.wait_for(mu_, std::chrono::milliseconds(wait), ready);
      } else {
        wake_.wait(mu_, ready);
      }
      if (stopping_ && inbox_.empty()) {
        stopped_ = true;
        stop = true;
      }
      tasks.swap(inbox_);
    }
    for (auto& task : tasks) task();
    tasks.clear();
    dispatcher_.Tick();
    // A round that queued few frames goes out at once (no added latency at ordinary load). A
    // burst (a join storm: one event to thousands of subscribers per round) right after the
    // previous flush is held for the rest of the window, so each socket gets one write carrying
    // many frames instead of one write per event.
    const size_t pending = dispatcher_.pending_frames();
    const auto now = Steady::now();
    if (pending > 0 && (stop || pending < coalesce_frames || now - last_flush >= window)) {
      dispatcher_.FlushOutbound();
      last_flush = now;
    }
  }
}

}  // namespace presenced::server
