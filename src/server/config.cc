// Settings, their sources and checks (config.h); main's thread, at start.
#include "server/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <type_traits>

#include "common/random.h"
#include "redis/client.h"

namespace presenced::server {

namespace {

struct Setting {
  SettingInfo info;
  std::function<Status(Config&, const std::string&)> set;
};

// How a setting is written (Int, Real, Text), for --help: its type, range and default.
struct Setter {
  std::function<Status(Config&, const std::string&)> set;
  std::string type;                               // INT, NUMBER, TEXT
  std::string range;                              // "10 to 3600000", or empty
  std::function<std::string(Config&)> show = {};  // the field's value as text
};

Error Bad(const std::string& key, const std::string& why) {
  return MakeError(ErrorCode::kBadRequest, "setting " + key + ": " + why);
}

// The field a setting writes: FIELD(net.heartbeat_ms) is a function from a Config to that member.
#define FIELD(member) \
  [](Config & c) -> auto& { return c.member; }

// An integer setting in [min, max]. Every setting has an upper bound: a value a deployment could
// not mean (a heartbeat of 292 million years) would only overflow somewhere later.
template <typename Field>
Setter Int(Field field, std::string key, int64_t min, int64_t max) {
  auto set = [field, key, min, max](Config& c, const std::string& v) -> Status {
    int64_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec == std::errc::result_out_of_range) {
      return Bad(key, "must be from " + std::to_string(min) + " to " + std::to_string(max));
    }
    if (ec != std::errc() || p != v.data() + v.size()) return Bad(key, "not an integer: " + v);
    if (n < min || n > max) {
      return Bad(
          key, "must be from " + std::to_string(min) + " to " + std::to_string(max) + ", got " + v);
    }
    auto& target = field(c);
    target = static_cast<std::remove_reference_t<decltype(target)>>(n);
    return Status::Ok();
  };
  return Setter{set, "INT", std::to_string(min) + " to " + std::to_string(max),
                [field](Config& c) { return std::to_string(field(c)); }};
}

template <typename Field>
Setter Real(Field field, std::string key, double max) {
  auto set = [field, key, max](Config& c, const std::string& v) -> Status {
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (v.empty() || end != v.c_str() + v.size() || !(d > 0) || !(d <= max)) {
      return Bad(key, "must be a positive number of at most " + std::to_string(max));
    }
    field(c) = d;
    return Status::Ok();
  };
  char text[32];
  std::snprintf(text, sizeof text, "%g", max);
  return Setter{set, "NUMBER", std::string("above 0, at most ") + text, [field](Config& c) {
                  char v[32];
                  std::snprintf(v, sizeof v, "%g", field(c));
                  return std::string(v);
                }};
}

template <typename Field>
Setter Text(Field field) {
  return Setter{[field](Config& c, const std::string& v) -> Status {
                  field(c) = v;
                  return Status::Ok();
                },
                "TEXT", "", [field](Config& c) { return std::string(field(c)); }};
}

// The items of a comma-separated list, spaces around each trimmed, empty ones left out.
std::vector<std::string> SplitList(const std::string& v) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= v.size()) {
    const size_t comma = std::min(v.find(',', start), v.size());
    std::string item = v.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(std::move(item));
    start = comma + 1;
  }
  return out;
}

constexpr int64_t kHour = 3600LL * 1000;
constexpr int64_t kDay = 24 * kHour;
constexpr int64_t kYear = 365 * kDay;
constexpr int64_t kGiB = 1LL << 30;

