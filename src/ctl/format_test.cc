#include "ctl/format.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <ctime>

namespace presenced::ctl {
namespace {

namespace json = boost::json;

// Suites are named Presencectl* so `ctest -R ctl` selects them with the integration tests.
class PresencectlFormatTest : public ::testing::Test {
 protected:
  // Local times are printed in the process's zone; pin it so the expectations hold anywhere.
  void SetUp() override {
    setenv("TZ", "UTC", 1);
    tzset();
  }
};

// 2024-05-01 12:00:01.123 UTC
constexpr TimeMs kNoon = 1714564801123;

TEST_F(PresencectlFormatTest, RelativeTimesRoundDownToTheLargestUnit) {
  EXPECT_EQ(Relative(kNoon, kNoon), "just now");
  EXPECT_EQ(Relative(kNoon - 999, kNoon), "just now");
  EXPECT_EQ(Relative(kNoon - 59'999, kNoon), "59s ago");
  EXPECT_EQ(Relative(kNoon - 150'000, kNoon), "2m ago");
  EXPECT_EQ(Relative(kNoon - 3 * 3'600'000, kNoon), "3h ago");
  EXPECT_EQ(Relative(kNoon - 4 * 86'400'000LL, kNoon), "4d ago");
  EXPECT_EQ(Relative(kNoon + 300'000, kNoon), "in 5m");
}

TEST_F(PresencectlFormatTest, LocalTimesHaveMilliseconds) {
  EXPECT_EQ(ClockTime(kNoon), "12:00:01.123");
  EXPECT_EQ(DateTime(kNoon), "2024-05-01 12:00:01.123");
}

TEST_F(PresencectlFormatTest, TableAlignsColumnsByCodePoints) {
  Table t({"CLIENT", "STATUS"});
  t.AddRow({{"zoë"}, {"online"}});
  t.AddRow({{"alexander"}, {"away"}});
  EXPECT_EQ(t.Render(Style(false)),
            "CLIENT     STATUS\n"
            "zoë        online\n"
            "alexander  away\n");
}

TEST_F(PresencectlFormatTest, ColourWrapsTheTextButNotThePadding) {
  Table t({"A", "B"});
  t.AddRow({{"x", Color::kGreen}, {"y"}});
  EXPECT_EQ(t.Render(Style(true)), "A  B\n\x1b[32mx\x1b[0m  y\n");
  EXPECT_EQ(Style(false).Paint("x", Color::kRed), "x");
}

TEST_F(PresencectlFormatTest, ControlCharactersCannotReachTheTerminal) {
  EXPECT_EQ(Printable("a\x1b[2Jb\tc\x7f"), "a\\x1b[2Jb\\x09c\\x7f");
  EXPECT_EQ(Printable("one\ntwo"), "one\\x0atwo");
  EXPECT_EQ(Printable("one\ntwo", /*keep_newlines=*/true), "one\ntwo");
  EXPECT_EQ(Printable("\xc2\x9b"
                      "31m"),
            "\\x9b31m");  // U+009B, the 8-bit CSI
  EXPECT_EQ(Printable("zoë ✓"), "zoë ✓");
}

TEST_F(PresencectlFormatTest, CompactCutsLongDataAtACodePoint) {
  EXPECT_EQ(Compact(json::parse(R"({"x":1})")), R"({"x":1})");
  EXPECT_EQ(Compact(json::value("ëëëëëëëëëë"), 8), "\"ëëëë...");
}

TEST_F(PresencectlFormatTest, FieldsToleratePartialReplies) {
  const json::object o =
      json::parse(R"({"s":"a\u001bb","n":5,"z":null,"o":{"k":[1]}})").as_object();
  EXPECT_EQ(Field(o, "s"), "a\\x1bb");
  EXPECT_EQ(Field(o, "n"), "5");
  EXPECT_EQ(Field(o, "z"), "-");
  EXPECT_EQ(Field(o, "missing", "never"), "never");
  EXPECT_EQ(Field(o, "o"), R"({"k":[1]})");
  EXPECT_EQ(IntField(o, "n"), 5);
  EXPECT_EQ(IntField(o, "s"), std::nullopt);
  EXPECT_TRUE(ArrayField(o, "s").empty());
  EXPECT_TRUE(ObjectField(o, "missing").empty());
}

TEST_F(PresencectlFormatTest, PresenceLine) {
  const json::object enter = json::parse(R"({"type":"presence","channel":"room-1","action":"enter",
      "member":{"clientId":"alice","connectionId":"abc","data":{"x":1},"timestamp":1714564801123,
      "expiresAt":null},"serial":7})")
                                 .as_object();
  EXPECT_EQ(PresenceLine(enter, Style(false)),
            R"(12:00:01.123 enter  room-1  alice (conn abc) {"x":1})");
  const json::object leave = json::parse(R"({"type":"presence","channel":"room-1","action":"leave",
      "member":{"clientId":"alice","connectionId":"abc","data":null,"timestamp":1714564801123},
      "serial":8,"reason":"timeout"})")
                                 .as_object();
  EXPECT_EQ(PresenceLine(leave, Style(false)),
            "12:00:01.123 leave  room-1  alice (conn abc) null [timeout]");
  const json::object update =
      json::parse(R"({"channel":"c","action":"update","member":{}})").as_object();
  EXPECT_EQ(PresenceLine(update, Style(false)), "--:--:--.--- update c  - (conn -) null");
}

TEST_F(PresencectlFormatTest, StatusLine) {
  const json::object away = json::parse(R"({"type":"status","previous":"online","clientId":"bob",
      "status":"away","text":"lunch","lastSeen":1,"activeDevice":"phone"})")
                                .as_object();
  EXPECT_EQ(StatusLine(away, kNoon, Style(false)),
            R"(12:00:01.123 status bob away "lunch" (was online))");
  const json::object online = json::parse(R"({"type":"status","clientId":"bob","status":"online",
      "text":null})")
                                  .as_object();
  EXPECT_EQ(StatusLine(online, kNoon, Style(false)), "12:00:01.123 status bob online");
}

}  // namespace
}  // namespace presenced::ctl
