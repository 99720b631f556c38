// presenced-bench: an open-loop WebSocket load generator for presence fan-out, and the "floor"
// relay it is compared with.
//
//   presenced-bench --mode churn --target presenced --port P --secret S --conns 1000
//                   --channel-size 10 --rate 50000 --duration 10 [--json out.json]
//   presenced-bench --target floor|node|yws --port P ...  (the floor relay and the peers)
//   presenced-bench --serve-floor P                        (run the floor relay)
//   --batch (presenced): connect with batch=1; batch frames are unpacked, sync frames counted.
//   --ports P,Q (presenced, cluster): connections alternate between the nodes on P and Q, so
//            every channel has members on each and its events cross nodes.
//
// Modes (bench/README.md has the workloads they implement):
//   churn    W2: every connection updates its presence data at a fixed total rate (open loop);
//            latency from send to *every* recipient, lost and duplicated deliveries.
//   idle     W1: every connection holds one membership with ~32 B of data; with --server-pid,
//            the server's RSS growth per connection.
//   storm    W3: all connections subscribe to and enter one channel at once; time until every
//            connection's view holds every member.
//   devices  W4 (presenced): users with several devices; 10 % of connections dropped abruptly,
//            10 % closed cleanly; leave latency against the bounds, and false offline events.
//   connect  W6 (presenced): handshakes + enter per second.
//
// Every update carries its send time (CLOCK_MONOTONIC ns), the sender and a sequence number.
// Sends follow a fixed schedule (open loop), so a slow server cannot hide latency by slowing the
// generator down. Single-threaded, epoll, non-blocking sockets; pin it to its own core. A process
// holds at most ~19,900 sockets here; beyond ~25,000 connections (several processes) sources are
// spread over 127.0.0.x with --source-base.
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
void AppendClientFrame(std::string& out, const std::string& payload, uint8_t opcode = 1) {
  out.push_back(static_cast<char>(0x80 | opcode));
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

// The integer after `key` in s (binary-safe: y-websocket frames carry JSON inside binary).
int64_t FindInt(const std::string& s, const char* key, size_t from = 0) {
  const size_t p = s.find(key, from);
  if (p == std::string::npos) return -1;
  return strtoll(s.c_str() + p + strlen(key), nullptr, 10);
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

enum class Target { kPresenced, kFloor, kNode, kYws };
enum class Mode { kChurn, kIdle, kStorm, kDevices, kConnect };

struct Options {
  Target target = Target::kPresenced;
  std::string target_name = "presenced";
  Mode mode = Mode::kChurn;
  std::string mode_name = "churn";
  int port = 7070;
  std::vector<int> more_ports;  // --ports P,Q,...: connection i goes to the (i mod n)-th
  std::string secret;
  int conns = 1000;
  int channel_size = 10;
  double rate = 10000;  // updates per second, all connections together
  double duration = 10;
  double warmup = 1;
  double hold = 1;           // idle: seconds to hold before measuring
  double timeout = 60;       // storm/devices/connect: give up after this long
  int window = 1000;         // connections being set up at once
  int devices = 3;           // devices: connections per user
  int grace_ms = 2000;       // devices: remainPresentForMs of every connection
  int server_pid = 0;        // idle: measure this process's RSS
  int source_base = 0;       // first client index of this process (for 127.0.0.x spreading)
  std::string prefix = "b";  // clientId prefix (keeps concurrent or successive runs apart)
  bool batch = false;        // presenced: connect with batch=1 (protocol-ext section 1)
  std::string json;
  std::string label;
};

struct Client {
  int fd = -1;
  std::string in, out;
  int state = 0;  // 0 not started, 1 handshake sent, 2 waiting for setup replies, 3 ready
  int replies_needed = 0;
  bool dropped = false;           // devices: closed by the generator
  int64_t started_ns = 0;         // connect: when connect() was called
  std::vector<int64_t> last_seq;  // churn: per sender position in the channel
  std::vector<uint64_t> seen;     // storm: bitset of members in this connection's view
  int members_seen = 0;
  int64_t complete_ns = 0;  // storm: when the view became complete; connect: setup done
  std::string connection_id;
};

long RssBytes(int pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/status";
  FILE* f = fopen(path.c_str(), "r");
  if (f == nullptr) return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f) != nullptr) {
    if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, nullptr, 10);
  }
  fclose(f);
  return kb * 1024;
}

