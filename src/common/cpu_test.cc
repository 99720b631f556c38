#include "common/cpu.h"

#include <gtest/gtest.h>

namespace presenced {
namespace {

TEST(CpuTest, CgroupV2QuotaIsRoundedUpAndMaxIsUnlimited) {
  EXPECT_EQ(CpuQuotaFromCpuMax("100000 100000\n"), 1);
  EXPECT_EQ(CpuQuotaFromCpuMax("150000 100000\n"), 2);
  EXPECT_EQ(CpuQuotaFromCpuMax("50000 100000"), 1);
  EXPECT_EQ(CpuQuotaFromCpuMax("max 100000\n"), std::nullopt);
  EXPECT_EQ(CpuQuotaFromCpuMax(""), std::nullopt);
  EXPECT_EQ(CpuQuotaFromCpuMax("x 100000"), std::nullopt);
  EXPECT_EQ(CpuQuotaFromCpuMax("100000 0"), std::nullopt);
}

TEST(CpuTest, CgroupV1QuotaOfMinusOneIsUnlimited) {
  EXPECT_EQ(CpuQuotaFromCfs("-1\n", "100000\n"), std::nullopt);
  EXPECT_EQ(CpuQuotaFromCfs("200000\n", "100000\n"), 2);
  EXPECT_EQ(CpuQuotaFromCfs("garbage", "100000"), std::nullopt);
}

TEST(CpuTest, TheAffinityMaskIsCappedByTheQuota) {
  EXPECT_EQ(UsableCpus(8, std::nullopt), 8);
  EXPECT_EQ(UsableCpus(8, 2), 2);
  EXPECT_EQ(UsableCpus(1, 4), 1);
  EXPECT_EQ(UsableCpus(0, std::nullopt), 1);  // never zero threads
}

TEST(CpuTest, ThisProcessHasAtLeastOneAndNoMoreThanItsAffinity) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  const int n = UsableCpus();
  EXPECT_GE(n, 1);
  EXPECT_LE(n, CPU_COUNT(&set));
}

}  // namespace
}  // namespace presenced
