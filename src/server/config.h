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

#include "common/clock.h"
#include "common/error.h"

namespace presenced::server {

struct Config {
  std::string listen = "127.0.0.1:7070";
  std::string data_dir = "./presenced-data";
  std::string jwt_secret;  // empty: read or generate <data_dir>/jwt-secret
  std::string api_key;     // empty: read or generate <data_dir>/api-key
  std::string log_level = "info";
  int64_t io_threads = 0;  // 0 = one per core

  TimeMs heartbeat_ms = 15000;
  TimeMs remain_present_for_ms = 15000;
  TimeMs max_remain_present_for_ms = 300000;
  TimeMs away_after_ms = 300000;
  TimeMs offline_after_ms = 3600000;

  int64_t max_frame_bytes = 65536;
  int64_t max_data_bytes = 16384;
  int64_t max_connections = 10000;
  int64_t handshake_timeout_ms = 10000;
  int64_t max_http_body_bytes = 65536;
  int64_t max_outbound_bytes = 4 << 20;  // the contract's default (protocol-ext.md)
  double rate_per_second = 2000;
  double rate_burst = 5000;

  int64_t max_channels_per_connection = 200;
  int64_t max_members_per_channel = 100000;
  int64_t max_watches_per_connection = 1000;
  int64_t max_channel_bytes = 256;
  int64_t max_id_bytes = 256;
  int64_t event_ring_capacity = 1000;
  int64_t max_retained_event_bytes = 256 << 20;  // all channels' event rings together

  std::string storage = "sqlite";  // "sqlite" (durable, <data_dir>/presenced.db) or "memory"
  int64_t flush_interval_ms = 50;
  int64_t last_seen_checkpoint_ms = 10000;
  int64_t history_max_age_ms = 7LL * 24 * 3600 * 1000;  // 0 = keep forever
  int64_t history_max_per_channel = 10000;              // 0 = no count limit
  int64_t activity_max_age_ms = 30LL * 24 * 3600 * 1000;
  int64_t activity_max_per_user = 1000;
  int64_t retention_interval_ms = 60000;
  int64_t storage_max_bytes = 0;  // cap on the database size; 0 = none
};

// One setting as the three sources name it, for --help and docs.
struct SettingInfo {
  std::string key;   // TOML key
  std::string env;   // environment variable
  std::string flag;  // command-line flag
  std::string help;
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

}  // namespace presenced::server
