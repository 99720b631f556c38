// ProcessMetrics (process_metrics.h): /proc/self/statm, /proc/self/stat, /proc/self/fd.
#include "server/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#ifndef PRESENCED_VERSION
#define PRESENCED_VERSION "unknown"
#endif
#ifndef PRESENCED_GIT_COMMIT
#define PRESENCED_GIT_COMMIT "unknown"
#endif

namespace presenced::server {

namespace {

void Gauge(std::string& out, const char* name, const char* type, const char* help,
           const std::string& value) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
  out += name;
  out += ' ';
  out += value;
  out += '\n';
}

}  // namespace

std::string ProcessMetrics() {
  std::string out;
  const long page = sysconf(_SC_PAGESIZE);
  {
    std::ifstream statm("/proc/self/statm");
    long size = 0;
    long resident = 0;
    if (statm >> size >> resident) {
      Gauge(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
            std::to_string(resident * page));
      Gauge(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
            std::to_string(size * page));
    }
  }
  {
    std::ifstream stat("/proc/self/stat");
    std::string line((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // Fields after the command name (which may hold spaces and parentheses): state is field 3,
    // utime 14 and stime 15, in clock ticks.
    const size_t end = line.rfind(')');
    if (end != std::string::npos) {
      std::istringstream fields(line.substr(end + 2));
      std::string f;
      unsigned long long utime = 0;
      unsigned long long stime = 0;
      for (int i = 3; i <= 15 && fields >> f; ++i) {
        if (i == 14) utime = std::stoull(f);
        if (i == 15) stime = std::stoull(f);
      }
      const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
      char cpu[64];
      std::snprintf(cpu, sizeof cpu, "%.2f", static_cast<double>(utime + stime) / ticks);
      Gauge(out, "process_cpu_seconds_total", "counter",
            "Total user and system CPU time spent in seconds.", cpu);
    }
  }
  {
    std::error_code ec;
    size_t fds = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++fds;
    }
    if (!ec) {
      Gauge(out, "process_open_fds", "gauge", "Number of open file descriptors.",
            std::to_string(fds > 0 ? fds - 1 : 0));  // less the one that lists them
    }
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
      Gauge(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
            std::to_string(lim.rlim_cur));
    }
  }
  out +=
      "# HELP presenced_build_info The running build: version and commit (always 1).\n"
      "# TYPE presenced_build_info gauge\n"
      "presenced_build_info{version=\"" PRESENCED_VERSION "\",commit=\"" PRESENCED_GIT_COMMIT
      "\"} 1\n";
  return out;
}

}  // namespace presenced::server