const std::vector<Setting>& Table() {
  static const std::vector<Setting> table = [] {
    std::vector<Setting> t;
    const Config defaults;
    auto add = [&](std::string key, std::string help, auto setter) {
      std::string env = "PRESENCED_";
      std::string flag = "--";
      for (char c : key) {
        env.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
        flag.push_back(c == '_' ? '-' : c);
      }
      Setter s;
      if constexpr (std::is_same_v<decltype(setter), Setter>) {
        s = std::move(setter);
      } else {
        s = Setter{setter, "LIST", ""};  // a list or a choice, checked by its own setter
      }
      SettingInfo info{key, env, flag, std::move(help)};
      info.type = s.type;
      if (key.ends_with("_ms")) {
        info.unit = "milliseconds";
      } else if (key.ends_with("_bytes")) {
        info.unit = "bytes";
      }
      info.range = s.range;
      if (s.show) {
        Config copy = defaults;
        info.default_value = s.show(copy);
      }
      t.push_back(Setting{std::move(info), std::move(s.set)});
    };
    add("listen", "host:port for WebSocket, REST, metrics", Text(FIELD(listen)));
    add("data_dir", "directory for durable data, the secret and the API key",
        Text(FIELD(data_dir)));
    add("jwt_secret", "HS256 secret for client tokens (default: generated into data_dir)",
        Text(FIELD(protocol.jwt_secret)));
    add("api_key", "API key for REST (default: generated into data_dir)",
        Text(FIELD(protocol.api_key)));
    add("allowed_origins",
        "browser origins allowed to connect and call REST (CORS), comma-separated, or *; "
        "unset: any origin, no CORS headers",
        [](Config& c, const std::string& v) -> Status {
          std::vector<std::string> origins;
          for (std::string o : SplitList(v)) {
            while (!o.empty() && o.back() == '/') o.pop_back();
            if (o != "*" && o.find("://") == std::string::npos) {
              return Bad("allowed_origins", "not an origin (scheme://host[:port]) or *: " + o);
            }
            origins.push_back(std::move(o));
          }
          c.allowed_origins = std::move(origins);
          return Status::Ok();
        });
    add("tls_cert",
        "PEM certificate chain: set (with tls_key), the listen port speaks TLS only (https, "
        "wss); re-read on SIGHUP",
        Text(FIELD(net.tls_cert)));
    add("tls_key", "PEM private key (unencrypted) of tls_cert; re-read on SIGHUP",
        Text(FIELD(net.tls_key)));
    add("log_level", "trace, debug, info, warn, error, off", Text(FIELD(log_level)));
    add("io_threads", "I/O threads (0 = one per usable CPU: affinity mask and cgroup quota)",
        Int(FIELD(net.io_threads), "io_threads", 0, 256));
    add("webhook_url",
        "webhook endpoints, http(s) URLs separated by commas (protocol-ext §4); unset: none",
        [](Config& c, const std::string& v) -> Status {
          std::vector<std::string> urls = SplitList(v);
          for (const std::string& url : urls) {
            const bool http = url.rfind("http://", 0) == 0 && url.size() > 7;
            const bool https = url.rfind("https://", 0) == 0 && url.size() > 8;
            if (!http && !https) return Bad("webhook_url", "not an http(s) URL: " + url);
          }
          c.protocol.webhooks.endpoints = std::move(urls);
          return Status::Ok();
        });
    add("webhook_secret", "the webhooks' signing secret (at least 24 bytes, used as given)",
        Text(FIELD(protocol.webhooks.secret)));
    add("webhook_events",
        "webhook event types, comma-separated (default: all but member.entered/member.left)",
        [](Config& c, const std::string& v) -> Status {
          auto types = webhooks::ParseTypes(v);
          if (!types.ok()) return Bad("webhook_events", types.error().message);
          c.protocol.webhooks.types = *types;
          return Status::Ok();
        });
    add("webhook_retry_ms", "how long after its creation an undelivered webhook event is retried",
        Int(FIELD(protocol.webhooks.retry_ms), "webhook_retry_ms", 1000, 30 * kDay));
    add("webhook_max_queue", "undelivered webhook events kept per endpoint (then the oldest go)",
        Int(FIELD(protocol.webhooks.max_queue), "webhook_max_queue", 1, 10000000));
    add("webhook_ca_file",
        "PEM file of CA certificates trusted for https webhook endpoints "
        "(besides the system's)",
        Text(FIELD(webhook_ca_file)));
    add("agent_id_template",
        "an agent session's clientId; {conversationId} is replaced (protocol-ext §3)",
        Text(FIELD(protocol.sessions.agent_id_template)));
    add("session_inactivity_ms", "default inactivityTimeoutMs of an agent session",
        Int(FIELD(protocol.sessions.inactivity_timeout_ms), "session_inactivity_ms", 1, kYear));
    add("session_abandon_ms", "default abandonAfterMs of an agent session",
        Int(FIELD(protocol.sessions.abandon_after_ms), "session_abandon_ms", 1, kYear));
    add("heartbeat_ms", "ping interval; silent for two intervals = abrupt drop",
        Int(FIELD(net.heartbeat_ms), "heartbeat_ms", 10, kHour));
    add("min_heartbeat_ms", "lowest ping interval a client may ask for (heartbeatMs)",
        Int(FIELD(protocol.min_heartbeat_ms), "min_heartbeat_ms", 10, kHour));
    add("max_heartbeat_ms", "highest ping interval a client may ask for (heartbeatMs)",
        Int(FIELD(protocol.max_heartbeat_ms), "max_heartbeat_ms", 10, kHour));
    add("remain_present_for_ms", "default grace after an abrupt drop",
        Int(FIELD(protocol.default_remain_present_for_ms), "remain_present_for_ms", 0, kDay));
    add("max_remain_present_for_ms", "upper bound for a client's own grace",
        Int(FIELD(protocol.max_remain_present_for_ms), "max_remain_present_for_ms", 0, kDay));
    add("away_after_ms", "idle time before automatic away",
        Int(FIELD(protocol.engine.away_after_ms), "away_after_ms", 0, kYear));
    add("offline_after_ms", "idle time before automatic offline",
        Int(FIELD(protocol.engine.offline_after_ms), "offline_after_ms", 0, kYear));
    add("max_frame_bytes", "largest client frame",
        Int(FIELD(net.max_frame_bytes), "max_frame_bytes", 128, kGiB / 16));
    add("max_data_bytes", "largest member data (serialized)",
        Int(FIELD(protocol.engine.limits.max_data_bytes), "max_data_bytes", 4, kGiB / 64));
    add("max_connections", "open sockets",
        Int(FIELD(net.max_connections), "max_connections", 1, 10000000));
    add("handshake_timeout_ms", "time to send a complete HTTP request",
        Int(FIELD(net.handshake_timeout_ms), "handshake_timeout_ms", 10, kHour));
    add("max_http_body_bytes", "largest REST request body",
        Int(FIELD(net.max_http_body_bytes), "max_http_body_bytes", 16, kGiB / 16));
    add("max_outbound_bytes",
        "bytes queued to one WebSocket before it is dropped as a slow consumer",
        Int(FIELD(net.max_outbound_bytes), "max_outbound_bytes", 1024, kGiB));
    add("rate_per_second", "sustained requests per connection",
        Real(FIELD(protocol.rate_per_second), "rate_per_second", 1e9));
    add("rate_burst", "request burst per connection",
        Real(FIELD(protocol.rate_burst), "rate_burst", 1e9));
    add("max_channels_per_connection",
        "channels one connection may enter (and, separately, subscribe)",
        Int(FIELD(protocol.engine.limits.max_channels_per_connection),
            "max_channels_per_connection", 1, 1000000));
    add("max_members_per_channel", "members in one channel",
        Int(FIELD(protocol.engine.limits.max_members_per_channel), "max_members_per_channel", 1,
            100000000));
    add("max_watches_per_connection", "users one connection may watch",
        Int(FIELD(protocol.engine.limits.max_watches_per_connection), "max_watches_per_connection",
            0, 1000000));
    add("max_channel_bytes", "longest channel name",
        Int(FIELD(protocol.engine.limits.max_channel_bytes), "max_channel_bytes", 1, 65536));
    add("max_id_bytes", "longest clientId, device or activity kind",
        Int(FIELD(protocol.engine.limits.max_id_bytes), "max_id_bytes", 1, 65536));
    add("event_ring_capacity", "recent events kept per channel for `since` (at least 1000)",
        Int(FIELD(protocol.engine.event_ring_capacity), "event_ring_capacity", 1000, 1000000));
    add("max_retained_event_bytes",
        "bytes all channels' event rings keep together; over it the oldest events of the largest "
        "rings go (`since` before them gets a snapshot)",
        Int(FIELD(protocol.engine.max_retained_event_bytes), "max_retained_event_bytes", 65536,
            kGiB * 1024));
    add("storage",
        "sqlite (durable, in data_dir), memory (lost on restart) or redis (the cluster's Redis, "
        "shared by every node); default sqlite, redis in cluster mode",
        Text(FIELD(storage)));
    add("redis_url",
        "redis://[:password@]host:port[/db]: set, this node joins the cluster on that Redis",
        Text(FIELD(cluster.redis_url)));
    add("node_id", "this node's name in the cluster (logs, metrics, leases); default generated",
        Text(FIELD(cluster.node_id)));
    add("node_lease_ms", "a node that has not renewed its lease for this long is dead",
        Int(FIELD(cluster.lease_ms), "node_lease_ms", 300, kHour));
    add("cluster_snapshot_entries",
        "cluster mode: every this many log entries the state is saved to Redis for joining nodes",
        Int(FIELD(cluster.snapshot_entries), "cluster_snapshot_entries", 1, 500000));
    add("flush_interval_ms", "most time a history/activity/lastSeen write waits for its commit",
        Int(FIELD(sqlite.flush_interval_ms), "flush_interval_ms", 1, 60000));
    add("last_seen_checkpoint_ms", "how often connected users' lastSeen is stored",
        Int(FIELD(protocol.last_seen_checkpoint_ms), "last_seen_checkpoint_ms", 10, kHour));
    add("history_max_age_ms", "history older than this is deleted (0 = keep)",
        Int(FIELD(sqlite.history_max_age_ms), "history_max_age_ms", 0, 100 * kYear));
    add("history_max_per_channel", "history events kept per channel (0 = no limit)",
        Int(FIELD(sqlite.history_max_per_channel), "history_max_per_channel", 0, 1000000000));
    add("activity_max_age_ms", "activity records older than this are deleted (0 = keep)",
        Int(FIELD(sqlite.activity_max_age_ms), "activity_max_age_ms", 0, 100 * kYear));
    add("activity_max_per_user", "activity records kept per user (0 = no limit)",
        Int(FIELD(sqlite.activity_max_per_user), "activity_max_per_user", 0, 1000000000));
    add("retention_interval_ms", "how often retention runs",
        Int(FIELD(sqlite.retention_interval_ms), "retention_interval_ms", 10, kDay));
    add("storage_nice",
        "nice value of the storage thread (0-19): its commits yield the CPU to the presence loop",
        Int(FIELD(sqlite.storage_nice), "storage_nice", 0, 19));
    add("storage_max_bytes",
        "cap on the database size; writes beyond fail and are counted (0 = none)",
        Int(FIELD(sqlite.max_bytes), "storage_max_bytes", 0, kGiB * 1024 * 1024));
    return t;
  }();
  return table;
}

