#include "common/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace presenced {
namespace {

TEST(Utf8Test, AcceptsAsciiAndEveryEncodingLength) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii text that is longer than eight bytes"));
  EXPECT_TRUE(IsValidUtf8("\xC2\xA9"));          // U+00A9
  EXPECT_TRUE(IsValidUtf8("\xE2\x82\xAC"));      // U+20AC
  EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));      // U+D7FF, just below the surrogates
  EXPECT_TRUE(IsValidUtf8("\xEE\x80\x80"));      // U+E000, just above them
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));  // U+1F600
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF, the last code point
  EXPECT_TRUE(IsValidUtf8("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"));  // "kosme"
}

TEST(Utf8Test, RefusesWhatRfc3629Forbids) {
  EXPECT_FALSE(IsValidUtf8("\xFF"));
  EXPECT_FALSE(IsValidUtf8("\x80"));  // lone continuation byte
  EXPECT_FALSE(
      IsValidUtf8("a\xBF"
                  "b"));
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));  // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xC1\xBF"));
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));      // overlong three bytes
  EXPECT_FALSE(IsValidUtf8("\xF0\x80\x80\xAF"));  // overlong four bytes
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // U+D800, a surrogate
  EXPECT_FALSE(IsValidUtf8("\xED\xBF\xBF"));      // U+DFFF
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(IsValidUtf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));  // truncated at the end
  EXPECT_FALSE(
      IsValidUtf8("\xE2\x82"
                  "a"));                        // interrupted
  EXPECT_FALSE(IsValidUtf8("0123456789\xFE"));  // after the ASCII fast path
}

TEST(Utf8Test, ValidatesAcrossFeedsAtEverySplitPoint) {
  const std::string text =
      "a\xF0\x9F\x98\x80"
      "b\xE2\x82\xAC\xC2\xA9";
  for (size_t split = 0; split <= text.size(); ++split) {
    Utf8Validator v;
    EXPECT_TRUE(v.Feed(std::string_view(text).substr(0, split)));
    EXPECT_TRUE(v.Feed(std::string_view(text).substr(split)));
    EXPECT_TRUE(v.Complete()) << split;
  }
  Utf8Validator v;
  EXPECT_TRUE(v.Feed("\xF0\x9F"));
  EXPECT_FALSE(v.Complete());  // a code point is still open
  EXPECT_TRUE(v.ok());
  EXPECT_FALSE(v.Feed("\x28"));  // not a continuation byte
  EXPECT_FALSE(v.ok());
  EXPECT_FALSE(v.Feed("a"));  // stays failed
  v.Reset();
  EXPECT_TRUE(v.Feed("a") && v.Complete());
}

TEST(Utf8Test, PrefixNeverSplitsACharacter) {
  EXPECT_EQ(Utf8Prefix("abc", 10), "abc");
  EXPECT_EQ(Utf8Prefix("abc", 2), "ab");
  const std::string euro = "ab\xE2\x82\xAC";
  EXPECT_EQ(Utf8Prefix(euro, 5), euro);
  EXPECT_EQ(Utf8Prefix(euro, 4), "ab");
  EXPECT_EQ(Utf8Prefix(euro, 3), "ab");
  EXPECT_EQ(Utf8Prefix(euro, 2), "ab");
  EXPECT_EQ(Utf8Prefix("\xF0\x9F\x98\x80", 3), "");
}

}  // namespace
}  // namespace presenced
