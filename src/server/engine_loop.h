// EngineLoop: the thread that owns the Dispatcher (and through it the Engine). Other threads hand
// it work with Post(); it runs tasks in order and calls Tick() at the engine's next deadline.
//
// The inbox is the one place where threads meet, so it is a mutex-guarded queue: message passing
// needs some queue, and a short critical section around a swap is the simplest correct one.
#pragma once

#include <chrono>
#include <functional>
#include <vector>

#include "common/clock.h"
#include "common/thread_annotations.h"

namespace presenced::protocol {
class Dispatcher;
}  // namespace presenced::protocol

namespace presenced::server {

// Write coalescing under bursts (see Run).
struct LoopOptions {
  // A round that leaves at least `coalesce_frames` frames queued right after the previous flush is
  // held until `coalesce_window_us` after it, so each socket gets one write carrying many frames.
  int64_t coalesce_window_us = 1000;
  int64_t coalesce_frames = 256;
};

class EngineLoop {
 public:
  EngineLoop(protocol::Dispatcher& dispatcher, const Clock& clock, LoopOptions options = {})
      : dispatcher_(dispatcher), clock_(clock), options_(options) {}

  // Thread-safe. Tasks posted after Run has returned are dropped (destroyed at once).
  void Post(std::function<void()> task);
  // Runs until Stop(); call on the engine thread.
  void Run();
  // Thread-safe; Run returns after the tasks already posted.
  void Stop();

 private:
  protocol::Dispatcher& dispatcher_;
  const Clock& clock_;
  const LoopOptions options_;
  Mutex mu_;
  CondVar wake_;
  std::vector<std::function<void()>> inbox_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  bool stopped_ GUARDED_BY(mu_) = false;  // Run has returned: Post drops tasks
};

}  // namespace presenced::server
