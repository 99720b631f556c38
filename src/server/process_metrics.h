// The process's own metrics in Prometheus text (the standard `process_*` names), read from /proc
// at scrape time, and `presenced_build_info`. Any thread.
#pragma once

#include <string>

namespace presenced::server {

// process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds,
// process_max_fds, and presenced_build_info{version,commit}.
std::string ProcessMetrics();

}  // namespace presenced::server