// Latency histogram: 10 µs buckets up to 10 s.
struct Histogram {
  std::vector<uint64_t> buckets = std::vector<uint64_t>(1000001, 0);
  uint64_t count = 0;
  int64_t max_ns = 0;
  void Add(int64_t ns) {
    ns = std::max<int64_t>(ns, 0);
    buckets[static_cast<size_t>(std::min<int64_t>(ns / 10000, 1000000))]++;
    ++count;
    max_ns = std::max(max_ns, ns);
  }
  double Ms(double q) const {
    const uint64_t want = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count)));
    uint64_t acc = 0;
    for (size_t i = 0; i < buckets.size(); ++i) {
      acc += buckets[i];
      if (acc >= want && want > 0) return static_cast<double>(i) / 100.0;
    }
    return 0.0;
  }
  double MaxMs() const { return static_cast<double>(max_ns) / 1e6; }
};

// One result: a summary line on stdout and the same fields as a JSON object.
class Report {
 public:
  void Num(const std::string& key, double v, int decimals = 3) {
    char b[64];
    snprintf(b, sizeof b, "%.*f", decimals, v);
    fields_.emplace_back(key, b);
  }
  void Str(const std::string& key, const std::string& v) {
    fields_.emplace_back(key, "\"" + v + "\"");
  }
  void Print(const std::string& json_path) const {
    std::string line, json = "{";
    for (const auto& [k, v] : fields_) {
      line += k + "=" + (v.front() == '"' ? v.substr(1, v.size() - 2) : v) + " ";
      json += (json.size() > 1 ? "," : "") + ("\"" + k + "\":") + v;
    }
    json += "}\n";
    printf("%s\n", line.c_str());
    fflush(stdout);
    if (!json_path.empty()) {
      FILE* f = fopen(json_path.c_str(), "w");
      if (f != nullptr) {
        fputs(json.c_str(), f);
        fclose(f);
      }
    }
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

void AppendVarUint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool ReadVarUint(const std::string& s, size_t& pos, uint64_t& v) {
  v = 0;
  for (int shift = 0; pos < s.size() && shift < 64; shift += 7) {
    const auto b = static_cast<uint8_t>(s[pos++]);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

// A y-protocols awareness message for one client: [1, varUint8Array([1, id, clock, varString])].
std::string AwarenessMessage(uint64_t client_id, uint64_t clock, const std::string& state) {
  std::string update;
  AppendVarUint(update, 1);
  AppendVarUint(update, client_id);
  AppendVarUint(update, clock);
  AppendVarUint(update, state.size());
  update += state;
  std::string msg;
  AppendVarUint(msg, 1);
  AppendVarUint(msg, update.size());
  msg += update;
  return msg;
}

// Calls f(clientId, clock, state) for each entry of a y-protocols awareness message.
template <typename F>
void ForEachAwareness(const std::string& msg, F f) {
  size_t pos = 0;
  uint64_t type, len, n;
  if (!ReadVarUint(msg, pos, type) || type != 1) return;
  if (!ReadVarUint(msg, pos, len) || !ReadVarUint(msg, pos, n)) return;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t id, clock, slen;
    if (!ReadVarUint(msg, pos, id) || !ReadVarUint(msg, pos, clock) ||
        !ReadVarUint(msg, pos, slen) || pos + slen > msg.size())
      return;
    f(id, clock, msg.substr(pos, slen));
    pos += slen;
  }
}

class Generator {
 public:
  explicit Generator(const Options& o) : o_(o) {}

  int Run() {
    const int n = o_.conns;
    clients_.resize(static_cast<size_t>(n));
    ep_ = epoll_create1(0);
    if (o_.server_pid != 0) rss_before_ = RssBytes(o_.server_pid);
    // Requests are prepared before the clock starts (tokens cost an HMAC each).
    for (int i = 0; i < n; ++i) Prepare(i);
    t0_ = NowNs();
    std::vector<epoll_event> events(4096);
    char buf[65536];
    std::string payload;
    size_t next_sender = 0;
    int next_connect = 0;
    for (;;) {
      const int64_t now = NowNs();
      // Connections are opened with at most `window` handshakes in flight.
      while (next_connect < n && next_connect - ready_ - failed_ < o_.window) {
        if (!Connect(next_connect++)) return 1;
      }
      if (Step(now, next_sender)) break;
      const int ready_n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 1);
      const int64_t t = NowNs();
      for (int e = 0; e < ready_n; ++e) {
        const size_t idx = events[static_cast<size_t>(e)].data.u32;
        Client& c = clients_[idx];
        if (c.fd < 0) continue;
        if (events[static_cast<size_t>(e)].events & EPOLLOUT) Flush(c.fd, c.out);
        bool eof = false;
        for (;;) {
          ssize_t r = recv(c.fd, buf, sizeof buf, 0);
          if (r > 0) {
            c.in.append(buf, static_cast<size_t>(r));
            continue;
          }
          if (r == 0 || errno != EAGAIN) eof = true;
          break;
        }
        size_t pos = 0;
        if (c.state == 1) {
          const size_t h = c.in.find("\r\n\r\n");
          if (h == std::string::npos) {
            if (eof) Fail(c, "closed during handshake");
            continue;
          }
          if (c.in.compare(0, 12, "HTTP/1.1 101") != 0) {
            fprintf(stderr, "upgrade refused: %.*s\n", static_cast<int>(std::min<size_t>(h, 200)),
                    c.in.c_str());
            Fail(c, "refused");
            continue;
          }
          pos = h + 4;
          c.state = 2;
          if (c.replies_needed == 0) MarkReady(c, t);
        }
        uint8_t op;
        while (c.fd >= 0 && NextFrame(c.in, pos, op, payload)) {
          if (op == 1 || op == 2) {
            HandleFrame(idx, c, payload, t);
          } else if (op == 9) {
            AppendClientFrame(c.out, payload, 0xA);
            Flush(c.fd, c.out);
          }
        }
        c.in.erase(0, pos);
        if (eof && c.fd >= 0) {
          if (!c.dropped) ++unexpected_closes_;
          epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
          close(c.fd);
          c.fd = -1;
        }
      }
    }
    Finish();
    return 0;
  }

 private:
  bool IsPresenced() const { return o_.target == Target::kPresenced; }
  std::string ChannelOf(int i) const {
    if (o_.mode == Mode::kStorm) return o_.prefix + "-storm";
    if (o_.mode == Mode::kDevices) return o_.prefix + "-w4-" + std::to_string(i / o_.devices / 10);
    return o_.prefix + "-ch" + std::to_string(i / o_.channel_size);
  }
  std::string IdOf(int i) const {
    if (o_.mode == Mode::kDevices) return o_.prefix + "u" + std::to_string(i / o_.devices);
    return o_.prefix + std::to_string(i);
  }
  std::string IdleData(int i) const {
    char b[64];
    snprintf(b, sizeof b, R"({"name":"user-%07d","score":1})", i);  // 32 bytes
    return b;
  }

  void Prepare(int i) {
    Client& c = clients_[static_cast<size_t>(i)];
    const std::string channel = ChannelOf(i);
    const std::string id = IdOf(i);
    std::string path;
    switch (o_.target) {
      case Target::kPresenced:
        path = "/v1/ws?token=" + Token(o_.secret, id) + "&device=";
        path += o_.mode == Mode::kDevices ? "d" + std::to_string(i % o_.devices) : "bench";
        if (o_.mode == Mode::kDevices) path += "&remainPresentForMs=" + std::to_string(o_.grace_ms);
        if (o_.batch) path += "&batch=1";
        break;
      case Target::kFloor:
      case Target::kNode:
        path = "/ws?channel=" + channel + "&u=" + id;
        break;
      case Target::kYws:
        path = "/" + channel;
        break;
    }
    c.out = "GET " + path +
            " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    const std::string ch = R"(","channel":")" + channel + "\"";
    if (IsPresenced()) {
      switch (o_.mode) {
        case Mode::kChurn:
        case Mode::kStorm:
          AppendClientFrame(c.out, R"({"op":"subscribe","id":1)" + ch.substr(1) + "}");
          AppendClientFrame(c.out, R"({"op":"enter","id":2)" + ch.substr(1) + R"(,"data":{}})");
          c.replies_needed = 2;
          break;
        case Mode::kIdle:
          AppendClientFrame(c.out, R"({"op":"subscribe","id":1)" + ch.substr(1) + "}");
          AppendClientFrame(
              c.out, R"({"op":"enter","id":2)" + ch.substr(1) + R"(,"data":)" + IdleData(i) + "}");
          c.replies_needed = 2;
          break;
        case Mode::kDevices: {
          AppendClientFrame(c.out, R"({"op":"subscribe","id":1)" + ch.substr(1) + "}");
          AppendClientFrame(c.out, R"({"op":"enter","id":2)" + ch.substr(1) + R"(,"data":{}})");
          // Watch the status of every user of the channel (10 users).
          const int first_user = i / o_.devices / 10 * 10;
          std::string ids;
          for (int u = first_user; u < first_user + 10 && u * o_.devices < o_.conns; ++u)
            ids += (ids.empty() ? "\"" : ",\"") + o_.prefix + "u" + std::to_string(u) + "\"";
          AppendClientFrame(c.out, R"({"op":"status.watch","id":3,"clientIds":[)" + ids + "]}");
          c.replies_needed = 3;
          break;
        }
        case Mode::kConnect:
          AppendClientFrame(c.out, R"({"op":"enter","id":2)" + ch.substr(1) + R"(,"data":{}})");
          c.replies_needed = 1;
          break;
      }
    } else if (o_.target == Target::kNode && o_.mode == Mode::kIdle) {
      AppendClientFrame(c.out, R"({"state":)" + IdleData(i) + "}");
    } else if (o_.target == Target::kYws && (o_.mode == Mode::kIdle || o_.mode == Mode::kStorm)) {
      const std::string state =
          o_.mode == Mode::kIdle ? IdleData(i) : R"({"u":")" + IdOf(i) + "\"}";
      AppendClientFrame(c.out, AwarenessMessage(static_cast<uint64_t>(i) + 1, 1, state), 2);
    }
    if (o_.mode == Mode::kChurn) c.last_seq.assign(static_cast<size_t>(o_.channel_size), -1);
    if (o_.mode == Mode::kStorm) c.seen.assign(static_cast<size_t>(o_.conns + 63) / 64, 0);
  }

  bool Connect(int i) {
    Client& c = clients_[static_cast<size_t>(i)];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c.fd < 0) {
      perror("socket");
      return false;
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const int global = o_.source_base + i;
    if (global >= 25000) {  // past one source address's ephemeral ports
      sockaddr_in src{};
      src.sin_family = AF_INET;
      src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + static_cast<uint32_t>(global / 25000));
      bind(c.fd, reinterpret_cast<sockaddr*>(&src), sizeof src);
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    const size_t n_ports = 1 + o_.more_ports.size();
    const size_t which = static_cast<size_t>(global) % n_ports;
    a.sin_port = htons(static_cast<uint16_t>(which == 0 ? o_.port : o_.more_ports[which - 1]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c.started_ns = NowNs();
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
      perror("connect");
      return false;
    }
    c.state = 1;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
    return true;
  }

  void Fail(Client& c, const char* why) {
    if (failed_ == 0) fprintf(stderr, "connection failed: %s\n", why);
    ++failed_;
    epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    c.fd = -1;
    c.state = 0;
  }

  void MarkReady(Client& c, int64_t now) {
    c.state = 3;
    c.complete_ns = now;
    ++ready_;
    if (o_.mode == Mode::kConnect) connect_hist_.Add(now - c.started_ns);
  }

  void Mark(Client& c, uint64_t member, int64_t now) {
    if (member >= static_cast<uint64_t>(o_.conns)) return;
    uint64_t& word = c.seen[member / 64];
    const uint64_t bit = uint64_t{1} << (member % 64);
    if (word & bit) return;
    word |= bit;
    if (++c.members_seen == o_.conns) {
      c.complete_ns = now;
      ++complete_;
    }
  }

  // Marks every member named by `key` + number in p (e.g. "clientId":"b12).
  void MarkAll(Client& c, const std::string& p, const std::string& key, int64_t now) {
    for (size_t at = p.find(key); at != std::string::npos; at = p.find(key, at + 1)) {
      Mark(c, strtoull(p.c_str() + at + key.size(), nullptr, 10), now);
    }
  }

  // Calls fn with each message of a presenced batch frame ({"type":"batch","messages":[...]});
  // false when p is not one.
  template <typename F>
  static bool ForEachBatched(const std::string& p, F&& fn) {
    static const std::string kHead = R"({"type":"batch","messages":[)";
    if (p.compare(0, kHead.size(), kHead) != 0) return false;
    size_t i = kHead.size();
    while (i < p.size()) {
      if (p[i] != '{') {
        ++i;
        continue;
      }
      const size_t start = i;
      int depth = 0;
      bool in_string = false;
      for (; i < p.size(); ++i) {
        const char ch = p[i];
        if (in_string) {
          if (ch == '\\') {
            ++i;
          } else if (ch == '"') {
            in_string = false;
          }
        } else if (ch == '"') {
          in_string = true;
        } else if (ch == '{' || ch == '[') {
          ++depth;
        } else if ((ch == '}' || ch == ']') && --depth == 0) {
          ++i;
          break;
        }
      }
      fn(p.substr(start, i - start));
    }
    return true;
  }

  static bool IsMemberList(const std::string& p) {
    return p.compare(0, 19, R"({"type":"presence",)") == 0 ||
           p.compare(0, 15, R"({"type":"sync",)") == 0;
  }

  void HandleFrame(size_t idx, Client& c, const std::string& p, int64_t now) {
    if (IsPresenced() &&
        ForEachBatched(p, [&](const std::string& m) { HandleFrame(idx, c, m, now); })) {
      return;
    }
    if (c.state == 2) {  // presenced setup: count replies
      if (p.compare(0, 16, R"({"type":"reply",)") == 0) {
        if (p.find(R"("ok":true)") == std::string::npos) {
          fprintf(stderr, "setup refused: %.200s\n", p.c_str());
          ++setup_errors_;
        }
        if (o_.mode == Mode::kStorm) MarkAll(c, p, "\"clientId\":\"" + o_.prefix, now);
        if (--c.replies_needed <= 0) MarkReady(c, now);
      } else if (p.compare(0, 20, R"({"type":"connected",)") == 0) {
        const size_t at = p.find(R"("connectionId":")");
        if (at != std::string::npos)
          c.connection_id = p.substr(at + 16, p.find('"', at + 16) - at - 16);
      } else if (o_.mode == Mode::kStorm && IsMemberList(p)) {
        MarkAll(c, p, "\"clientId\":\"" + o_.prefix, now);
      }
      return;
    }
    switch (o_.mode) {
      case Mode::kChurn:
        return Delivery(idx, c, p, now);
      case Mode::kStorm:
        if (o_.target == Target::kPresenced) {
          if (IsMemberList(p)) MarkAll(c, p, "\"clientId\":\"" + o_.prefix, now);
        } else if (o_.target == Target::kNode) {
          MarkAll(c, p, "\"u\":\"" + o_.prefix, now);
        } else if (o_.target == Target::kYws) {
          ForEachAwareness(p, [&](uint64_t id, uint64_t, const std::string& state) {
            if (state != "null" && id >= 1) Mark(c, id - 1, now);
          });
        }
        return;
      case Mode::kDevices:
        if (c.dropped) return;  // closing: only survivors observe
        return DeviceEvent(c, p, now);
      default:
        return;
    }
  }

  void Delivery(size_t, Client& c, const std::string& p, int64_t now) {
    // presenced: only update events count (a reply carries the data too, and a leave repeats a
    // member's last data, e.g. of an earlier run's members timing out).
    if (IsPresenced() && (p.compare(0, 18, R"({"type":"presence")") != 0 ||
                          p.find(R"("action":"update")") == std::string::npos)) {
      return;
    }
    if (o_.target == Target::kYws && (p.empty() || p[0] != 1)) return;
    const int64_t ts = FindInt(p, R"("ts":)");
    if (ts < 0) return;
    const int64_t sender = FindInt(p, R"("c":)");
    const int64_t seq = FindInt(p, R"("s":)");
    if (sender < 0 || seq < 0) return;
    const size_t pos = static_cast<size_t>(sender % o_.channel_size);
    if (seq <= c.last_seq[pos]) {
      ++dup_;
      return;
    }
    c.last_seq[pos] = seq;
    if (ts >= measure_from_ && measure_from_ != 0) {
      ++measured_received_;
      hist_.Add(now - ts);
    }
  }

  void DeviceEvent(Client&, const std::string& p, int64_t now) {
    if (p.compare(0, 17, R"({"type":"status",)") == 0) {
      if (p.find(R"("status":"offline")") != std::string::npos && drop_at_ != 0) ++false_offline_;
      return;
    }
    if (p.compare(0, 19, R"({"type":"presence",)") != 0 ||
        p.find(R"("action":"leave")") == std::string::npos)
      return;
    const size_t at = p.find(R"("connectionId":")");
    if (at == std::string::npos) return;
    const auto it = dropped_.find(p.substr(at + 16, p.find('"', at + 16) - at - 16));
    if (it == dropped_.end()) {
      ++unexpected_leaves_;
      return;
    }
    const auto [abrupt, dropped_at] = it->second;
    const bool reason_ok = p.find(abrupt ? R"("reason":"timeout")"
                                         : R"("reason":"disconnected")") != std::string::npos;
    if (!reason_ok) ++wrong_reason_;
    (abrupt ? abrupt_hist_ : clean_hist_)
        .Add(now - dropped_at - (abrupt ? o_.grace_ms * 1000000LL : 0));
  }

  // Advances the workload's schedule; true when it is over.
  bool Step(int64_t now, size_t& next_sender) {
    const int n = o_.conns;
    switch (o_.mode) {
      case Mode::kChurn: {
        if (start_ == 0 && ready_ == n) {
          start_ = now;
          measure_from_ = start_ + static_cast<int64_t>(o_.warmup * 1e9);
          end_ = measure_from_ + static_cast<int64_t>(o_.duration * 1e9);
        }
        if (start_ != 0 && now < end_) {
          const uint64_t due = static_cast<uint64_t>((now - start_) / 1e9 * o_.rate);
          while (sent_ < due) {
            SendUpdate(next_sender);
            next_sender = (next_sender + 1) % clients_.size();
          }
        }
        return (start_ != 0 && now >= end_ + 2000000000) || Stuck(now);
      }
      case Mode::kIdle:
        if (start_ == 0 && ready_ == n) {
          start_ = now;
          end_ = now + static_cast<int64_t>(o_.hold * 1e9);
        }
        return (start_ != 0 && now >= end_) || Stuck(now);
      case Mode::kStorm:
        return (ready_ == n && complete_ == n) ||
               now - t0_ > static_cast<int64_t>(o_.timeout * 1e9);
      case Mode::kConnect:
        return ready_ + failed_ == n || now - t0_ > static_cast<int64_t>(o_.timeout * 1e9);
      case Mode::kDevices:
        if (start_ == 0 && ready_ == n) {
          start_ = now;
          end_ = now + 1000000000;  // settle for 1 s, then drop
        }
        if (start_ != 0 && drop_at_ == 0 && now >= end_) DropDevices(now);
        return (drop_at_ != 0 && now >= drop_at_ + o_.grace_ms * 1000000LL + 2000000000) ||
               Stuck(now);
    }
    return true;
  }

  bool Stuck(int64_t now) const {
    if (start_ != 0 || now - t0_ < static_cast<int64_t>(o_.timeout * 1e9)) return false;
    fprintf(stderr, "only %d of %d connections set up after %.0f s\n", ready_, o_.conns,
            o_.timeout);
    return true;
  }

  void SendUpdate(size_t i) {
    Client& c = clients_[i];
    // The update counts as measured by the same timestamp its deliveries are judged by.
    const int64_t ts = NowNs();
    const std::string body = R"({"ts":)" + std::to_string(ts) + R"(,"c":)" + std::to_string(i) +
                             R"(,"s":)" + std::to_string(sent_) + "}";
    switch (o_.target) {
      case Target::kPresenced:
        AppendClientFrame(c.out, R"({"op":"update","id":3,"channel":")" +
                                     ChannelOf(static_cast<int>(i)) + R"(","data":)" + body + "}");
        break;
      case Target::kNode:
        AppendClientFrame(c.out, R"({"state":)" + body + "}");
        break;
      case Target::kFloor:
        AppendClientFrame(c.out, body);
        break;
      case Target::kYws:  // the clock must grow per client: the sequence number does
        AppendClientFrame(c.out, AwarenessMessage(i + 1, sent_ + 2, body), 2);
        break;
    }
    if (c.fd >= 0) Flush(c.fd, c.out);
    if (ts >= measure_from_) ++measured_sent_;
    ++sent_;
  }

