// Private to src/net: what the listener (server.cc), the HTTP phase (http_session.cc) and the
// WebSocket phase (websocket_session.cc) share. Server::Impl holds the options, the service, the
// clock, the counters, the io_context, the TLS context (tls.h) and the registry of live
// connections.
//
// Threading: Impl's fields are set before Run and then only read, except the atomics, the
// registry (guarded by `mu`) and the TLS context (the acceptor's strand). Each connection runs on
// its own strand; the acceptor on its own.
#pragma once

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/task_loop.h"
#include "common/thread_annotations.h"
#include "common/timer_wheel.h"
#include "net/reactor_impl.h"
#include "net/server.h"

namespace boost::asio::ssl {
class context;  // tls.h: only the files that make TLS streams include Asio's SSL headers
}  // namespace boost::asio::ssl

namespace presenced::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

// A live connection, as the registry sees it. Every method is thread-safe: it posts to the
// connection's strand (and does nothing once the connection is gone). The registry calls them
// with its mutex held, and a connection unregisters itself as it is destroyed, so they move their
// strong reference into the posted handler: the last one is never dropped under that mutex.
class Connection {
 public:
  virtual ~Connection() = default;
  // Closes the socket at once (Server::Stop).
  virtual void PostCut() = 0;
  // Ends the connection if it has not become a WebSocket (graceful shutdown).
  virtual void PostCutIfHttp() = 0;
  // Re-checks heartbeat and close deadlines against the clock (Server::CheckDeadlines).
  virtual void PostCheckDeadlines() = 0;
  // The I/O threads have stopped for good (~Server): drops what keeps the connection alive, so
  // it is destroyed with the handlers that still hold it. Called with no thread running.
  virtual void Abandon() {}
};

// A session's place on the server's timer wheel (Server::Impl::ScheduleDeadline).
class WheelEntry : public TimerWheel::Entry {
 public:
  virtual ~WheelEntry() = default;
  // Under the wheel's lock, when the entry fired: a strong reference to its owner (null when the
  // owner is being destroyed: nothing is done).
  virtual std::shared_ptr<void> Retain() = 0;
  // Then, outside the lock, on the I/O thread that ticked, with that reference held.
  virtual void Fired() = 0;
};

// One accepted socket counted against its limit (open_sockets or over_cap_sockets); released
// when the slot is destroyed. Moves with the socket from the HTTP to the WebSocket session.
class SocketSlot {
 public:
  SocketSlot() = default;
  explicit SocketSlot(std::atomic<size_t>& counter) : counter_(&counter) {
    counter_->fetch_add(1, std::memory_order_relaxed);
  }
  SocketSlot(SocketSlot&& other) noexcept : counter_(std::exchange(other.counter_, nullptr)) {}
  SocketSlot& operator=(SocketSlot&& other) noexcept {
    if (this != &other) {
      Release();
      counter_ = std::exchange(other.counter_, nullptr);
    }
    return *this;
  }
  ~SocketSlot() { Release(); }

 private:
  void Release() {
    if (counter_) counter_->fetch_sub(1, std::memory_order_relaxed);
    counter_ = nullptr;
  }
  std::atomic<size_t>* counter_ = nullptr;
};

// The TaskLoop handed out by Server::WorkLoop: with one I/O thread, the io_context itself (its
// handlers never run concurrently); with several, a strand over them. The wake-up is a timer on
// the same executor.
class AsioTaskLoop final : public TaskLoop {
 public:
  AsioTaskLoop(asio::io_context& ioc, int threads);
  void Post(std::function<void()> task) override;
  bool InLoop() const override;
  void SetWake(std::function<void()> wake) override { wake_ = std::move(wake); }
  void WakeAfter(std::chrono::microseconds delay) override;
  void CancelWake() override;
  // Where the loop's tasks run: the io_context itself with one thread, else the strand.
  asio::any_io_executor executor() const {
    return single_ ? asio::any_io_executor(ioc_.get_executor()) : asio::any_io_executor(strand_);
  }

 private:
  asio::io_context& ioc_;
  const bool single_;  // one I/O thread: no strand
  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer timer_;
  std::function<void()> wake_;
  uint64_t armed_ = 0;  // arming count: a cancelled wait that completes late does nothing
};

// The number of I/O threads: NetOptions::io_threads, or one per usable CPU.
int IoThreads(const NetOptions& options);

class Server::Impl {
 public:
  Impl(NetOptions options, Service& service, const Clock& clock)
      : options(std::move(options)),
        service(service),
        clock(clock),
        io_threads(IoThreads(this->options)),
        wheel_tick_ms(std::clamp<TimeMs>(this->options.heartbeat_ms / 8, 5, 50)),
        wheel(wheel_tick_ms, 1024, clock.NowMs()),
        ioc(io_threads),
        task_loop(ioc, io_threads),
        work_reactor(task_loop.executor()),
        acceptor(asio::make_strand(ioc)),
        accept_retry(acceptor.get_executor()),
        wheel_timer(acceptor.get_executor()),
        signals(ioc),
        hangup_signals(ioc) {}

