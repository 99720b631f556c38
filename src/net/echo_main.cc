// net_echo: the network facade driven by a trivial backend, linked to presenced_net alone (like
// Dragonfly's facade/ok_main.cc). Every WebSocket message is echoed back; GET /v1/healthz answers
// {"ok":true}; anything else is 404. It proves the facade needs nothing from the server.
//
//   net_echo [PORT]     listen on 127.0.0.1:PORT (default 7071; 0 = any), until SIGINT/SIGTERM
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/clock.h"
#include "net/server.h"

namespace {

using namespace presenced;

// Called on I/O threads: the peer map is the only shared state, so a mutex guards it.
class EchoService final : public net::Service {
 public:
  Result<net::Upgrade> AuthorizeUpgrade(const HttpRequest&) override { return net::Upgrade{}; }
  void HandleHttp(HttpRequest req, std::function<void(HttpResponse)> done) override {
    if (req.method == "GET" && req.target == "/v1/healthz") {
      return done(HttpResponse{200, R"({"ok":true})"});
    }
    done(ErrorResponse(404, MakeError(ErrorCode::kNotFound, "no such route")));
  }
  void OnOpen(SessionId id, std::shared_ptr<void>, std::shared_ptr<Peer> peer) override {
    std::lock_guard lock(mu_);
    peers_[id] = std::move(peer);
  }
  void OnMessage(SessionId id, std::string text, std::chrono::steady_clock::time_point,
                 std::function<void()> processed) override {
    std::shared_ptr<Peer> peer;
    {
      std::lock_guard lock(mu_);
      if (auto it = peers_.find(id); it != peers_.end()) peer = it->second;
    }
    if (peer) peer->Send(std::make_shared<const std::string>(std::move(text)));
    processed();
  }
  void OnDrained(SessionId) override {}
  void OnClose(SessionId id, bool, const net::CloseInfo&) override {
    std::lock_guard lock(mu_);
    peers_.erase(id);
  }
  HttpResponse ErrorResponse(unsigned status, const Error& error) const override {
    return HttpResponse{status, R"({"error":")" + std::string(ErrorCodeName(error.code)) + "\"}"};
  }

 private:
  std::mutex mu_;
  std::unordered_map<SessionId, std::shared_ptr<Peer>> peers_;
};

}  // namespace

int main(int argc, char** argv) {
  net::NetOptions options;
  options.port = static_cast<uint16_t>(argc > 1 ? std::atoi(argv[1]) : 7071);
  options.io_threads = 1;
  EchoService service;
  SteadyClock clock;
  net::Server server(options, service, clock);
  auto port = server.Listen();
  if (!port.ok()) {
    std::fprintf(stderr, "net_echo: %s\n", port.error().message.c_str());
    return 1;
  }
  std::printf("net_echo listening on 127.0.0.1:%u\n", *port);
  std::fflush(stdout);
  server.OnSignal([&server] { server.Stop(); });
  server.Run();
  return 0;
}
