// SqliteStore's settings: one definition of each, with its default (the server's Config embeds
// this struct).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "common/clock.h"

namespace presenced::storage {

struct SqliteOptions {
  std::string path;                                    // the database file
  TimeMs flush_interval_ms = 50;                       // most a write waits before its commit
  size_t max_batch = 20000;                            // writes per transaction
  size_t max_pending = 1000000;                        // queued writes; beyond: dropped and counted
  TimeMs history_max_age_ms = 7LL * 24 * 3600 * 1000;  // 0 = no age limit
  size_t history_max_per_channel = 10000;              // 0 = no count limit
  TimeMs activity_max_age_ms = 30LL * 24 * 3600 * 1000;  // 0 = no age limit
  size_t activity_max_per_user = 1000;                   // 0 = no count limit
  TimeMs retention_interval_ms = 60000;
  int64_t max_bytes = 0;  // cap on the database size; 0 = none
  // The storage thread's nice value (Linux: per thread, 0-19). Its commits are background work: on
  // a core shared with the presence loop they must not delay sockets (bench/RESULTS.md, W2).
  int storage_nice = 10;
  // Told about every failed commit (on the storage thread), e.g. to log it.
  std::function<void(const std::string&)> on_error;
};

}  // namespace presenced::storage