  // 10 % of connections (device 0 of the first users) drop abruptly: the socket closes with no
  // close frame. Another 10 % (device 1 of the next users) close cleanly. Every user keeps at
  // least one device, so any offline status event is false.
  void DropDevices(int64_t now) {
    drop_at_ = now;
    const int tenth = o_.conns / 10;
    const int users = tenth;  // one device each
    for (int u = 0; u < 2 * users; ++u) {
      const bool abrupt = u < users;
      const int i = u * o_.devices + (abrupt ? 0 : 1);
      if (i >= o_.conns) break;
      Client& c = clients_[static_cast<size_t>(i)];
      if (c.fd < 0) continue;
      c.dropped = true;
      dropped_[c.connection_id] = {abrupt, NowNs()};
      if (abrupt) {
        epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
        close(c.fd);
        c.fd = -1;
      } else {
        std::string close_frame;
        AppendClientFrame(close_frame, std::string("\x03\xe8", 2), 8);
        c.out += close_frame;
        Flush(c.fd, c.out);
      }
    }
    // Each dropped connection's leave should reach every surviving connection of its channel.
    for (int i = 0; i < o_.conns; ++i) {
      if (!clients_[static_cast<size_t>(i)].dropped) continue;
      const std::string ch = ChannelOf(i);
      for (int j = i / (o_.devices * 10) * o_.devices * 10;
           j < std::min(o_.conns, (i / (o_.devices * 10) + 1) * o_.devices * 10); ++j) {
        if (!clients_[static_cast<size_t>(j)].dropped) ++expected_leaves_;
      }
    }
  }

