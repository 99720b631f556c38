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

// An object nested `depth` levels deep (the outermost object counts as one):
// {"k":{"k":...{"leaf":1}...}}.
std::string Nested(int depth) {
  std::string s;
  for (int i = 1; i < depth; ++i) s += R"({"k":)";
  s += R"({"leaf":1})";
  for (int i = 1; i < depth; ++i) s += '}';
  return s;
}

TEST(ShallowMergeTest, MergesDataNestedAsDeepAsRequestsAllow) {
  // Boost.JSON's default depth (32) failed the parse of deeper data, and the merge silently
  // became a replace. Data accepted by a request (kMaxJsonDepth for the whole frame, so the data
  // itself one level less) must merge.
  for (int depth = 33; depth < kMaxJsonDepth; ++depth) {
    const std::string current = R"({"a":1,"deep":)" + Nested(depth - 1) + "}";
    EXPECT_EQ(ShallowMerge(J(current), J(R"({"b":2})")).text(),
              R"({"a":1,"deep":)" + Nested(depth - 1) + R"(,"b":2})")
        << "depth " << depth;
    // The patch may be that deep too.
    EXPECT_EQ(ShallowMerge(J(R"({"a":1})"), J(current)).text(), current) << "depth " << depth;
    const std::string patch = R"({"deep":)" + Nested(depth - 1) + "}";
    EXPECT_EQ(ShallowMerge(J(R"({"a":1,"deep":0})"), J(patch)).text(),
              R"({"a":1,"deep":)" + Nested(depth - 1) + "}")
        << "depth " << depth;
  }
}

}  // namespace
}  // namespace presenced::engine
