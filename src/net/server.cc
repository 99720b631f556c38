// The listener: Server and Server::Impl. Owns the acceptor (on its own strand), the connection
// caps, the signal sets, the TLS context (tls.h), the I/O threads and the registry of live
// connections; each accepted socket starts as an HttpSession (http_session.cc; over TLS with the
// context of the moment), which hands upgraded sockets to a WebSocketSession
// (websocket_session.cc).
//
// Threading: accept handlers run on the acceptor's strand; Server's methods may be called from
// any thread (Run blocks on the calling thread, which becomes an I/O thread).
#include "net/server.h"

#include <algorithm>
#include <boost/beast/core.hpp>
#include <fstream>

#include "common/cpu.h"
#include "net/server_impl.h"
#include "net/tls.h"
#include "net/ws_codec.h"

namespace presenced::net {

int IoThreads(const NetOptions& options) {
  // The process's CPUs (affinity, cgroup quota), not the host's.
  return options.io_threads > 0 ? options.io_threads : UsableCpus();
}

AsioTaskLoop::AsioTaskLoop(asio::io_context& ioc, int threads)
    : ioc_(ioc), single_(threads <= 1), strand_(asio::make_strand(ioc)), timer_(strand_) {}

void AsioTaskLoop::Post(std::function<void()> task) {
  if (single_) {
    asio::post(ioc_, std::move(task));
  } else {
    asio::post(strand_, std::move(task));
  }
}

bool AsioTaskLoop::InLoop() const {
  return single_ ? ioc_.get_executor().running_in_this_thread() : strand_.running_in_this_thread();
}

void AsioTaskLoop::WakeAfter(std::chrono::microseconds delay) {
  const uint64_t arming = ++armed_;
  timer_.expires_after(delay);
  timer_.async_wait([this, arming](beast::error_code ec) {
    if (ec || arming != armed_ || !wake_) return;
    wake_();
  });
}

void AsioTaskLoop::CancelWake() {
  ++armed_;
  timer_.cancel();
}

void Server::Impl::ScheduleDeadline(WheelEntry& e, TimeMs deadline) {
  MutexLock lock(wheel_mu);
  wheel.Schedule(e, deadline);
}

void Server::Impl::CancelDeadline(WheelEntry& e) {
  MutexLock lock(wheel_mu);
  wheel.Cancel(e);
}

void Server::Impl::StartWheel() {
  wheel_timer.expires_after(std::chrono::milliseconds(wheel_tick_ms));
  wheel_timer.async_wait([this](beast::error_code ec) {
    if (ec) return;
    std::vector<std::pair<WheelEntry*, std::shared_ptr<void>>> due;
    {
      MutexLock lock(wheel_mu);
      wheel.Advance(clock.NowMs(), [&](TimerWheel::Entry& e) {
        auto& entry = static_cast<WheelEntry&>(e);
        if (auto keep = entry.Retain()) due.emplace_back(&entry, std::move(keep));
      });
    }
    for (auto& [entry, keep] : due) entry->Fired();
    StartWheel();
  });
}

void Server::Impl::Register(Connection* c) {
  MutexLock lock(mu);
  connections.insert(c);
}

void Server::Impl::Unregister(Connection* c) {
  MutexLock lock(mu);
  if (connections.erase(c) > 0 && connections.empty()) all_gone.notify_all();
}

void Server::Impl::Accept() {
  // A socket's handlers run on its own strand; with one I/O thread nothing runs concurrently, so
  // the io_context itself serves (no strand per connection, no lock per handler).
  asio::any_io_executor executor = io_threads == 1 ? asio::any_io_executor(ioc.get_executor())
                                                   : asio::any_io_executor(asio::make_strand(ioc));
  acceptor.async_accept(executor, [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      // Out of file descriptors or similar: retry after a pause instead of spinning.
      accept_retry.expires_after(std::chrono::milliseconds(100));
      accept_retry.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec) Accept();
      });
      return;
    }
    bool over_cap = false;
    if (open_sockets.load(std::memory_order_relaxed) >= options.max_connections) {
      // Over the limit. A few sockets may still send one request with a short deadline, so that
      // GET /v1/healthz reports the process and not the cap; they are counted apart and bounded.
      if (over_cap_sockets.load(std::memory_order_relaxed) < options.max_over_cap_sockets) {
        over_cap = true;
      } else {
        // Beyond that: a short 503 and close, without reading the request. Over TLS, closed
        // without a word: a response would need the handshake this bound is there to spare.
        counters.connections_refused.fetch_add(1, std::memory_order_relaxed);
        beast::error_code ignored;
        if (!tls_context) asio::write(socket, asio::buffer(busy_response), ignored);
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        socket.close(ignored);
        return Accept();
      }
    }
    SocketSlot slot(over_cap ? over_cap_sockets : open_sockets);
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    if (tls_context) {
      StartTlsHttpSession(std::move(socket), tls_context, *this, std::move(slot), over_cap);
    } else {
      StartHttpSession(std::move(socket), *this, std::move(slot), over_cap);
    }
    Accept();
  });
}