Result<std::string> ReadSecretFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return MakeError(ErrorCode::kInternal, "cannot read " + path.string());
  std::string s;
  std::getline(in, s);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  if (s.empty()) return MakeError(ErrorCode::kInternal, path.string() + " is empty");
  return s;
}

Status WriteSecretFile(const std::filesystem::path& path, const std::string& value) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return MakeError(ErrorCode::kInternal, "cannot create " + path.string());
  const std::string line = value + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return MakeError(ErrorCode::kInternal, "cannot write " + path.string());
  return Status::Ok();
}

}  // namespace

const std::vector<SettingInfo>& Settings() {
  static const std::vector<SettingInfo> infos = [] {
    std::vector<SettingInfo> out;
    for (const auto& s : Table()) out.push_back(s.info);
    return out;
  }();
  return infos;
}

Status ApplySetting(Config& config, const std::string& key, const std::string& value) {
  for (const auto& s : Table()) {
    if (s.info.key == key) return s.set(config, value);
  }
  return MakeError(ErrorCode::kBadRequest, "unknown setting " + key);
}

namespace {
// Applies every key of a parsed TOML document; `path` names it in messages.
Status ApplyTomlTable(Config& config, const toml::table& table, const std::string& path) {
  for (const auto& [key, node] : table) {
    std::string text;
    // The type is checked before the value is read: node.value<int64_t>() of a float converts it
    // (2e80 into a long: undefined behaviour inside toml++).
    if (const auto* s = node.as_string()) {
      text = s->get();
    } else if (const auto* i = node.as_integer()) {
      text = std::to_string(i->get());
    } else if (const auto* d = node.as_floating_point()) {
      // The shortest text that reads back as the same double (a stream's six digits would turn
      // rate_burst = 1234567.0 into 1234570).
      char buf[32];
      text.assign(buf, std::to_chars(buf, buf + sizeof buf, d->get()).ptr);
    } else {
      return MakeError(
          ErrorCode::kBadRequest,
          "config file " + path + ": " + std::string(key.str()) + " has an unsupported type");
    }
    if (Status st = ApplySetting(config, std::string(key.str()), text); !st) {
      return MakeError(ErrorCode::kBadRequest, "config file " + path + ": " + st.error().message);
    }
  }
  return Status::Ok();
}

Error TomlError(const std::string& path, const toml::parse_error& e) {
  std::ostringstream msg;
  msg << "config file " << path << ": " << e.description() << " at line " << e.source().begin.line;
  return MakeError(ErrorCode::kBadRequest, msg.str());
}
}  // namespace