  void Finish() {
    Report r;
    r.Str("label", o_.label);
    r.Str("mode", o_.mode_name);
    r.Str("target", o_.target_name);
    r.Num("conns", o_.conns, 0);
    r.Num("failed", failed_, 0);
    switch (o_.mode) {
      case Mode::kChurn: {
        const uint64_t expected = measured_sent_ * static_cast<uint64_t>(o_.channel_size);
        r.Num("channelSize", o_.channel_size, 0);
        r.Num("rate", o_.rate, 0);
        r.Num("deliveriesPerSecond", static_cast<double>(hist_.count) / o_.duration, 0);
        r.Num("p50Ms", hist_.Ms(0.5));
        r.Num("p99Ms", hist_.Ms(0.99));
        r.Num("p999Ms", hist_.Ms(0.999));
        r.Num("maxMs", hist_.MaxMs());
        r.Num("lost", static_cast<double>(expected) - static_cast<double>(measured_received_), 0);
        r.Num("duplicated", static_cast<double>(dup_), 0);
        break;
      }
      case Mode::kIdle: {
        const long after = o_.server_pid != 0 ? RssBytes(o_.server_pid) : -1;
        r.Num("ready", ready_, 0);
        if (after >= 0 && rss_before_ >= 0) {
          r.Num("rssBeforeBytes", static_cast<double>(rss_before_), 0);
          r.Num("rssAfterBytes", static_cast<double>(after), 0);
          r.Num("bytesPerConn", static_cast<double>(after - rss_before_) / o_.conns, 0);
        }
        break;
      }
      case Mode::kStorm: {
        std::vector<double> times;
        for (const auto& c : clients_) {
          if (c.complete_ns != 0 && c.members_seen == o_.conns)
            times.push_back(static_cast<double>(c.complete_ns - t0_) / 1e6);
        }
        std::sort(times.begin(), times.end());
        r.Num("complete", static_cast<double>(times.size()), 0);
        r.Num("consistentMs", times.size() == clients_.size() && !times.empty() ? times.back() : -1,
              1);
        r.Num("p50CompleteMs", times.empty() ? -1 : times[times.size() / 2], 1);
        uint64_t seen = 0;
        for (const auto& c : clients_) seen += static_cast<uint64_t>(c.members_seen);
        r.Num("viewFraction",
              static_cast<double>(seen) / (static_cast<double>(o_.conns) * o_.conns), 4);
        break;
      }
      case Mode::kConnect: {
        int64_t last = t0_;
        for (const auto& c : clients_) last = std::max(last, c.complete_ns);
        const double secs = static_cast<double>(last - t0_) / 1e9;
        r.Num("ready", ready_, 0);
        r.Num("seconds", secs);
        r.Num("connectsPerSecond", secs > 0 ? ready_ / secs : 0, 0);
        r.Num("p50Ms", connect_hist_.Ms(0.5));
        r.Num("p99Ms", connect_hist_.Ms(0.99));
        r.Num("setupErrors", setup_errors_, 0);
        break;
      }
      case Mode::kDevices: {
        r.Num("devices", o_.devices, 0);
        r.Num("graceMs", o_.grace_ms, 0);
        r.Num("droppedAbrupt", o_.conns / 10, 0);
        r.Num("closedClean", o_.conns / 10, 0);
        r.Num("abruptExcessP50Ms", abrupt_hist_.Ms(0.5));
        r.Num("abruptExcessP99Ms", abrupt_hist_.Ms(0.99));
        r.Num("abruptExcessMaxMs", abrupt_hist_.MaxMs());
        r.Num("cleanP50Ms", clean_hist_.Ms(0.5));
        r.Num("cleanP99Ms", clean_hist_.Ms(0.99));
        r.Num("cleanMaxMs", clean_hist_.MaxMs());
        r.Num("expectedLeaves", static_cast<double>(expected_leaves_), 0);
        r.Num("missingLeaves",
              static_cast<double>(expected_leaves_) -
                  static_cast<double>(abrupt_hist_.count + clean_hist_.count),
              0);
        r.Num("wrongReason", static_cast<double>(wrong_reason_), 0);
        r.Num("unexpectedLeaves", static_cast<double>(unexpected_leaves_), 0);
        r.Num("falseOffline", static_cast<double>(false_offline_), 0);
        break;
      }
    }
    r.Print(o_.json);
  }

