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
#include "protocol/dispatcher.h"

namespace presenced::server {

class EngineLoop {
 public:
  EngineLoop(protocol::Dispatcher& dispatcher, const Clock& clock)
      : dispatcher_(dispatcher), clock_(clock) {}

  // Thread-safe. Tasks posted after Run has returned are dropped (destroyed at once).
  void Post(std::function<void()> task);
  // Runs until Stop(); call on the engine thread.
  void Run();
  // Thread-safe; Run returns after the tasks already posted.
  void Stop();

 private:
  // Write coalescing under bursts (see Run).
  static constexpr std::chrono::microseconds kCoalesceWindow{1000};
  static constexpr size_t kCoalesceFrames = 256;

  protocol::Dispatcher& dispatcher_;
  const Clock& clock_;
  Mutex mu_;
  CondVar wake_;
  std::vector<std::function<void()>> inbox_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  bool stopped_ GUARDED_BY(mu_) = false;  // Run has returned: Post drops tasks
};

}  // namespace presenced::server
