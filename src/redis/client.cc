#include "redis/client.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include <algorithm>
#include <boost/url/parse.hpp>
#include <charconv>
#include <random>
#include <utility>

namespace presenced::redis {

Result<Url> ParseUrl(std::string_view text) {
  auto bad = [&](std::string why) {
    return MakeError(ErrorCode::kBadRequest, "redis url \"" + std::string(text) + "\": " + why);
  };
  auto parsed = boost::urls::parse_uri(boost::core::string_view(text.data(), text.size()));
  if (!parsed) return bad("not a URL (redis://[:password@]host:port[/db])");
  if (parsed->scheme() != "redis") return bad("the scheme must be redis://");
  if (parsed->has_query() || parsed->has_fragment()) return bad("no query or fragment allowed");
  Url url;
  url.host = parsed->host_address();
  if (url.host.empty()) return bad("no host");
  if (parsed->has_port()) {
    const auto port = parsed->port();
    uint32_t n = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
    if (ec != std::errc() || end != port.data() + port.size() || n == 0 || n > 65535) {
      return bad("the port must be 1-65535");
    }
    url.port = static_cast<uint16_t>(n);
  }
  if (parsed->has_userinfo()) {
    url.user = parsed->user();
    url.password = parsed->password();
    if (url.password.empty()) return bad("a user without a password");
  }
  std::string path = parsed->path();
  if (!path.empty() && path != "/") {
    const std::string_view digits = std::string_view(path).substr(1);
    int db = -1;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), db);
    if (path[0] != '/' || ec != std::errc() || end != digits.data() + digits.size() || db < 0 ||
        db > 15) {
      return bad("the path must be a database number 0-15");
    }
    url.db = db;
  }
  return url;
}

Script::Script(std::string source) : source_(std::move(source)) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(source_.data(), source_.size(), md, &len, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < len; ++i) {
    sha1_ += kHex[md[i] >> 4];
    sha1_ += kHex[md[i] & 15];
  }
}

namespace {

Reply Convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      out.type = Reply::Type::kNil;
  }
  return out;
}

// One command's callback, owned by hiredis until its reply (or the connection's end).
}  // namespace

struct Client::Call {
  Client::Callback callback;
  std::shared_ptr<bool> alive;  // the Client's: false once it is being destroyed
  Client* client;
};

struct Client::Hooks {
  static Client* Of(const redisAsyncContext* ac) { return static_cast<Client*>(ac->data); }
  static void AddRead(void* p) {
    auto* c = static_cast<Client*>(p);
    if (c->watch_) c->watch_->StartReading();
  }
  static void Ignore(void*) {}
  static void AddWrite(void* p) { static_cast<Client*>(p)->WantWrite(); }
  static void Cleanup(void* p) { static_cast<Client*>(p)->watch_.reset(); }
  static void OnConnect(const redisAsyncContext* ac, int status) {
    Client* c = Of(ac);
    if (!c || !*c->alive_) return;
    if (status != REDIS_OK) {
      c->ac_ = nullptr;  // hiredis frees it when this returns
      c->Lost(ac->errstr ? ac->errstr : "connect failed");
      return;
    }
    c->Handshake();
  }
  static void OnDisconnect(const redisAsyncContext* ac, int /*status*/) {
    Client* c = Of(ac);
    if (!c || !*c->alive_) return;
    c->ac_ = nullptr;
    c->Lost(ac->errstr ? ac->errstr : "disconnected");
  }
  static void OnReply(redisAsyncContext* /*ac*/, void* r, void* privdata) {
    std::unique_ptr<Call> call(static_cast<Call*>(privdata));
    if (!*call->alive) return;
    // A real reply (not the end of the connection): the oldest pending command is answered.
    if (r && !call->client->due_.empty()) call->client->due_.pop_front();
    call->callback(r ? Convert(static_cast<redisReply*>(r))
                     : Reply::Unavailable("the connection to redis was lost"));
  }
  static void OnSubscription(redisAsyncContext* ac, void* r, void* /*privdata*/) {
    Client* c = Of(ac);
    if (!r || !c || !*c->alive_) return;
    const auto* reply = static_cast<redisReply*>(r);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    const redisReply* kind = reply->element[0];
    const redisReply* channel = reply->element[1];
    if (kind->type != REDIS_REPLY_STRING || channel->type != REDIS_REPLY_STRING) return;
    const std::string_view k(kind->str, kind->len);
    const std::string_view ch(channel->str, channel->len);
    if (k == "message" && reply->element[2]->type == REDIS_REPLY_STRING) {
      if (c->on_message_) c->on_message_(ch, {reply->element[2]->str, reply->element[2]->len});
    } else if (k == "subscribe") {
      c->Subscribed(std::string(ch));
    }
  }
};

