#include "cluster/log.h"

#include <charconv>

namespace presenced::cluster {

namespace {

// KEYS: nodes, inc, log. ARGV: node, incarnation, maxlen, body...
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
  ids[#ids + 1] = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*',
                             'n', ARGV[1], 'i', ARGV[2], 'b', ARGV[i])
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
    if (up && reading_) CheckGapThenRead();
  });
}

Log::~Log() { *alive_ = false; }

void Log::Append(const std::string& node, const std::string& incarnation,
                 std::vector<std::string> bodies, std::function<void(const redis::Reply&)> done) {
  std::vector<std::string> args{node, incarnation, std::to_string(options_.max_entries)};
  for (auto& b : bodies) args.push_back(std::move(b));
  writer_.Eval(AppendScript(), {"{presenced}:nodes", "{presenced}:inc", options_.key},
               std::move(args), std::move(done));
}

void Log::Resume(std::string after) {
  paused_ = false;
  position_ = std::move(after);
  if (reader_.up() && !in_flight_) CheckGapThenRead();
}

void Log::Read(std::string after, EntriesCallback on_entries, std::function<bool()> on_gap) {
  position_ = std::move(after);
  on_entries_ = std::move(on_entries);
  on_gap_ = std::move(on_gap);
  reading_ = true;
  if (reader_.up()) {
    CheckGapThenRead();
  } else {
    reader_.Start();
  }
}

// Before reading after `position_`: is that entry still in the stream? If it is not and the
// stream now begins after it, entries were trimmed unread (or Redis lost the stream).
void Log::CheckGapThenRead() {
  if (paused_) return;
  if (position_ == "0-0") return ReadMore();
  in_flight_ = true;
  reader_.Command({"XRANGE", options_.key, position_, position_, "COUNT", "1"},
                  [this, alive = alive_, gen = generation_](const redis::Reply& mine) {
                    if (!*alive || gen != generation_ || !mine.ok()) return;
                    if (!mine.elements.empty()) {
                      in_flight_ = false;
                      return ReadMore();
                    }
                    reader_.Command({"XRANGE", options_.key, "-", "+", "COUNT", "1"},
                                    [this, alive, gen](const redis::Reply& first) {
                                      if (!*alive || gen != generation_ || !first.ok()) return;
                                      in_flight_ = false;
                                      const bool gap =
                                          first.elements.empty() ||
                                          IdBefore(position_, first.elements[0].elements.at(0).str);
                                      if (gap && on_gap_ && on_gap_()) {
                                        paused_ = true;  // until Resume
                                        return;
                                      }
                                      if (gap) position_ = "0-0";  // on with what is left
                                      ReadMore();
                                    });
                  });
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
              }
              entries.push_back(std::move(entry));
            }
          }
        }
        if (!entries.empty()) {
          position_ = entries.back().id;
          if (on_entries_) on_entries_(entries);
          if (!*alive) return;
        }
        ReadMore();
      },
      std::chrono::milliseconds(options_.block_ms));
}

}  // namespace presenced::cluster
