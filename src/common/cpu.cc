// The usable CPU count (cpu.h): sched_getaffinity and the cgroup quota; thread-safe.
#include "common/cpu.h"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace presenced {
namespace {

std::optional<long long> ParseInt(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  long long v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<int> Quota(long long quota, long long period) {
  if (quota <= 0 || period <= 0) return std::nullopt;
  const long long cpus = (quota + period - 1) / period;
  return static_cast<int>(std::min<long long>(cpus, 1 << 20));
}

std::optional<std::string> ReadFile(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::optional<int> CpuQuotaFromCpuMax(std::string_view cpu_max) {
  const size_t space = cpu_max.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const std::string_view quota = cpu_max.substr(0, space);
  if (quota == "max") return std::nullopt;
  auto q = ParseInt(quota);
  auto p = ParseInt(cpu_max.substr(space + 1));
  if (!q || !p) return std::nullopt;
  return Quota(*q, *p);
}

std::optional<int> CpuQuotaFromCfs(std::string_view quota_us, std::string_view period_us) {
  auto q = ParseInt(quota_us);
  auto p = ParseInt(period_us);
  if (!q || !p) return std::nullopt;
  return Quota(*q, *p);
}

int UsableCpus(int affinity_cpus, std::optional<int> quota_cpus) {
  int n = std::max(1, affinity_cpus);
  if (quota_cpus) n = std::min(n, std::max(1, *quota_cpus));
  return n;
}

int UsableCpus() {
  int affinity = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    affinity = CPU_COUNT(&set);
  } else {
    affinity = static_cast<int>(std::thread::hardware_concurrency());
  }
  std::optional<int> quota;
  if (auto v2 = ReadFile("/sys/fs/cgroup/cpu.max")) {
    quota = CpuQuotaFromCpuMax(*v2);
  } else if (auto q = ReadFile("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")) {
    if (auto p = ReadFile("/sys/fs/cgroup/cpu/cpu.cfs_period_us")) quota = CpuQuotaFromCfs(*q, *p);
  }
  return UsableCpus(affinity, quota);
}

}  // namespace presenced