Client::Client(Reactor& reactor, ClientOptions options)
    : reactor_(reactor),
      options_(std::move(options)),
      reconnect_timer_(reactor.MakeTimer([this] { Connect(); })),
      connect_timer_(reactor.MakeTimer([this] {
        if (state_ == State::kConnecting || state_ == State::kHandshake) {
          Abort("no answer from redis within " + std::to_string(options_.connect_timeout.count()) +
                " ms");
        }
      })),
      reply_timer_(reactor.MakeTimer([this] { CheckReplies(); })) {}

Client::~Client() {
  *alive_ = false;
  reconnect_timer_.reset();
  connect_timer_.reset();
  reply_timer_.reset();
  if (ac_) {
    redisAsyncContext* ac = ac_;
    ac_ = nullptr;
    redisAsyncFree(ac);  // runs the pending callbacks with no reply: they see alive_ false
  }
}

void Client::Start() {
  if (state_ == State::kIdle && !ac_) Connect();
}

void Client::Connect() {
  ++generation_;
  redisAsyncContext* ac = redisAsyncConnect(options_.url.host.c_str(), options_.url.port);
  if (!ac) return Lost("out of memory");
  if (ac->err) {
    std::string why = ac->errstr;
    redisAsyncFree(ac);
    return Lost(why);
  }
  ac_ = ac;
  ac->data = this;
  state_ = State::kConnecting;
  watch_ = reactor_.Watch(ac->c.fd, Reactor::FdCallbacks{
                                        .read = [this](std::string_view bytes) { OnBytes(bytes); },
                                        .read_end = [this] { OnReadEnd(); },
                                        .writable = [this] { WriteNow(); },
                                    });
  ac->ev.data = this;
  ac->ev.addRead = &Hooks::AddRead;
  ac->ev.delRead = &Hooks::Ignore;
  ac->ev.addWrite = &Hooks::AddWrite;
  ac->ev.delWrite = &Hooks::Ignore;
  ac->ev.cleanup = &Hooks::Cleanup;
  redisAsyncSetDisconnectCallback(ac, &Hooks::OnDisconnect);
  connect_timer_->Arm(options_.connect_timeout);
  // hiredis asks for a write readiness here: the connect's completion.
  redisAsyncSetConnectCallback(ac, &Hooks::OnConnect);
}

// hiredis reads the socket itself, but only once per call: the bytes the loop read are fed to its
// reader first, then it reads what else is there (or finds nothing) and runs the callbacks.
void Client::OnBytes(std::string_view bytes) {
  if (!ac_) return;
  redisReaderFeed(ac_->c.reader, bytes.data(), bytes.size());
  redisAsyncHandleRead(ac_);
}

void Client::OnReadEnd() {
  if (!ac_) return;
  const uint64_t gen = generation_;
  redisAsyncHandleRead(ac_);  // finds the end of stream (or the error) itself and disconnects
  if (ac_ && gen == generation_) Abort("redis closed the connection");
}

// A write hiredis wants: while connecting, the connect's completion; inside a write that could
// not take everything, the kernel's room; otherwise the write runs on the loop's next turn, so
// the commands given meanwhile leave in one write (pipelining).
void Client::WantWrite() {
  if (!ac_ || !watch_) return;
  if (state_ == State::kConnecting || in_write_) {
    watch_->WaitWritable();
    return;
  }
  if (write_posted_) return;
  write_posted_ = true;
  reactor_.Post([this, alive = alive_, gen = generation_] {
    if (!*alive) return;
    write_posted_ = false;
    if (gen == generation_ && ac_) WriteNow();
  });
}

