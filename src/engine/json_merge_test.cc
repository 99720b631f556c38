#include "engine/json_merge.h"

#include <gtest/gtest.h>

namespace presenced::engine {
namespace {

JsonText J(std::string_view s) { return JsonText::FromSerialized(s); }

TEST(ShallowMergeTest, SetsTopLevelKeysAndKeepsOthers) {
  EXPECT_EQ(ShallowMerge(J(R"({"a":1,"b":{"x":1}})"), J(R"({"b":{"y":2},"c":3})")).text(),
            R"({"a":1,"b":{"y":2},"c":3})");
}

TEST(ShallowMergeTest, ReplacesWhenEitherSideIsNotAnObject) {
  EXPECT_EQ(ShallowMerge(J("[1]"), J(R"({"a":1})")).text(), R"({"a":1})");
  EXPECT_EQ(ShallowMerge(J(R"({"a":1})"), J("5")).text(), "5");
  EXPECT_EQ(ShallowMerge(JsonText(), J(R"({"a":1})")).text(), R"({"a":1})");
}

}  // namespace
}  // namespace presenced::engine
