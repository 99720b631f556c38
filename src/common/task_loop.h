// TaskLoop: an event loop another module may run its own work on, without knowing how the loop is
// made. The network layer implements it over its I/O threads (net::Server::TaskLoop), so the
// presence work runs where the sockets are read and written: with one I/O thread, on that thread
// itself, no hand-off between threads on a request's path. A dependency-free header (std only).
#pragma once

#include <chrono>
#include <functional>

namespace presenced {

class TaskLoop {
 public:
  virtual ~TaskLoop() = default;
  // Thread-safe: runs `task` on the loop, after what was posted before it. Tasks are run one at a
  // time, never concurrently with each other or with the wake-up.
  virtual void Post(std::function<void()> task) = 0;
  // Whether the caller runs on the loop, so it may touch what the loop's tasks own.
  virtual bool InLoop() const = 0;
  // Loop only. Sets what the loop's one wake-up runs (once, before the first WakeAfter).
  virtual void SetWake(std::function<void()> wake) = 0;
  // Loop only. (Re)arms the one wake-up to run after `delay`; replaces the previous arming.
  virtual void WakeAfter(std::chrono::microseconds delay) = 0;
  // Loop only. Disarms the wake-up.
  virtual void CancelWake() = 0;
};

}  // namespace presenced