Status ApplyTomlFile(Config& config, const std::string& path) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return TomlError(path, e);
  }
  return ApplyTomlTable(config, table, path);
}

Status ApplyTomlText(Config& config, std::string_view text, const std::string& origin) {
  toml::table table;
  try {
    table = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    return TomlError(origin, e);
  }
  return ApplyTomlTable(config, table, origin);
}

Status ApplyEnvironment(Config& config) {
  for (const auto& s : Table()) {
    if (const char* v = std::getenv(s.info.env.c_str())) {
      if (Status st = s.set(config, v); !st) return st;
    }
  }
  return Status::Ok();
}

Status Validate(const Config& c) {
  if (!SplitListen(c.listen).ok()) return SplitListen(c.listen).error();
  if (!c.storage.empty() && c.storage != "sqlite" && c.storage != "memory" &&
      c.storage != "redis") {
    return MakeError(ErrorCode::kBadRequest,
                     "storage must be sqlite, memory or redis, got " + c.storage);
  }
  if (!c.cluster.redis_url.empty()) {
    if (auto url = redis::ParseUrl(c.cluster.redis_url); !url.ok()) {
      return Bad("redis_url", url.error().message);
    }
  }
  if (c.storage == "redis") {
    if (c.cluster.redis_url.empty()) return Bad("storage", "redis needs redis_url (cluster mode)");
  }
  if (!c.protocol.webhooks.endpoints.empty() && c.protocol.webhooks.secret.size() < 24) {
    return Bad("webhook_secret", "webhook_url is set: a secret of at least 24 bytes is needed");
  }
  // The files themselves are read by the network layer when it listens (net::LoadTlsContext).
  if (c.net.tls_cert.empty() != c.net.tls_key.empty()) {
    return c.net.tls_cert.empty()
               ? Bad("tls_key", "tls_cert is not set: TLS needs the certificate and its key")
               : Bad("tls_cert", "tls_key is not set: TLS needs the certificate and its key");
  }
  if (!c.webhook_ca_file.empty()) {
    std::FILE* f = std::fopen(c.webhook_ca_file.c_str(), "r");
    if (f == nullptr) return Bad("webhook_ca_file", "cannot read " + c.webhook_ca_file);
    std::fclose(f);
  }
  const std::string& id = c.cluster.node_id;
  if (id.size() > 64 || !std::all_of(id.begin(), id.end(), [](unsigned char ch) {
        return std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.';
      })) {
    return Bad("node_id", "at most 64 letters, digits, '-', '_' or '.', got \"" + id + "\"");
  }
  return Status::Ok();
}

