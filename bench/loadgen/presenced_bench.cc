// presenced-bench: an open-loop WebSocket load generator for presence fan-out, and the "floor"
// relay it is compared with.
//
//   presenced-bench --target presenced --port P --secret S --conns 1000 --channel-size 10
//                   --rate 50000 --duration 10 [--json out.json]
//   presenced-bench --target floor --port P ...          (against a floor relay)
//   presenced-bench --serve-floor P                       (run the floor relay)
//
// Every update carries its send time (CLOCK_MONOTONIC ns), the sender and a sequence number; the
// generator measures latency from send to *every* recipient, and counts lost and duplicated
// deliveries. Sends follow a fixed schedule (open loop), so a slow server cannot hide latency by
// slowing the generator down. Single-threaded, epoll, non-blocking sockets; pin it to its own core.
//
// The floor relay is the same fan-out with no presence logic: it parses WebSocket frames and
// writes each text message to every connection of the channel named in the URL (?channel=X),
// coalescing writes. It is this machine's limit for the workload.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/hmac.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::string B64Url(const unsigned char* p, size_t n) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = p[i] << 16;
    if (i + 1 < n) v |= p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    if (i + 1 < n) out += k[(v >> 6) & 63];
    if (i + 2 < n) out += k[v & 63];
  }
  return out;
}

std::string Token(const std::string& secret, const std::string& sub) {
  const std::string head = R"({"alg":"HS256","typ":"JWT"})";
  const std::string body =
      R"({"sub":")" + sub + R"(","exp":)" + std::to_string(time(nullptr) + 3600) + "}";
  std::string signing = B64Url(reinterpret_cast<const unsigned char*>(head.data()), head.size()) +
                        "." +
                        B64Url(reinterpret_cast<const unsigned char*>(body.data()), body.size());
  unsigned char mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signing.data()), signing.size(), mac, &len);
  return signing + "." + B64Url(mac, len);
}

// A masked client text frame (mask key 0: legal, and the payload stays readable).
void AppendClientFrame(std::string& out, const std::string& payload) {
  out.push_back(static_cast<char>(0x81));
  const size_t n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<char>(0x80 | n));
  } else {
    out.push_back(static_cast<char>(0x80 | 126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xff));
  }
  out.append(4, '\0');
  out += payload;
}

void AppendServerFrame(std::string& out, const char* payload, size_t n, uint8_t opcode = 1) {
  out.push_back(static_cast<char>(0x80 | opcode));
  if (n < 126) {
    out.push_back(static_cast<char>(n));
  } else if (n < 65536) {
    out.push_back(static_cast<char>(126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xff));
  } else {
    out.push_back(static_cast<char>(127));
    for (int i = 7; i >= 0; --i)
      out.push_back(static_cast<char>((static_cast<uint64_t>(n) >> (8 * i)) & 0xff));
  }
  out.append(payload, n);
}

// Parses one WebSocket frame from buf[pos..]; returns false when incomplete. Handles masked
// (client) and unmasked (server) frames.
bool NextFrame(const std::string& buf, size_t& pos, uint8_t& opcode, std::string& payload) {
  if (buf.size() - pos < 2) return false;
  const auto b0 = static_cast<uint8_t>(buf[pos]);
  const auto b1 = static_cast<uint8_t>(buf[pos + 1]);
  uint64_t n = b1 & 0x7f;
  size_t h = 2;
  if (n == 126) {
    if (buf.size() - pos < 4) return false;
    n = (static_cast<uint8_t>(buf[pos + 2]) << 8) | static_cast<uint8_t>(buf[pos + 3]);
    h = 4;
  } else if (n == 127) {
    if (buf.size() - pos < 10) return false;
    n = 0;
    for (int i = 0; i < 8; ++i) n = (n << 8) | static_cast<uint8_t>(buf[pos + 2 + i]);
    h = 10;
  }
  const bool masked = b1 & 0x80;
  const size_t total = h + (masked ? 4 : 0) + n;
  if (buf.size() - pos < total) return false;
  opcode = b0 & 0x0f;
  payload.assign(buf, pos + h + (masked ? 4 : 0), n);
  if (masked) {
    const char* m = buf.data() + pos + h;
    for (size_t i = 0; i < n; ++i) payload[i] ^= m[i & 3];
  }
  pos += total;
  return true;
}