CloseCause CauseOfReaderError(uint16_t code) {
  switch (code) {
    case ws::kCloseInvalidData:
      return CloseCause::kInvalidUtf8;
    case ws::kCloseTooBig:
      return CloseCause::kMessageTooLarge;
    default:
      return CloseCause::kProtocolError;
  }
}

std::string_view CloseCauseName(CloseCause cause) {
  switch (cause) {
    case CloseCause::kClientClosed:
      return "client_closed";
    case CloseCause::kConnectionLost:
      return "connection_lost";
    case CloseCause::kHeartbeatTimeout:
      return "heartbeat_timeout";
    case CloseCause::kSlowConsumer:
      return "slow_consumer";
    case CloseCause::kProtocolError:
      return "protocol_error";
    case CloseCause::kInvalidUtf8:
      return "invalid_utf8";
    case CloseCause::kMessageTooLarge:
      return "message_too_large";
    case CloseCause::kServiceClosed:
      return "service_closed";
    case CloseCause::kServerStopped:
      return "server_stopped";
  }
  return "unknown";
}

namespace {
// The tuning options are never zero (a zero read buffer or write batch would stall every session).
NetOptions Normalized(NetOptions o) {
  o.read_buffer_bytes = std::max<size_t>(o.read_buffer_bytes, 4096);
  o.write_batch_frames = std::max<size_t>(o.write_batch_frames, 1);
  o.write_batch_bytes = std::max<size_t>(o.write_batch_bytes, 1);
  o.input_high_water_frames = std::max<size_t>(o.input_high_water_frames, 1);
  return o;
}
}  // namespace

Server::Server(NetOptions options, Service& service, const Clock& clock)
    : impl_(std::make_unique<Impl>(Normalized(std::move(options)), service, clock)) {}

Server::~Server() {
  Stop();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
  // No thread runs any more: sessions that keep themselves alive let go, and are destroyed with
  // the handlers still queued (outside the registry's lock: they unregister themselves).
  std::vector<Connection*> live;
  {
    MutexLock lock(impl_->mu);
    live.assign(impl_->connections.begin(), impl_->connections.end());
  }
  for (Connection* c : live) c->Abandon();
}

const Counters& Server::counters() const { return impl_->counters; }

