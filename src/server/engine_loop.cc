#include "server/engine_loop.h"

#include <chrono>

namespace presenced::server {

void EngineLoop::Post(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
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
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
}

void EngineLoop::Run() {
  std::vector<std::function<void()>> tasks;
  while (true) {
    {
      std::unique_lock lock(mu_);
      auto ready = [&] { return stopping_ || !inbox_.empty(); };
      if (auto deadline = dispatcher_.NextDeadline()) {
        const TimeMs wait = *deadline - clock_.NowMs();
        if (wait > 0) wake_.wait_for(lock, std::chrono::milliseconds(wait), ready);
      } else {
        wake_.wait(lock, ready);
      }
      if (stopping_ && inbox_.empty()) {
        stopped_ = true;
        return;
      }
      tasks.swap(inbox_);
    }
    for (auto& task : tasks) task();
    tasks.clear();
    dispatcher_.Tick();
    dispatcher_.FlushOutbound();
  }
}

}  // namespace presenced::server
