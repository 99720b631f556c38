// EngineLoop: runs the Dispatcher (and through it the Engine) in rounds on a TaskLoop, the
// network's own loop (net::Server::WorkLoop): with one I/O thread the presence work runs on the
// thread that reads and writes the sockets, so a request is handled where it arrived, without a
// hand-off between threads. With several I/O threads it runs on a strand over them.
//
// A round runs every task posted since the previous one, then the engine's due deadlines (Tick),
// then hands each session its frames once (Dispatcher::FlushOutbound). Work posted on the loop
// joins the round already scheduled; the round runs after the handlers that are ready, so the
// messages read in one pass over the sockets are answered with one write per socket.
//
// Threading: Post and Stop are thread-safe; everything else runs on the loop. Posts from the loop
// itself take no lock; from other threads (the store's, the shutdown's, other I/O threads) they
// take a mutex around the hand-off to the loop, so Stop is a barrier: after it returns no task
// reaches the loop.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <vector>

#include "common/clock.h"
#include "common/task_loop.h"
#include "common/thread_annotations.h"

namespace presenced::protocol {
class Dispatcher;
}  // namespace presenced::protocol

namespace presenced::server {

// Write coalescing under bursts (see Round).
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

  // Runs the rounds on `loop` from now on; tasks posted before wait for it. Call once, before the
  // loop runs.
  void Attach(TaskLoop& loop) LOCKS_EXCLUDED(mu_);
  // Thread-safe. Tasks posted after Stop are dropped (destroyed at once, on the caller's thread).
  void Post(std::function<void()> task) LOCKS_EXCLUDED(mu_);
  // Thread-safe: from now on tasks are dropped; the ones already handed to the loop still run.
  void Stop() LOCKS_EXCLUDED(mu_);

 private:
  void Enqueue(std::function<void()> task);  // on the loop
  void Round();                              // on the loop
  void ArmWake();                            // on the loop
  // How long a burst is held after the previous flush ended (see Round).
  std::chrono::steady_clock::duration Hold() const;

  protocol::Dispatcher& dispatcher_;
  const Clock& clock_;
  const LoopOptions options_;
  Mutex mu_;
  std::vector<std::function<void()>> before_attach_ GUARDED_BY(mu_);
  bool stopped_ GUARDED_BY(mu_) = false;
  // Written under mu_, read without it by Post's fast path (a task posted on the loop).
  std::atomic<TaskLoop*> loop_{nullptr};
  std::atomic<bool> stopped_fast_{false};
  // Loop only.
  std::vector<std::function<void()>> tasks_;
  std::vector<std::function<void()>> running_;
  bool round_posted_ = false;
  std::chrono::steady_clock::time_point last_flush_{};
  std::chrono::steady_clock::duration last_flush_took_{};
  bool wake_armed_ = false;
  std::chrono::steady_clock::time_point armed_for_{};
};

}  // namespace presenced::server