Result<uint16_t> Server::Listen() {
  if (tls()) {
    // Before any thread runs: no other access to tls_context yet.
    auto context = LoadTlsContext(impl_->options.tls_cert, impl_->options.tls_key);
    if (!context.ok()) return context.error();
    impl_->tls_context = std::move(context).value();
  }
  // The one response written without a session; its body is the service's, like every error.
  const HttpResponse busy = impl_->service.ErrorResponse(
      503, MakeError(ErrorCode::kLimitExceeded, "too many connections, retry"));
  impl_->busy_response =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: " + busy.content_type +
      "\r\nConnection: close\r\nContent-Length: " + std::to_string(busy.body.size()) + "\r\n\r\n" +
      busy.body;

  beast::error_code ec;
  auto address = asio::ip::make_address(impl_->options.host, ec);
  if (ec) return MakeError(ErrorCode::kBadRequest, "bad listen address " + impl_->options.host);
  tcp::endpoint endpoint(address, impl_->options.port);
  auto& a = impl_->acceptor;
  a.open(endpoint.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(endpoint, ec);
  // The backlog holds a connection storm: the kernel's own cap (net.core.somaxconn), which
  // SOMAXCONN in the headers may understate.
  int backlog = asio::socket_base::max_listen_connections;
  if (std::ifstream f("/proc/sys/net/core/somaxconn"); f) {
    int somaxconn = 0;
    if (f >> somaxconn && somaxconn > backlog) backlog = somaxconn;
  }
  if (!ec) a.listen(backlog, ec);
  if (ec) {
    return MakeError(ErrorCode::kInternal, "cannot listen on " + impl_->options.host + ":" +
                                               std::to_string(impl_->options.port) + ": " +
                                               ec.message());
  }
  impl_->Accept();
  impl_->StartWheel();
  return a.local_endpoint().port();
}

void Server::OnSignal(std::function<void()> handler) {
  impl_->signals.add(SIGINT);
  impl_->signals.add(SIGTERM);
  impl_->signals.async_wait([handler = std::move(handler)](beast::error_code ec, int) {
    if (!ec) handler();
  });
}

namespace {
void AwaitHangup(asio::signal_set& set, std::shared_ptr<std::function<void()>> handler) {
  set.async_wait([&set, handler = std::move(handler)](beast::error_code ec, int) mutable {
    if (ec) return;  // cancelled: the server is stopping
    (*handler)();
    AwaitHangup(set, std::move(handler));
  });
}
}  // namespace

void Server::OnHangup(std::function<void()> handler) {
  impl_->hangup_signals.add(SIGHUP);
  AwaitHangup(impl_->hangup_signals, std::make_shared<std::function<void()>>(std::move(handler)));
}

bool Server::tls() const { return !impl_->options.tls_cert.empty(); }

Status Server::ReloadTls() {
  if (!tls()) return MakeError(ErrorCode::kBadRequest, "TLS is off: no certificate to reload");
  auto context = LoadTlsContext(impl_->options.tls_cert, impl_->options.tls_key);
  if (!context.ok()) return context.error();
  // The acceptor's strand runs this before any accept that completes after this post: a
  // connection made once ReloadTls returned gets the new context.
  asio::post(impl_->acceptor.get_executor(),
             [impl = impl_.get(), context = std::move(context).value()]() mutable {
               impl->tls_context = std::move(context);
             });
  return Status::Ok();
}

TaskLoop& Server::WorkLoop() { return impl_->task_loop; }

Reactor& Server::WorkReactor() { return impl_->work_reactor; }

int Server::io_threads() const { return impl_->io_threads; }

void Server::Run() {
  const int n = impl_->io_threads;
  auto guard = asio::make_work_guard(impl_->ioc);
  for (int i = 1; i < n; ++i) impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  impl_->ioc.run();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
  impl_->threads.clear();
}

void Server::StopAccepting() {
  asio::post(impl_->acceptor.get_executor(), [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
    impl_->accept_retry.cancel();
    impl_->signals.cancel(ec);
    impl_->hangup_signals.cancel(ec);
  });
  // Sockets still in their HTTP phase would otherwise finish an upgrade after the shutdown began.
  MutexLock lock(impl_->mu);
  for (Connection* c : impl_->connections) c->PostCutIfHttp();
}

bool Server::WaitForSessions(std::chrono::milliseconds timeout) {
  MutexLock lock(impl_->mu);
  return impl_->all_gone.wait_for(impl_->mu, timeout, [this] {
    impl_->mu.AssertHeld();
    return impl_->connections.empty();
  });
}

void Server::CheckDeadlines() {
  MutexLock lock(impl_->mu);
  for (Connection* c : impl_->connections) c->PostCheckDeadlines();
}

void Server::Stop() {
  {
    MutexLock lock(impl_->mu);
    // Connections hold themselves alive through their pending operations; cutting them from
    // their own strand is safe because the registry entry is removed only on that strand (or in
    // the destructor, which waits for this lock).
    for (Connection* c : impl_->connections) c->PostCut();
  }
  asio::post(impl_->acceptor.get_executor(), [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
    impl_->accept_retry.cancel();
    impl_->wheel_timer.cancel();
    impl_->signals.cancel(ec);
    impl_->hangup_signals.cancel(ec);
  });
  impl_->ioc.stop();
}

}  // namespace presenced::net