  const Options& o_;
  std::vector<Client> clients_;
  int ep_ = -1;
  int64_t t0_ = 0, start_ = 0, measure_from_ = 0, end_ = 0, drop_at_ = 0;
  int ready_ = 0, failed_ = 0, complete_ = 0, setup_errors_ = 0, unexpected_closes_ = 0;
  uint64_t sent_ = 0, measured_sent_ = 0, measured_received_ = 0, dup_ = 0;
  uint64_t expected_leaves_ = 0, wrong_reason_ = 0, unexpected_leaves_ = 0, false_offline_ = 0;
  long rss_before_ = -1;
  Histogram hist_, connect_hist_, abrupt_hist_, clean_hist_;
  // connectionId -> (abrupt, when the generator dropped or closed it)
  std::unordered_map<std::string, std::pair<bool, int64_t>> dropped_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--serve-floor") return ServeFloor(std::atoi(next().c_str()));
    if (a == "--target")
      o.target_name = next();
    else if (a == "--mode")
      o.mode_name = next();
    else if (a == "--port")
      o.port = std::atoi(next().c_str());
    else if (a == "--ports") {  // several nodes of one cluster: connections alternate
      const std::string list = next();
      o.more_ports.clear();
      size_t at = 0;
      for (bool first = true; at <= list.size(); first = false) {
        const size_t comma = std::min(list.find(',', at), list.size());
        const int p = std::atoi(list.substr(at, comma - at).c_str());
        if (first) {
          o.port = p;
        } else {
          o.more_ports.push_back(p);
        }
        at = comma + 1;
      }
    } else if (a == "--secret")
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
    else if (a == "--hold")
      o.hold = std::atof(next().c_str());
    else if (a == "--timeout")
      o.timeout = std::atof(next().c_str());
    else if (a == "--window")
      o.window = std::atoi(next().c_str());
    else if (a == "--devices")
      o.devices = std::atoi(next().c_str());
    else if (a == "--grace-ms")
      o.grace_ms = std::atoi(next().c_str());
    else if (a == "--server-pid")
      o.server_pid = std::atoi(next().c_str());
    else if (a == "--source-base")
      o.source_base = std::atoi(next().c_str());
    else if (a == "--prefix")
      o.prefix = next();
    else if (a == "--batch")
      o.batch = true;
    else if (a == "--json")
      o.json = next();
    else if (a == "--label")
      o.label = next();
    else {
      fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  const std::map<std::string, Target> targets = {{"presenced", Target::kPresenced},
                                                 {"floor", Target::kFloor},
                                                 {"node", Target::kNode},
                                                 {"yws", Target::kYws}};
  const std::map<std::string, Mode> modes = {{"churn", Mode::kChurn},
                                             {"idle", Mode::kIdle},
                                             {"storm", Mode::kStorm},
                                             {"devices", Mode::kDevices},
                                             {"connect", Mode::kConnect}};
  if (!targets.count(o.target_name) || !modes.count(o.mode_name)) {
    fprintf(stderr,
            "--target is presenced|floor|node|yws; --mode is churn|idle|storm|devices|connect\n");
    return 2;
  }
  o.target = targets.at(o.target_name);
  o.mode = modes.at(o.mode_name);
  if (o.target == Target::kPresenced && o.secret.empty()) {
    fprintf(stderr, "--secret is required for --target presenced\n");
    return 2;
  }
  if (o.conns < 1 || o.channel_size < 1 || o.devices < 2 || o.window < 1) {
    fprintf(stderr,
            "--conns, --channel-size and --window must be positive; --devices at least 2\n");
    return 2;
  }
  if ((o.mode == Mode::kDevices || o.mode == Mode::kConnect) && o.target != Target::kPresenced) {
    fprintf(stderr, "--mode %s needs --target presenced\n", o.mode_name.c_str());
    return 2;
  }
  return Generator(o).Run();
}
