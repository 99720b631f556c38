// Clock: the single source of time for presenced. SystemClock gives milliseconds since the Unix
// epoch, as on the wire; SteadyClock gives monotonic milliseconds for deadlines and liveness.
//
// Logic that depends on time takes a Clock& so tests can move time with ManualClock instead of
// sleeping. All three are thread-safe: ManualClock may be read on I/O threads while a test moves
// it.
#pragma once

#include <atomic>
#include <cstdint>

namespace presenced {

using TimeMs = int64_t;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeMs NowMs() const = 0;
};

// Wall-clock time (CLOCK_REALTIME), as the wire contract's timestamps require.
class SystemClock final : public Clock {
 public:
  TimeMs NowMs() const override;
};

// Monotonic time (std::chrono::steady_clock) since an arbitrary origin: for timeouts and
// heartbeats, which must not jump when the wall clock is stepped.
class SteadyClock final : public Clock {
 public:
  TimeMs NowMs() const override;
};

// A clock that only moves when told to.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimeMs start) : now_(start) {}
  TimeMs NowMs() const override { return now_.load(std::memory_order_relaxed); }
  void Set(TimeMs now) { now_.store(now, std::memory_order_relaxed); }
  void Advance(TimeMs delta) { now_.fetch_add(delta, std::memory_order_relaxed); }

 private:
  std::atomic<TimeMs> now_;
};

}  // namespace presenced