int64_t FindInt(const std::string& s, const char* key) {
  const char* p = strstr(s.c_str(), key);
  if (p == nullptr) return -1;
  return strtoll(p + strlen(key), nullptr, 10);
}

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Writes what it can now; keeps the rest for EPOLLOUT.
bool Flush(int fd, std::string& out) {
  while (!out.empty()) {
    ssize_t w = send(fd, out.data(), out.size(), MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN) return true;
      return false;
    }
    out.erase(0, static_cast<size_t>(w));
  }
  return true;
}

// ----- The floor relay --------------------------------------------------------------------------

int ServeFloor(int port) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd, 4096) != 0) {
    perror("floor: bind/listen");
    return 1;
  }
  SetNonBlocking(lfd);
  int ep = epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  struct Conn {
    std::string in, out;
    bool upgraded = false;
    std::string channel;
  };
  std::unordered_map<int, Conn> conns;
  std::unordered_map<std::string, std::vector<int>> channels;
  std::vector<int> dirty;
  printf("floor listening on 127.0.0.1:%d\n", port);
  fflush(stdout);
  std::vector<epoll_event> events(1024);
  char buf[65536];
  for (;;) {
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    dirty.clear();
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        for (;;) {
          int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
          if (c < 0) break;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event ce{};
          ce.events = EPOLLIN | EPOLLOUT | EPOLLET;
          ce.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
          conns[c];
        }
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      Conn& c = it->second;
      bool dead = false;
      for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r > 0) {
          c.in.append(buf, static_cast<size_t>(r));
          continue;
        }
        if (r == 0 || errno != EAGAIN) dead = true;
        break;
      }
      if (!c.upgraded) {
        size_t end = c.in.find("\r\n\r\n");
        if (end != std::string::npos) {
          size_t q = c.in.find("channel=");
          size_t e = c.in.find_first_of("& ", q);
          c.channel = q == std::string::npos ? "default" : c.in.substr(q + 8, e - q - 8);
          c.in.erase(0, end + 4);
          // A fixed Sec-WebSocket-Accept: the generator does not check it.
          c.out +=
              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Accept: floor\r\n\r\n";
          const std::string hello = R"({"type":"connected"})";
          AppendServerFrame(c.out, hello.data(), hello.size());
          c.upgraded = true;
          channels[c.channel].push_back(fd);
          dirty.push_back(fd);
        }
      }
      if (c.upgraded) {
        size_t pos = 0;
        uint8_t op;
        std::string payload;
        while (NextFrame(c.in, pos, op, payload)) {
          if (op == 1) {
            for (int peer : channels[c.channel]) {
              auto& o = conns[peer].out;
              const bool was_empty = o.empty();
              AppendServerFrame(o, payload.data(), payload.size());
              if (was_empty) dirty.push_back(peer);
            }
          } else if (op == 8) {
            dead = true;
          }
        }
        c.in.erase(0, pos);
      }
      if (events[i].events & EPOLLOUT) dirty.push_back(fd);
      if (dead) {
        auto& members = channels[c.channel];
        members.erase(std::remove(members.begin(), members.end(), fd), members.end());
        close(fd);
        conns.erase(it);
      }
    }
    std::sort(dirty.begin(), dirty.end());
    dirty.erase(std::unique(dirty.begin(), dirty.end()), dirty.end());
    for (int fd : dirty) {
      auto it = conns.find(fd);
      if (it != conns.end()) Flush(fd, it->second.out);
    }
  }
}

// ----- The generator ----------------------------------------------------------------------------

struct Options {
  std::string target = "presenced";
  int port = 7070;
  std::string secret;
  int conns = 1000;
  int channel_size = 10;
  double rate = 10000;  // updates per second, all connections together
  double duration = 10;
  double warmup = 1;
  std::string json;
  std::string label;
};

struct Client {
  int fd = -1;
  std::string in, out;
  int state = 0;  // 0 handshake, 1 waiting for setup replies, 2 ready
  int replies_needed = 0;
  std::vector<int64_t> last_seq;  // per sender position in the channel
};

