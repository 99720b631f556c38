#include "cluster/log.h"

#include <charconv>
#include <cstdlib>

namespace presenced::cluster {

namespace {

// KEYS: nodes, inc, log, entry number. ARGV: node, incarnation, maxlen, body...
const redis::Script& AppendScript() {
  static const redis::Script s(R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return redis.error_reply('FENCED this incarnation was replaced or reaped')
end
local deadline = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
if deadline < now then
  return redis.error_reply('LEASE the lease is not current: renew it first')
end
local ids = {}
for i = 4, #ARGV do
  ids[#ids + 1] = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'n', ARGV[1],
                             'i', ARGV[2], 'q', redis.call('INCR', KEYS[4]), 'b', ARGV[i])
end
return ids
)lua");
  return s;
}

struct Id {
  uint64_t ms = 0;
  uint64_t seq = 0;
};

Id ParseId(const std::string& id) {
  Id out;
  const size_t dash = id.find('-');
  const char* p = id.data();
  std::from_chars(p, p + (dash == std::string::npos ? id.size() : dash), out.ms);
  if (dash != std::string::npos) std::from_chars(p + dash + 1, p + id.size(), out.seq);
  return out;
}

}  // namespace

bool IdBefore(const std::string& a, const std::string& b) {
  const Id x = ParseId(a);
  const Id y = ParseId(b);
  return x.ms != y.ms ? x.ms < y.ms : x.seq < y.seq;
}

Log::Log(Reactor& reactor, redis::Client& writer, redis::ClientOptions reader_options,
         LogOptions options)
    : reactor_(reactor),
      writer_(writer),
      reader_(reactor, std::move(reader_options)),
      options_(std::move(options)) {
  reader_.OnState([this](bool up) {
    ++generation_;
    in_flight_ = false;
    if (up && reading_) ReadMore();
  });
}

Log::~Log() { *alive_ = false; }

void Log::Append(const std::string& node, const std::string& incarnation,
                 std::vector<std::string> bodies, std::function<void(const redis::Reply&)> done) {
  std::vector<std::string> args{node, incarnation, std::to_string(options_.max_entries)};
  for (auto& b : bodies) args.push_back(std::move(b));
  writer_.Eval(AppendScript(),
               {"{presenced}:nodes", "{presenced}:inc", options_.key, options_.number_key},
               std::move(args), std::move(done));
}

void Log::Resume(std::string after, std::optional<uint64_t> number) {
  paused_ = false;
  position_ = std::move(after);
  expected_ = number ? std::optional<uint64_t>(*number + 1) : std::nullopt;
  ReadMore();
}

void Log::Read(std::string after, std::optional<uint64_t> number, EntriesCallback on_entries,
               std::function<bool(bool restarted)> on_gap) {
  position_ = std::move(after);
  expected_ = number ? std::optional<uint64_t>(*number + 1) : std::nullopt;
  on_entries_ = std::move(on_entries);
  on_gap_ = std::move(on_gap);
  reading_ = true;
  if (reader_.up()) {
    ReadMore();
  } else {
    reader_.Start();
  }
}

void Log::ReadMore() {
  if (in_flight_ || paused_ || !reading_ || !reader_.up()) return;
  in_flight_ = true;
  reader_.Command(
      {"XREAD", "COUNT", std::to_string(options_.read_count), "BLOCK",
       std::to_string(options_.block_ms), "STREAMS", options_.key, position_},
      [this, alive = alive_, gen = generation_](const redis::Reply& r) {
        if (!*alive || gen != generation_) return;
        in_flight_ = false;
        if (r.type == redis::Reply::Type::kUnavailable) return;  // read again when up
        std::vector<LogEntry> entries;
        bool gap = false;
        bool restarted = false;
        if (r.type == redis::Reply::Type::kArray) {
          for (const auto& stream : r.elements) {
            if (stream.elements.size() != 2) continue;
            for (const auto& e : stream.elements[1].elements) {
              if (e.elements.size() != 2) continue;
              LogEntry entry;
              entry.id = e.elements[0].str;
              const Id id = ParseId(entry.id);
              entry.time = static_cast<TimeMs>(id.ms);
              entry.seq = id.seq;
              const auto& fields = e.elements[1].elements;
              for (size_t i = 0; i + 1 < fields.size(); i += 2) {
                const std::string& f = fields[i].str;
                if (f == "n") entry.node = fields[i + 1].str;
                if (f == "i") entry.incarnation = fields[i + 1].str;
                if (f == "b") entry.body = fields[i + 1].str;
                if (f == "q") entry.number = std::strtoull(fields[i + 1].str.c_str(), nullptr, 10);
              }
              // A number skipped: entries were missed. Those before it are handed over first.
              if (gap) continue;
              if (entry.number != 0 && expected_ && entry.number != *expected_) {
                gap = true;
                restarted = entry.number == 1;
                continue;
              }
              if (entry.number != 0) expected_ = entry.number + 1;
              entries.push_back(std::move(entry));
            }
          }
        }
        if (!entries.empty()) {
          position_ = entries.back().id;
          if (on_entries_) on_entries_(entries);
          if (!*alive) return;
        }
        if (gap) {
          if (on_gap_ && on_gap_(restarted)) {
            paused_ = true;  // until Resume
            return;
          }
          expected_.reset();  // on with what is there (read again from the last handed over)
        }
        ReadMore();
      },
      std::chrono::milliseconds(options_.block_ms));
}

}  // namespace presenced::cluster
