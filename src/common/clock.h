// Clock: the single source of time for presenced. Times are milliseconds since the Unix epoch,
// as on the wire.
//
// Logic that depends on time takes a Clock& so tests can move time with ManualClock instead of
// sleeping. SystemClock is thread-safe; ManualClock is not (tests drive it from one thread).
#pragma once

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

// A clock that only moves when told to.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimeMs start) : now_(start) {}
  TimeMs NowMs() const override { return now_; }
  void Set(TimeMs now) { now_ = now; }
  void Advance(TimeMs delta) { now_ += delta; }

 private:
  TimeMs now_;
};

}  // namespace presenced
