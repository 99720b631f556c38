#include "cluster/node.h"

#include <random>

namespace presenced::cluster {

namespace {

// KEYS: nodes, inc, epoch, last, served. The common head: Redis's clock, and the serving rule.
constexpr const char* kHead = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
local last = tonumber(redis.call('GET', KEYS[4]) or '0')
if now - last > lease then redis.call('SET', KEYS[5], now) end
redis.call('SET', KEYS[4], now)
)lua";

// ARGV: node, incarnation, lease, candidate epoch; KEYS[6], [7]: the log and its entry numbers.
// Returns {epoch, now}. An
// earlier incarnation of the same node (a restart, or this process after it was fenced) is
// reaped at once: one `reap` entry, dated when its lease ended (or now, if it had not yet).
const redis::Script& RegisterScript() {
  static const redis::Script s(std::string(kHead) + R"lua(
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[3], epoch)
end
local previous = redis.call('HGET', KEYS[2], ARGV[1])
local old_deadline = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or now)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
if previous and previous ~= ARGV[2] then
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', '1000000', '*', 'n', ARGV[1], 'i', ARGV[2],
             'q', redis.call('INCR', KEYS[7]), 'b',
             cjson.encode({k = 'reap', node = ARGV[1], inc = previous,
                           at = math.min(old_deadline, now)}))
end
return {epoch, tostring(now)}
)lua");
  return s;
}

// ARGV: node, incarnation, lease. Run by a node holding a current lease: each node whose lease
// expired while Redis served is removed, and one `reap` entry (dated at its deadline) tells every
// node to count its connections as dropped then. A deadline that passed before Redis served
// again (an outage no node bridged) gets a lease from then on instead: time to come back.
const redis::Script& ReapScript() {
  static const redis::Script s(R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0') < now then return 0 end
local served = tonumber(redis.call('GET', KEYS[5]) or '0')
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'WITHSCORES', 'LIMIT', 0, 16)
local reaped = 0
for i = 1, #dead, 2 do
  local node = dead[i]
  local deadline = tonumber(dead[i + 1])
  if deadline < served then
    redis.call('ZADD', KEYS[1], served + lease, node)
  else
    local inc = redis.call('HGET', KEYS[2], node) or ''
    redis.call('HDEL', KEYS[2], node)
    redis.call('ZREM', KEYS[1], node)
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', '1000000', '*', 'n', ARGV[1], 'i', ARGV[2],
             'q', redis.call('INCR', KEYS[7]), 'b',
               cjson.encode({k = 'reap', node = node, inc = inc, at = deadline}))
    reaped = reaped + 1
  end
end
return reaped
)lua");
  return s;
}

// ARGV: node, incarnation, lease, epoch. Errors: EPOCH (Redis lost its data), FENCED.
const redis::Script& RenewScript() {
  static const redis::Script s(std::string(kHead) + R"lua(
local epoch = redis.call('GET', KEYS[3])
if epoch ~= ARGV[4] then return redis.error_reply('EPOCH the cluster epoch changed') end
local inc = redis.call('HGET', KEYS[2], ARGV[1])
local deadline = redis.call('ZSCORE', KEYS[1], ARGV[1])
if inc ~= ARGV[2] or not deadline then
  return redis.error_reply('FENCED this incarnation was replaced or reaped')
end
deadline = tonumber(deadline)
local served = tonumber(redis.call('GET', KEYS[5]) or '0')
if deadline < now and deadline >= served then
  return redis.error_reply('FENCED the lease expired while redis was serving')
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
return tostring(now)
)lua");
  return s;
}

// ARGV: node, incarnation. Removes the lease if it is still this incarnation's.
const redis::Script& LeaveScript() {
  static const redis::Script s(R"lua(
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
)lua");
  return s;
}

}  // namespace

std::string RandomHex(size_t bytes) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    const auto b = static_cast<unsigned>(rng() & 0xff);
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

Node::Node(Reactor& reactor, const Clock& clock, NodeOptions options, redis::Url url,
           Callbacks callbacks)
    : reactor_(reactor),
      clock_(clock),
      options_(std::move(options)),
      client_(reactor,
              redis::ClientOptions{
                  .url = std::move(url),
                  .name = "presenced-" +
                          (options_.node_id.empty() ? std::string("node") : options_.node_id),
                  .connect_timeout =
                      std::chrono::milliseconds(std::max<int64_t>(100, options_.lease_ms / 3)),
                  // A renewal unanswered for half a lease: Redis is
                  // not answering, and healthz must say so before the
                  // lease ends.
                  .reply_timeout =
                      std::chrono::milliseconds(std::max<int64_t>(100, options_.lease_ms / 2))}),
      callbacks_(std::move(callbacks)),
      renew_timer_(reactor.MakeTimer([this] { Renew(); })),
      node_id_(options_.node_id.empty() ? RandomHex(6) : options_.node_id) {
  client_.OnState([this](bool up) {
    if (leaving_) return;
    if (up) {
      Rejoin();
    } else {
      registered_ = false;
      renew_timer_->Cancel();
      SetHealth(false);
    }
  });
}