std::vector<std::string> Reconcile(Config& c) {
  // Settings that contradict each other are brought in line rather than refused, so that setting
  // one of them (a lower maximum, a smaller frame) never stops the server from starting.
  std::vector<std::string> notes;
  if (c.storage.empty()) {
    // A cluster shares one store on its Redis, so every node reads the same history.
    c.storage = c.cluster.redis_url.empty() ? "sqlite" : "redis";
  }
  protocol::DispatcherOptions& p = c.protocol;
  if (p.default_remain_present_for_ms > p.max_remain_present_for_ms) {
    notes.push_back("remain_present_for_ms lowered to max_remain_present_for_ms (" +
                    std::to_string(p.max_remain_present_for_ms) + ")");
    p.default_remain_present_for_ms = p.max_remain_present_for_ms;
  }
  if (p.min_heartbeat_ms > p.max_heartbeat_ms) {
    notes.push_back("max_heartbeat_ms raised to min_heartbeat_ms (" +
                    std::to_string(p.min_heartbeat_ms) + ")");
    p.max_heartbeat_ms = p.min_heartbeat_ms;
  }
  if (p.engine.away_after_ms > p.engine.offline_after_ms) {
    notes.push_back("offline_after_ms raised to away_after_ms (" +
                    std::to_string(p.engine.away_after_ms) + ")");
    p.engine.offline_after_ms = p.engine.away_after_ms;
  }
  if (p.sessions.agent_id_template.empty()) {
    p.sessions.agent_id_template = engine::SessionSettings{}.agent_id_template;
    notes.push_back("agent_id_template is empty: " + p.sessions.agent_id_template + " is used");
  }
  return notes;
}