int Generate(const Options& o) {
  const int k = o.channel_size;
  std::vector<Client> clients(static_cast<size_t>(o.conns));
  int ep = epoll_create1(0);
  std::unordered_map<int, int> by_fd;
  int connecting = 0;
  for (int i = 0; i < o.conns; ++i) {
    Client& c = clients[static_cast<size_t>(i)];
    c.fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(o.port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      perror("connect");
      return 1;
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SetNonBlocking(c.fd);
    c.last_seq.assign(static_cast<size_t>(k), -1);
    const std::string channel = "bench-" + std::to_string(i / k);
    const std::string id = "b" + std::to_string(i);
    std::string path = o.target == "presenced"
                           ? "/v1/ws?token=" + Token(o.secret, id) + "&device=bench"
                           : "/ws?channel=" + channel + "&u=" + id;
    c.out = "GET " + path +
            " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    if (o.target == "presenced") {
      AppendClientFrame(c.out, R"({"op":"subscribe","id":1,"channel":")" + channel + R"("})");
      AppendClientFrame(c.out, R"({"op":"enter","id":2,"channel":")" + channel + R"(","data":{}})");
      c.replies_needed = 2;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    ++connecting;
  }

  // Latency histogram: 1 µs buckets up to 100 ms, then overflow.
  std::vector<uint64_t> hist(100001, 0);
  uint64_t sent = 0, measured_sent = 0, received = 0, measured_received = 0, dup = 0;
  int64_t max_ns = 0;
  int ready = 0;
  int64_t start = 0, measure_from = 0, end = 0, drain_until = 0;
  std::vector<epoll_event> events(4096);
  char buf[65536];
  std::string payload;
  size_t next_sender = 0;

  auto handle_frame = [&](Client& c, const std::string& p, int64_t now) {
    if (c.state == 1) {
      if (p.find(R"("type":"reply")") != std::string::npos ||
          p.find(R"("type":"connected")") != std::string::npos) {
        if (p.find(R"("type":"reply")") != std::string::npos) --c.replies_needed;
        if (c.replies_needed <= 0) {
          c.state = 2;
          ++ready;
        }
      }
      return;
    }
    // presenced: only presence events count (the sender's own reply carries the data too).
    // (and of those only updates: a leave repeats the member's last data, e.g. members of an
    // earlier run timing out, and must not count as a delivery)
    if (o.target == "presenced" && (p.compare(0, 18, R"({"type":"presence")") != 0 ||
                                    p.find(R"("action":"update")") == std::string::npos)) {
      return;
    }
    const int64_t ts = FindInt(p, R"("ts":)");
    if (ts < 0) return;
    const int64_t sender = FindInt(p, R"("c":)");
    const int64_t seq = FindInt(p, R"("s":)");
    const size_t pos = static_cast<size_t>(sender % k);
    if (seq <= c.last_seq[pos]) {
      ++dup;
      return;
    }
    c.last_seq[pos] = seq;
    ++received;
    if (ts >= measure_from && measure_from != 0) {
      ++measured_received;
      const int64_t lat = now - ts;
      max_ns = std::max(max_ns, lat);
      hist[static_cast<size_t>(std::min<int64_t>(lat / 1000, 100000))]++;
    }
  };

  for (;;) {
    const int64_t now = NowNs();
    // Schedule: all connected and set up -> warm-up -> measure -> drain.
    if (start == 0 && ready == o.conns) {
      start = now;
      measure_from = start + static_cast<int64_t>(o.warmup * 1e9);
      end = measure_from + static_cast<int64_t>(o.duration * 1e9);
      drain_until = end + 2000000000;
    }
    if (start != 0 && now < end) {
      const uint64_t due = static_cast<uint64_t>((now - start) / 1e9 * o.rate);
      while (sent < due) {
        Client& c = clients[next_sender];
        const std::string msg =
            o.target == "presenced"
                ? R"({"op":"update","id":3,"channel":"bench-)" + std::to_string(next_sender / k) +
                      R"(","data":{"ts":)" + std::to_string(NowNs()) + R"(,"c":)" +
                      std::to_string(next_sender) + R"(,"s":)" + std::to_string(sent) + "}}"
                : R"({"ts":)" + std::to_string(NowNs()) + R"(,"c":)" + std::to_string(next_sender) +
                      R"(,"s":)" + std::to_string(sent) + "}";
        AppendClientFrame(c.out, msg);
        Flush(c.fd, c.out);
        if (NowNs() >= measure_from) ++measured_sent;
        ++sent;
        next_sender = (next_sender + 1) % clients.size();
      }
    }
    if (start != 0 && now >= drain_until) break;
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 1);
    const int64_t t = NowNs();
    for (int i = 0; i < n; ++i) {
      Client& c = clients[events[i].data.u32];
      if (events[i].events & EPOLLOUT) Flush(c.fd, c.out);
      for (;;) {
        ssize_t r = recv(c.fd, buf, sizeof buf, 0);
        if (r <= 0) break;
        c.in.append(buf, static_cast<size_t>(r));
      }
      size_t pos = 0;
      if (c.state == 0) {
        size_t h = c.in.find("\r\n\r\n");
        if (h == std::string::npos) continue;
        if (c.in.compare(0, 12, "HTTP/1.1 101") != 0) {
          fprintf(stderr, "upgrade refused: %.*s\n", static_cast<int>(std::min<size_t>(h, 200)),
                  c.in.c_str());
          return 1;
        }
        pos = h + 4;
        c.state = 1;
        if (o.target != "presenced") {
          c.state = 2;
          ++ready;
        }
      }
      uint8_t op;
      while (NextFrame(c.in, pos, op, payload)) {
        if (op == 1) handle_frame(c, payload, t);
      }
      c.in.erase(0, pos);
    }
  }
  (void)connecting;

  auto pct = [&](double q) {
    uint64_t total = 0;
    for (auto v : hist) total += v;
    const uint64_t want = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total)));
    uint64_t acc = 0;
    for (size_t i = 0; i < hist.size(); ++i) {
      acc += hist[i];
      if (acc >= want && want > 0) return static_cast<double>(i) / 1000.0;  // ms
    }
    return 0.0;
  };
  const uint64_t expected = measured_sent * static_cast<uint64_t>(k);
  const int64_t lost = static_cast<int64_t>(expected) - static_cast<int64_t>(measured_received);
  const double deliveries_per_s = static_cast<double>(measured_received) / o.duration;
  printf(
      "%s target=%s conns=%d channel=%d rate=%.0f upd/s deliveries/s=%.0f p50=%.2fms p99=%.2fms "
      "p99.9=%.2fms max=%.2fms lost=%lld dup=%llu\n",
      o.label.c_str(), o.target.c_str(), o.conns, k, o.rate, deliveries_per_s, pct(0.5), pct(0.99),
      pct(0.999), static_cast<double>(max_ns) / 1e6, static_cast<long long>(lost),
      static_cast<unsigned long long>(dup));
  if (!o.json.empty()) {
    FILE* f = fopen(o.json.c_str(), "w");
    if (f) {
      fprintf(f,
              "{\"label\":\"%s\",\"target\":\"%s\",\"conns\":%d,\"channelSize\":%d,\"rate\":%.0f,"
              "\"deliveriesPerSecond\":%.0f,\"p50Ms\":%.3f,\"p99Ms\":%.3f,\"p999Ms\":%.3f,"
              "\"maxMs\":%.3f,"
              "\"lost\":%lld,\"duplicated\":%llu}\n",
              o.label.c_str(), o.target.c_str(), o.conns, k, o.rate, deliveries_per_s, pct(0.5),
              pct(0.99), pct(0.999), static_cast<double>(max_ns) / 1e6,
              static_cast<long long>(lost), static_cast<unsigned long long>(dup));
      fclose(f);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--serve-floor") return ServeFloor(std::atoi(next().c_str()));
    if (a == "--target")
      o.target = next();
    else if (a == "--port")
      o.port = std::atoi(next().c_str());
    else if (a == "--secret")
      o.secret = next();
    else if (a == "--conns")
      o.conns = std::atoi(next().c_str());
    else if (a == "--channel-size")
      o.channel_size = std::atoi(next().c_str());
    else if (a == "--rate")
      o.rate = std::atof(next().c_str());
    else if (a == "--duration")
      o.duration = std::atof(next().c_str());
    else if (a == "--warmup")
      o.warmup = std::atof(next().c_str());
    else if (a == "--json")
      o.json = next();
    else if (a == "--label")
      o.label = next();
    else {
      fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (o.target == "presenced" && o.secret.empty()) {
    fprintf(stderr, "--secret is required for --target presenced\n");
    return 2;
  }
  return Generate(o);
}
