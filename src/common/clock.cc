// SystemClock, SteadyClock and ManualClock (clock.h); thread-safe.
#include "common/clock.h"

#include <chrono>

namespace presenced {

TimeMs SystemClock::NowMs() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

TimeMs SteadyClock::NowMs() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace presenced
