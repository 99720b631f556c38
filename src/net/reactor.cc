#include "net/reactor.h"

#include <array>
#include <boost/asio.hpp>
#include <utility>

#include "net/reactor_impl.h"

namespace presenced::net {

namespace asio = boost::asio;

namespace {

// The descriptor's Asio state lives in a shared block that pending operations keep alive, so a
// watch destroyed (by a callback, even) while an operation is pending is safe: the operation
// completes as aborted and finds `alive` false.
struct WatchState {
  WatchState(const asio::any_io_executor& ex, int fd, Reactor::FdCallbacks cb)
      : descriptor(ex, fd), callbacks(std::move(cb)) {}
  asio::posix::stream_descriptor descriptor;
  Reactor::FdCallbacks callbacks;
  std::array<char, 16 * 1024> buffer{};
  bool alive = true;
  bool reading = false;
  bool write_wait = false;
};

class AsioFdWatch final : public Reactor::FdWatch {
 public:
  AsioFdWatch(const asio::any_io_executor& ex, int fd, Reactor::FdCallbacks cb)
      : state_(std::make_shared<WatchState>(ex, fd, std::move(cb))) {}
  ~AsioFdWatch() override {
    state_->alive = false;
    // The owner closes the descriptor: Asio forgets it (and aborts the pending operations).
    state_->descriptor.release();
  }

  // Reading uses async_read_some, which Asio attempts at once and re-attempts on readiness, so
  // no edge of the edge-triggered epoll is ever missed (an async_wait would wait for the next).
  void StartReading() override {
    if (state_->reading) return;
    state_->reading = true;
    ReadSome(state_);
  }

  // A write readiness wait: used only when a write can't proceed (connect in progress, or the
  // kernel's buffer full), so the edge it waits for is still to come.
  void WaitWritable() override {
    if (state_->write_wait) return;
    state_->write_wait = true;
    state_->descriptor.async_wait(asio::posix::descriptor_base::wait_write,
                                  [s = state_](boost::system::error_code ec) {
                                    s->write_wait = false;
                                    if (!s->alive || ec == asio::error::operation_aborted) return;
                                    if (s->callbacks.writable) s->callbacks.writable();
                                  });
  }

 private:
  static void ReadSome(const std::shared_ptr<WatchState>& s) {
    s->descriptor.async_read_some(asio::buffer(s->buffer),
                                  [s](boost::system::error_code ec, size_t n) {
                                    if (!s->alive) return;
                                    if (n > 0 && s->callbacks.read) {
                                      s->callbacks.read({s->buffer.data(), n});
                                      if (!s->alive) return;
                                    }
                                    if (ec) {
                                      s->reading = false;
                                      if (s->callbacks.read_end) s->callbacks.read_end();
                                      return;
                                    }
                                    ReadSome(s);
                                  });
  }

  std::shared_ptr<WatchState> state_;
};

struct TimerState {
  explicit TimerState(const asio::any_io_executor& ex, std::function<void()> f)
      : timer(ex), fire(std::move(f)) {}
  asio::steady_timer timer;
  std::function<void()> fire;
  uint64_t armed = 0;  // arming count: a wait that completes after a re-arm or cancel does nothing
};

class AsioTimer final : public Reactor::Timer {
 public:
  AsioTimer(const asio::any_io_executor& ex, std::function<void()> fire)
      : state_(std::make_shared<TimerState>(ex, std::move(fire))) {}
  ~AsioTimer() override { Cancel(); }
  void Arm(std::chrono::milliseconds delay) override {
    const uint64_t arming = ++state_->armed;
    state_->timer.expires_after(delay);
    state_->timer.async_wait([s = state_, arming](boost::system::error_code ec) {
      if (ec || arming != s->armed) return;
      s->fire();
    });
  }
  void Cancel() override {
    ++state_->armed;
    state_->timer.cancel();
  }

 private:
  std::shared_ptr<TimerState> state_;
};

}  // namespace

std::unique_ptr<Reactor::FdWatch> AsioReactor::Watch(int fd, FdCallbacks callbacks) {
  return std::make_unique<AsioFdWatch>(executor_, fd, std::move(callbacks));
}

std::unique_ptr<Reactor::Timer> AsioReactor::MakeTimer(std::function<void()> fire) {
  return std::make_unique<AsioTimer>(executor_, std::move(fire));
}

void AsioReactor::Post(std::function<void()> task) { asio::post(executor_, std::move(task)); }

struct EventLoop::Impl {
  asio::io_context ioc{1};
  // The loop never runs out of work: RunUntil waits for its deadline, not for the last handler.
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  AsioReactor reactor{ioc.get_executor()};
};

EventLoop::EventLoop() : impl_(std::make_unique<Impl>()) {}
EventLoop::~EventLoop() = default;

Reactor& EventLoop::reactor() { return impl_->reactor; }

bool EventLoop::RunUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  impl_->ioc.restart();
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    impl_->ioc.run_one_until(deadline);
  }
  return true;
}

void EventLoop::RunFor(std::chrono::milliseconds duration) {
  impl_->ioc.restart();
  impl_->ioc.run_for(duration);
}

}  // namespace presenced::net