void Client::WriteNow() {
  if (!ac_) return;
  in_write_ = true;
  redisAsyncHandleWrite(ac_);
  in_write_ = false;
}

void Client::Handshake() {
  state_ = State::kHandshake;
  std::vector<std::vector<std::string>> steps;
  if (!options_.url.password.empty()) {
    if (options_.url.user.empty()) {
      steps.push_back({"AUTH", options_.url.password});
    } else {
      steps.push_back({"AUTH", options_.url.user, options_.url.password});
    }
  }
  if (options_.url.db != 0) steps.push_back({"SELECT", std::to_string(options_.url.db)});
  if (!options_.name.empty()) steps.push_back({"CLIENT", "SETNAME", options_.name});
  if (steps.empty()) return Ready();
  auto failed = std::make_shared<std::string>();
  for (size_t i = 0; i < steps.size(); ++i) {
    const bool last = i + 1 == steps.size();
    Send(std::move(steps[i]), [this, failed, last, gen = generation_](const Reply& r) {
      if (gen != generation_) return;
      if (!r.ok() && failed->empty()) *failed = r.str;
      if (!last) return;
      if (failed->empty()) {
        Ready();
      } else {
        Abort("handshake: " + *failed);
      }
    });
  }
}

void Client::Ready() {
  connect_timer_->Cancel();
  state_ = State::kReady;
  attempts_ = 0;
  ++connects_;
  if (channels_.empty()) {
    if (on_state_) on_state_(true);
    return;
  }
  // A subscriber is up once Redis confirmed every subscription.
  reported_up_ = false;
  for (const auto& ch : channels_) {
    awaiting_.insert(ch);
    SendSubscribe(ch);
  }
}

void Client::Subscribed(const std::string& channel) {
  if (awaiting_.erase(channel) == 0) return;
  if (auto it = on_subscribed_.find(channel); it != on_subscribed_.end()) {
    auto done = std::move(it->second);
    on_subscribed_.erase(it);
    done();
  }
  if (awaiting_.empty() && !reported_up_ && state_ == State::kReady) {
    reported_up_ = true;
    if (on_state_) on_state_(true);
  }
}

// Ends the connection on the client's own verdict (a timeout, a failed handshake, a stream that
// ended): the context is detached from this Client first (hiredis defers the free when this runs
// inside one of its callbacks, and what it then runs must not reach the next connection), its
// pending commands are answered kUnavailable, then the client reconnects.
void Client::Abort(std::string why) {
  if (ac_) {
    redisAsyncContext* ac = ac_;
    ac_ = nullptr;
    ac->data = nullptr;
    ac->ev = {};
    ac->onConnect = nullptr;
    ac->onDisconnect = nullptr;
    redisAsyncFree(ac);
  }
  watch_.reset();
  Lost(std::move(why));
}

void Client::Lost(std::string why) {
  const bool was_up = state_ == State::kReady;
  due_.clear();
  if (reply_timer_) reply_timer_->Cancel();
  state_ = State::kIdle;
  ++generation_;
  awaiting_.clear();
  connect_timer_->Cancel();
  last_error_ = std::move(why);
  if (was_up && on_state_) on_state_(false);
  if (!*alive_) return;
  ++attempts_;
  const auto shift = std::min<uint32_t>(attempts_ - 1, 16);
  const int64_t base =
      std::min<int64_t>(options_.backoff_max.count(), options_.backoff_min.count() << shift);
  // Jitter: between half and all of the step, so nodes that lost Redis together spread out.
  static thread_local std::minstd_rand rng{std::random_device{}()};
  const int64_t delay =
      base / 2 + static_cast<int64_t>(rng() % static_cast<uint64_t>(base / 2 + 1));
  reconnect_timer_->Arm(std::chrono::milliseconds(delay));
}

