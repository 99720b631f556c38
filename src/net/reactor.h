// The network layer's Reactor (common/reactor.h) and a loop of its own for tools and tests.
//
// Server::WorkReactor() (net/server.h) is the reactor of the server's work loop: what runs on it
// runs where the presence work runs. EventLoop is one Asio loop run by the thread that calls its
// Run methods, with nothing else on it (the Redis client's tests run on one).
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "common/reactor.h"

namespace presenced::net {

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  Reactor& reactor();
  // Runs the loop on the calling thread until `done()` is true (checked after each handler) or
  // `timeout` has passed; returns done().
  bool RunUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout);
  // Runs the loop on the calling thread for `duration`.
  void RunFor(std::chrono::milliseconds duration);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace presenced::net