Node::~Node() = default;

void Node::Start() { client_.Start(); }

std::vector<std::string> Node::Keys() const {
  return {"{presenced}:nodes",  "{presenced}:inc", "{presenced}:epoch", "{presenced}:last",
          "{presenced}:served", kLogKey,           kLogNumberKey};
}

void Node::Register() {
  held_ = false;
  incarnation_ = RandomHex(8);
  client_.Eval(RegisterScript(), Keys(),
               {node_id_, incarnation_, std::to_string(options_.lease_ms), RandomHex(8)},
               [this, inc = incarnation_](const redis::Reply& r) {
                 if (leaving_ || inc != incarnation_) return;
                 if (r.type == redis::Reply::Type::kUnavailable) return;  // registers when up
                 if (!r.ok() || r.elements.size() != 2) {
                   // A script error is not expected; try again after a renewal's interval.
                   renew_timer_->Arm(std::chrono::milliseconds(options_.lease_ms / 3));
                   return;
                 }
                 registered_ = true;
                 held_ = true;
                 last_renewed_ = clock_.NowMs();
                 connects_at_renewal_ = client_.connects();
                 if (r.elements[0].str != epoch_) {
                   epoch_ = r.elements[0].str;
                   if (callbacks_.epoch) callbacks_.epoch(epoch_);
                 }
                 SetHealth(true);
                 renew_timer_->Arm(std::chrono::milliseconds(options_.lease_ms / 3));
               });
}

void Node::Renew() {
  if (leaving_) return;
  if (!registered_) {
    if (client_.up()) Rejoin();
    return;
  }
  // A renewal more than a lease late on a connection that never dropped: this process stalled
  // while Redis served, so its lease may already be reaped. It does not ask: it is fenced.
  if (clock_.NowMs() - last_renewed_ > options_.lease_ms &&
      client_.connects() == connects_at_renewal_) {
    return Fenced();
  }
  SendRenewal();
}

void Node::Rejoin() {
  if (!held_) return Register();
  SendRenewal();
}

void Node::SendRenewal() {
  client_.Eval(RenewScript(), Keys(),
               {node_id_, incarnation_, std::to_string(options_.lease_ms), epoch_},
               [this, inc = incarnation_](const redis::Reply& r) {
                 if (leaving_ || inc != incarnation_ || !held_) return;
                 if (r.type == redis::Reply::Type::kUnavailable) return;  // rejoins when up
                 if (r.type == redis::Reply::Type::kError) {
                   if (r.str.rfind("FENCED", 0) == 0) return Fenced();
                   if (r.str.rfind("EPOCH", 0) == 0) {
                     registered_ = false;
                     return Register();  // under the new epoch (the callback tells)
                   }
                   // Not expected: not a renewal; asked again after an interval.
                   renew_timer_->Arm(std::chrono::milliseconds(options_.lease_ms / 3));
                   return;
                 }
                 registered_ = true;
                 last_renewed_ = clock_.NowMs();
                 connects_at_renewal_ = client_.connects();
                 SetHealth(true);
                 renew_timer_->Arm(std::chrono::milliseconds(options_.lease_ms / 3));
                 Reap();
               });
}

void Node::Reap() {
  client_.Eval(ReapScript(), Keys(), {node_id_, incarnation_, std::to_string(options_.lease_ms)},
               [this](const redis::Reply& r) {
                 if (r.type == redis::Reply::Type::kInteger) reaped_ += r.integer;
               });
}

void Node::Fenced() {
  registered_ = false;
  held_ = false;
  renew_timer_->Cancel();
  ++fenced_count_;
  if (callbacks_.fenced) callbacks_.fenced();
  if (client_.up()) Register();  // a new incarnation
}

void Node::SetHealth(bool up) {
  if (up == healthy_) return;
  healthy_ = up;
  if (callbacks_.health) callbacks_.health(up);
}

void Node::Leave(std::function<void()> done) {
  leaving_ = true;
  renew_timer_->Cancel();
  // Also while a renewal after a reconnect is on its way: the incarnation still holds its lease.
  if (!held_ || !client_.up()) {
    reactor_.Post(std::move(done));
    return;
  }
  registered_ = false;
  held_ = false;
  client_.Eval(LeaveScript(), Keys(), {node_id_, incarnation_},
               [done = std::move(done)](const redis::Reply&) { done(); });
}

}  // namespace presenced::cluster