// Runs while commands are pending: the oldest must be answered by its due time.
void Client::CheckReplies() {
  if (due_.empty() || !ac_) return;
  const auto now = std::chrono::steady_clock::now();
  if (due_.front() <= now) {
    return Abort("no reply from redis within " + std::to_string(options_.reply_timeout.count()) +
                 " ms");
  }
  reply_timer_->Arm(std::chrono::ceil<std::chrono::milliseconds>(due_.front() - now));
}

void Client::Send(std::vector<std::string> args, Callback callback,
                  std::chrono::milliseconds allowance) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* call = new Call{std::move(callback), alive_, this};
  if (redisAsyncCommandArgv(ac_, &Hooks::OnReply, call, static_cast<int>(argv.size()), argv.data(),
                            lens.data()) == REDIS_OK) {
    if (options_.reply_timeout.count() > 0) {
      const bool first = due_.empty();
      due_.push_back(std::chrono::steady_clock::now() + options_.reply_timeout + allowance);
      if (first) reply_timer_->Arm(options_.reply_timeout + allowance);
    }
  } else {
    std::unique_ptr<Call> owned(call);
    reactor_.Post([cb = std::move(owned->callback), alive = alive_] {
      if (*alive) cb(Reply::Unavailable("redis is down"));
    });
  }
}

void Client::Command(std::vector<std::string> args, Callback callback,
                     std::chrono::milliseconds allowance) {
  if (state_ != State::kReady || !ac_) {
    reactor_.Post([cb = std::move(callback), alive = alive_, why = DownReason()] {
      if (*alive) cb(Reply::Unavailable(why));
    });
    return;
  }
  Send(std::move(args), std::move(callback), allowance);
}

void Client::Eval(const Script& script, std::vector<std::string> keys,
                  std::vector<std::string> args, Callback callback) {
  auto make = [&script, &keys, &args](const std::string& verb, const std::string& body) {
    std::vector<std::string> cmd{verb, body, std::to_string(keys.size())};
    cmd.insert(cmd.end(), keys.begin(), keys.end());
    cmd.insert(cmd.end(), args.begin(), args.end());
    (void)script;
    return cmd;
  };
  std::vector<std::string> by_sha = make("EVALSHA", script.sha1());
  std::vector<std::string> whole = make("EVAL", script.source());
  Command(std::move(by_sha),
          [this, whole = std::move(whole), cb = std::move(callback)](const Reply& r) mutable {
            if (r.type == Reply::Type::kError && r.str.rfind("NOSCRIPT", 0) == 0) {
              return Command(std::move(whole), std::move(cb));
            }
            cb(r);
          });
}

void Client::Subscribe(const std::string& channel, std::function<void()> on_subscribed) {
  if (!channels_.insert(channel).second) {
    if (on_subscribed) {
      if (awaiting_.count(channel) == 0 && state_ == State::kReady) {
        reactor_.Post([alive = alive_, done = std::move(on_subscribed)] {
          if (*alive) done();
        });
      } else {
        on_subscribed_[channel] = std::move(on_subscribed);
      }
    }
    return;
  }
  if (on_subscribed) on_subscribed_[channel] = std::move(on_subscribed);
  if (state_ == State::kReady && ac_) {
    awaiting_.insert(channel);
    SendSubscribe(channel);
  }
}

void Client::Unsubscribe(const std::string& channel) {
  if (channels_.erase(channel) == 0) return;
  awaiting_.erase(channel);
  on_subscribed_.erase(channel);
  if (state_ != State::kReady || !ac_) return;
  const char* argv[] = {"UNSUBSCRIBE", channel.data()};
  const size_t lens[] = {11, channel.size()};
  redisAsyncCommandArgv(ac_, &Hooks::OnSubscription, nullptr, 2, argv, lens);
}

void Client::SendSubscribe(const std::string& channel) {
  const char* argv[] = {"SUBSCRIBE", channel.data()};
  const size_t lens[] = {9, channel.size()};
  redisAsyncCommandArgv(ac_, &Hooks::OnSubscription, nullptr, 2, argv, lens);
}

std::string Client::DownReason() const {
  return last_error_.empty() ? "redis is not connected yet" : "redis is down: " + last_error_;
}

}  // namespace presenced::redis