  void Accept();
  // Every session deadline (heartbeat, silence, drain, close) is one entry on one wheel, ticked
  // by one timer: no timer (and no pending timer operation) per connection.
  void ScheduleDeadline(WheelEntry& e, TimeMs deadline) LOCKS_EXCLUDED(wheel_mu);
  void CancelDeadline(WheelEntry& e) LOCKS_EXCLUDED(wheel_mu);
  void StartWheel();
  void Register(Connection* c) LOCKS_EXCLUDED(mu);
  void Unregister(Connection* c) LOCKS_EXCLUDED(mu);

  const NetOptions options;
  Service& service;
  const Clock& clock;
  const int io_threads;
  // What connections touch as they are destroyed is declared before the io_context, so it
  // outlives the handlers (and connections) the io_context destroys.
  Counters counters;
  std::atomic<uint64_t> next_session{1};
  std::atomic<size_t> open_sockets{0};
  std::atomic<size_t> over_cap_sockets{0};  // accepted beyond max_connections (see NetOptions)
  std::string busy_response;  // the whole 503 for sockets beyond the over-cap allowance (Listen)
  // Connections are created and end on many strands; the set is only touched on creation, end,
  // shutdown and CheckDeadlines, so a mutex is simpler than routing those through a strand.
  Mutex mu;
  CondVar all_gone;
  std::unordered_set<Connection*> connections GUARDED_BY(mu);
  std::vector<std::thread> threads;
  // The wheel's tick: NetOptions::heartbeat_ms / 8, between 5 and 50 ms (deadlines fire at most
  // one tick late).
  const TimeMs wheel_tick_ms;
  Mutex wheel_mu;
  TimerWheel wheel GUARDED_BY(wheel_mu);

  // The concurrency hint is the thread count: with one thread, Asio queues handlers posted from
  // that thread without a lock or a wake-up.
  asio::io_context ioc;
  AsioTaskLoop task_loop;
  AsioReactor work_reactor;  // the work loop's (Server::WorkReactor)
  tcp::acceptor acceptor;    // on its own strand: accept handlers and close() never race
  asio::steady_timer accept_retry;
  asio::steady_timer wheel_timer;   // on the acceptor's strand
  asio::signal_set signals;         // SIGINT, SIGTERM (OnSignal)
  asio::signal_set hangup_signals;  // SIGHUP (OnHangup)
  // The context TLS connections are made with (NetOptions::tls_cert; null: plain TCP). Set by
  // Listen, then read and replaced (ReloadTls) only on the acceptor's strand; each connection
  // keeps the one it was made with.
  std::shared_ptr<asio::ssl::context> tls_context;
};

// A server ping frame (empty payload).
inline constexpr std::string_view kPingFrame("\x89\x00", 2);

// The I/O thread's read buffer (NetOptions::read_buffer_bytes): sessions read into it and keep
// only what they must.
inline asio::mutable_buffer ReadBuffer(size_t bytes) {
  thread_local std::vector<char> buf;
  if (buf.size() != bytes) buf.resize(bytes);
  return asio::buffer(buf);
}

// Starts the HTTP phase of an accepted socket (http_session.cc). `over_cap`: accepted beyond
// max_connections (one request, healthz only).
void StartHttpSession(tcp::socket socket, Server::Impl& server, SocketSlot slot, bool over_cap);
// The same over TLS with `context`: the TLS handshake first, bounded like a request.
void StartTlsHttpSession(tcp::socket socket, std::shared_ptr<asio::ssl::context> context,
                         Server::Impl& server, SocketSlot slot, bool over_cap);
// Why a session ends when its frame reader fails with close `code` (1007, 1009, else 1002).
CloseCause CauseOfReaderError(uint16_t code);

// What the HTTP phase hands to the WebSocket phase at a successful upgrade. Stream is the
// connection's: a tcp::socket, or a TlsStream (tls.h).
template <class Stream>
struct UpgradedSocket {
  Stream socket;
  SocketSlot slot;
  std::string early_bytes;  // read together with the upgrade request: the first frames
  std::string handshake;    // the 101 response, sent with the first write
  Upgrade upgrade;
};

// Starts the WebSocket phase (websocket_session.cc, for both streams); call on the socket's
// strand.
template <class Stream>
void StartWebSocketSession(UpgradedSocket<Stream> upgraded, Server::Impl& server);

}  // namespace presenced::net
