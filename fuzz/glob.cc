// Fuzzes channel-pattern globs (protocol::GlobMatch): `*` matches any run, every other byte is
// literal.
//
// Input: pattern and channel name, split at the first 0x00 (no 0x00: the first half is the
// pattern). Sizes are what the server lets through: a channel name is at most 256 bytes (checked
// before any pattern is tried), a pattern at most what fits in a token in a 16 KB request head;
// run with -max_len=16384.
//
// Invariants: the result equals a straightforward dynamic-programming matcher's, and one match
// takes at most 10 ms of CPU (no catastrophic backtracking).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "protocol/auth.h"

namespace {

constexpr size_t kMaxChannelBytes = 256;
constexpr int64_t kMaxNs = 10'000'000;  // 10 ms for one match

int64_t ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Reference: match[i][j] = pattern[0..i) matches text[0..j). O(|pattern| * |text|) time, one row
// of memory.
bool ReferenceMatch(std::string_view pattern, std::string_view text) {
  std::vector<char> prev(text.size() + 1, 0), cur(text.size() + 1, 0);
  prev[0] = 1;
  for (char p : pattern) {
    cur[0] = p == '*' && prev[0];
    for (size_t j = 1; j <= text.size(); ++j) {
      cur[j] = p == '*' ? (prev[j] || cur[j - 1]) : (prev[j - 1] && p == text[j - 1]);
    }
    prev.swap(cur);
  }
  return prev[text.size()];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t cut = in.find('\0');
  if (cut == std::string_view::npos) cut = size / 2;
  const std::string_view pattern = in.substr(0, cut);
  std::string_view text = in.substr(std::min(cut + 1, size));
  if (text.size() > kMaxChannelBytes) text = text.substr(0, kMaxChannelBytes);

  // CPU time of this thread, not wall time: a busy machine preempting the fuzzer is not a slow
  // match. The fastest of three tries counts, so one disturbed measurement does not fail.
  bool matched = false;
  int64_t fastest_ns = INT64_MAX;
  for (int i = 0; i < 3 && fastest_ns >= kMaxNs; ++i) {
    const int64_t start = ThreadCpuNs();
    matched = presenced::protocol::GlobMatch(pattern, text);
    fastest_ns = std::min(fastest_ns, ThreadCpuNs() - start);
  }
  if (fastest_ns >= kMaxNs) {
    std::fprintf(stderr, "GlobMatch took %lld us (pattern %zu bytes, name %zu bytes)\n",
                 static_cast<long long>(fastest_ns / 1000), pattern.size(), text.size());
  }
  FUZZ_CHECK(fastest_ns < kMaxNs);
  FUZZ_CHECK(matched == ReferenceMatch(pattern, text));
  // A pattern without a star matches exactly itself.
  if (pattern.find('*') == std::string_view::npos) FUZZ_CHECK(matched == (pattern == text));
  return 0;
}