Result<std::pair<std::string, uint16_t>> SplitListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return MakeError(ErrorCode::kBadRequest, "listen must be host:port, got " + listen);
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  int port = -1;
  const std::string p = listen.substr(colon + 1);
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (ec != std::errc() || end != p.data() + p.size() || port < 0 || port > 65535) {
    return MakeError(ErrorCode::kBadRequest, "listen port must be 0-65535, got " + p);
  }
  return std::make_pair(host, static_cast<uint16_t>(port));
}

Result<std::string> ReadTokenSecret(Config& config) {
  if (!config.protocol.jwt_secret.empty()) return std::string();
  namespace fs = std::filesystem;
  const fs::path path = fs::path(config.data_dir) / "jwt-secret";
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return MakeError(ErrorCode::kBadRequest,
                     "no token secret in " + fs::absolute(config.data_dir).string() +
                         ": start the server once there, or pass --data-dir / --jwt-secret");
  }
  auto secret = ReadSecretFile(path);
  if (!secret.ok()) return secret.error();
  config.protocol.jwt_secret = *secret;
  return fs::absolute(path).string();
}

Status ResolveSecrets(Config& config, std::vector<std::string>& created) {
  if (!config.protocol.jwt_secret.empty() && !config.protocol.api_key.empty()) return Status::Ok();
  namespace fs = std::filesystem;
  const fs::path dir(config.data_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return MakeError(ErrorCode::kInternal,
                     "cannot create data directory " + dir.string() + ": " + ec.message());
  SecureRandom random;
  auto resolve = [&](std::string& value, const char* file) -> Status {
    if (!value.empty()) return Status::Ok();
    const fs::path path = dir / file;
    if (fs::exists(path)) {
      auto r = ReadSecretFile(path);
      if (!r.ok()) return r.error();
      value = *r;
      return Status::Ok();
    }
    value = RandomHex(random, 32);
    if (Status st = WriteSecretFile(path, value); !st) return st;
    created.push_back(fs::absolute(path).string());
    return Status::Ok();
  };
  if (Status st = resolve(config.protocol.jwt_secret, "jwt-secret"); !st) return st;
  return resolve(config.protocol.api_key, "api-key");
}

}  // namespace presenced::server
