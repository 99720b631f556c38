#include "common/json_text.h"

#include <gtest/gtest.h>

namespace presenced {
namespace {

TEST(JsonTextTest, DefaultIsNull) {
  JsonText t;
  EXPECT_TRUE(t.is_null());
  EXPECT_EQ(t.text(), "null");
}

TEST(JsonTextTest, NullTextYieldsNull) { EXPECT_TRUE(JsonText::FromSerialized("null").is_null()); }

TEST(JsonTextTest, CopiesShareTheText) {
  JsonText a = JsonText::FromSerialized(R"({"x":1})");
  JsonText b = a;
  EXPECT_EQ(a.text().data(), b.text().data());
  JsonText c = std::move(a);
  EXPECT_TRUE(a.is_null());  // NOLINT: moved-from is defined as null
  EXPECT_EQ(c.text(), R"({"x":1})");
  EXPECT_EQ(b, c);
}

TEST(JsonTextTest, EqualityComparesText) {
  EXPECT_EQ(JsonText::FromSerialized("[1]"), JsonText::FromSerialized("[1]"));
  EXPECT_FALSE(JsonText::FromSerialized("[1]") == JsonText::FromSerialized("[2]"));
}

}  // namespace
}  // namespace presenced
