// Server configuration: every setting, where it comes from and how it is checked.
//
// Precedence, lowest to highest: built-in default, the TOML file (--config or PRESENCED_CONFIG),
// the environment (PRESENCED_*), command-line flags. Each setting has one name in each place:
// the TOML key `heartbeat_ms`, the variable `PRESENCED_HEARTBEAT_MS`, the flag `--heartbeat-ms`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/node.h"
#include "common/clock.h"
#include "common/error.h"
#include "net/server.h"
#include "protocol/options.h"
#include "server/engine_loop.h"
#include "storage/sqlite_options.h"

namespace presenced::server {

// Every setting of the server. The settings of the network layer, the protocol (and the engine
// within it), the store and the engine loop are the option structs of those modules, embedded:
// each is defined once, with its default and its meaning, beside the code that uses it
// (net/server.h, protocol/options.h, engine/config.h, storage/sqlite_options.h, engine_loop.h).
// Only what is the process's own is defined here.
struct Config {
  std::string listen = "127.0.0.1:7070";  // host:port; sets net.host and net.port at start
  std::string data_dir = "./presenced-data";
  std::string log_level = "info";
  // "sqlite" (durable, <data_dir>/presenced.db), "memory", or "redis" (protocol-ext section 2);
  // empty: sqlite (Reconcile fills it in).
  std::string storage;
  cluster::NodeOptions cluster;  // cluster.redis_url set: cluster mode

  net::NetOptions net;
  // protocol.jwt_secret and protocol.api_key empty: read or generated in data_dir at start.
  protocol::DispatcherOptions protocol;
  storage::SqliteOptions sqlite;  // sqlite.path is <data_dir>/presenced.db
  LoopOptions loop;
  std::string webhook_ca_file;  // extra CA certificates (PEM) for https webhook endpoints
  // Browser origins allowed to upgrade (an `Origin` header) and to call REST (CORS): exact
  // origins ("https://app.example.com") or "*". Empty: any origin, and no CORS headers.
  std::vector<std::string> allowed_origins;
};

// One setting as the three sources name it, for --help and docs.
struct SettingInfo {
  std::string key;   // TOML key
  std::string env;   // environment variable
  std::string flag;  // command-line flag
  std::string help;
  std::string type = {};           // INT, NUMBER, TEXT or LIST
  std::string unit = {};           // milliseconds (`..._ms`), bytes (`..._bytes`), or empty
  std::string range = {};          // "10 to 3600000", or empty
  std::string default_value = {};  // as text; empty when unset or generated
};
const std::vector<SettingInfo>& Settings();

// Applies `value` (text from the environment, a flag or the TOML file) to the named setting.
Status ApplySetting(Config& config, const std::string& key, const std::string& value);
// Reads a TOML file; unknown keys are an error, so typos do not pass silently.
Status ApplyTomlFile(Config& config, const std::string& path);
// The same for TOML text; `origin` names it in messages (as the path does for a file).
Status ApplyTomlText(Config& config, std::string_view text, const std::string& origin);
// Reads PRESENCED_* variables.
Status ApplyEnvironment(Config& config);
// Checks that can only be refused (the listen address, the storage kind).
Status Validate(const Config& config);
// Brings settings that contradict each other in line; returns what it changed, to log.
std::vector<std::string> Reconcile(Config& config);

// Splits "host:port".
Result<std::pair<std::string, uint16_t>> SplitListen(const std::string& listen);

// Fills jwt_secret and api_key from <data_dir> when not configured, generating them (mode 0600)
// on first start. `created` lists the files that were generated.
Status ResolveSecrets(Config& config, std::vector<std::string>& created);
// The token secret as the server would use it (`presenced token`), without creating anything: the
// setting when given, else `<data_dir>/jwt-secret`. Returns the file it read ("" for the setting);
// an error when there is none.
Result<std::string> ReadTokenSecret(Config& config);

}  // namespace presenced::server
