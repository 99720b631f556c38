// Reactor: file descriptors and timers on an event loop, for a module that speaks a protocol of
// its own over a socket it did not open through the network layer (the Redis client: hiredis
// owns its sockets). The network layer implements it over its Asio loops (net/reactor.h), so
// such a module runs on the server's own event loop: no thread of its own, no Asio in its
// headers. A dependency-free header (std only).
//
// Threading: everything is called on the reactor's loop, and every callback runs there.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string_view>

namespace presenced {

class Reactor {
 public:
  // What a watched descriptor reports.
  struct FdCallbacks {
    // Bytes read from the descriptor (each chunk as it arrives, after StartReading).
    std::function<void(std::string_view bytes)> read;
    // The descriptor has nothing more to read: end of stream or an error. Reading has stopped.
    std::function<void()> read_end;
    // The descriptor can be written (after WaitWritable: once per call).
    std::function<void()> writable;
  };

  // One watched descriptor. Destroying it stops watching and drops any pending callback; the
  // descriptor itself is left open (its owner closes it).
  class FdWatch {
   public:
    virtual ~FdWatch() = default;
    // Reads whatever arrives, until read_end or destruction.
    virtual void StartReading() = 0;
    // One `writable` callback once the descriptor can be written: a connect completed, or the
    // kernel's buffer, found full by a write, has room again.
    virtual void WaitWritable() = 0;
  };

  // One timer. Destroying it cancels it.
  class Timer {
   public:
    virtual ~Timer() = default;
    // (Re)arms the timer to fire once after `delay`; replaces an earlier arming.
    virtual void Arm(std::chrono::milliseconds delay) = 0;
    virtual void Cancel() = 0;
  };

  virtual ~Reactor() = default;
  virtual std::unique_ptr<FdWatch> Watch(int fd, FdCallbacks callbacks) = 0;
  virtual std::unique_ptr<Timer> MakeTimer(std::function<void()> fire) = 0;
  // Runs `task` on the loop later (never inside the caller). Thread-safe.
  virtual void Post(std::function<void()> task) = 0;
};

}  // namespace presenced
