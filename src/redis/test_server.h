// A real redis-server for tests (Debian's redis-server), on a free loopback port, with no
// persistence. Test-only.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "redis/client.h"

namespace presenced::redis::testing {

using namespace std::chrono_literals;

inline uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

inline bool Accepts(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// One redis-server process; Start/Stop may be repeated on the same port.
class RedisServer {
 public:
  explicit RedisServer(std::vector<std::string> extra = {})
      : port_(FreePort()), extra_(std::move(extra)) {}
  ~RedisServer() { Stop(); }
  uint16_t port() const { return port_; }
  std::string url(std::string_view auth = "", std::string_view db = "") const {
    return "redis://" + std::string(auth) + "127.0.0.1:" + std::to_string(port_) + std::string(db);
  }
  void Start() {
    std::vector<std::string> args = {
        "redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no",     "--loglevel",          "warning"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = fork();
    if (pid_ == 0) {
      const int null = open("/dev/null", O_WRONLY);
      dup2(null, 1);
      dup2(null, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp("redis-server", argv.data());
      _exit(127);
    }
    // Polls for the listening socket (the process start is the only wait here).
    for (int i = 0; i < 500 && !Accepts(port_); ++i) std::this_thread::sleep_for(10ms);
    ASSERT_TRUE(Accepts(port_)) << "redis-server did not start on " << port_;
  }
  // SIGSTOP / SIGCONT: Redis keeps its sockets open but answers nothing (a half-open peer).
  void Pause() { kill(pid_, SIGSTOP); }
  void Resume() { kill(pid_, SIGCONT); }
  void Stop() {
    if (pid_ > 0) kill(pid_, SIGCONT);
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  uint16_t port_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
};

// Client options for `server` as the tests use them: a name, and short reconnect steps.
inline ClientOptions TestClientOptions(const RedisServer& server, std::string name) {
  ClientOptions o;
  o.url = *ParseUrl(server.url());
  o.name = std::move(name);
  o.backoff_min = 10ms;
  o.backoff_max = 40ms;
  return o;
}

}  // namespace presenced::redis::testing
