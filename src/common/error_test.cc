#include "common/error.h"

#include <gtest/gtest.h>

#include <memory>

namespace presenced {
namespace {

TEST(ErrorCodeTest, NamesMatchTheWireContract) {
  EXPECT_EQ(ErrorCodeName(ErrorCode::kBadRequest), "bad_request");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kUnauthorized), "unauthorized");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kForbidden), "forbidden");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kNotPresent), "not_present");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kTooLarge), "too_large");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kLimitExceeded), "limit_exceeded");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kRateLimited), "rate_limited");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kNotFound), "not_found");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kMethodNotAllowed), "method_not_allowed");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kInternal), "internal");
}

TEST(ResultTest, HoldsValueOrError) {
  Result<int> good = 7;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 7);

  Result<int> bad = MakeError(ErrorCode::kNotPresent, "not in channel");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kNotPresent);
  EXPECT_EQ(bad.error().message, "not in channel");
}

TEST(ResultTest, MovesOutMoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(3);
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 3);
}

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  Status failed = MakeError(ErrorCode::kForbidden, "no");
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, ErrorCode::kForbidden);
}

}  // namespace
}  // namespace presenced
