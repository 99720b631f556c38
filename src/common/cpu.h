// How many CPUs this process may use: the CPUs of its affinity mask (sched_getaffinity), capped by
// its cgroup's CPU quota (cgroup v2 `cpu.max`, else v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`),
// rounded up. `std::thread::hardware_concurrency()` counts the machine's CPUs and ignores both, so
// `taskset -c 0` or a container limited to one CPU would otherwise start a thread per core of the
// host on one core.
//
// Pure parsing plus one read of /proc and /sys at call time; thread-safe.
#pragma once

#include <optional>
#include <string_view>

namespace presenced {

// The CPU quota of a cgroup v2 `cpu.max` line ("QUOTA PERIOD" or "max PERIOD"), in CPUs rounded
// up; nullopt when unlimited or malformed.
std::optional<int> CpuQuotaFromCpuMax(std::string_view cpu_max);
// The same from cgroup v1's cfs_quota_us (-1 = unlimited) and cfs_period_us.
std::optional<int> CpuQuotaFromCfs(std::string_view quota_us, std::string_view period_us);
// min(affinity, quota), at least 1; a missing quota is no cap.
int UsableCpus(int affinity_cpus, std::optional<int> quota_cpus);

// UsableCpus of this process, read now.
int UsableCpus();

}  // namespace presenced
