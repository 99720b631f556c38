#include "protocol/commands.h"

#include <gtest/gtest.h>

namespace presenced::protocol {
namespace {

TEST(CommandParser, BareCommandIsOwnStatus) {
  EXPECT_EQ(ParseCommand("/presence").kind, CommandKind::kSelf);
  EXPECT_EQ(ParseCommand("  /presence  ").kind, CommandKind::kSelf);
  EXPECT_EQ(ParseCommand("/PRESENCE").kind, CommandKind::kSelf);
}

TEST(CommandParser, Who) {
  Command all = ParseCommand("/presence who");
  EXPECT_EQ(all.kind, CommandKind::kWho);
  EXPECT_FALSE(all.channel.has_value());
  Command room = ParseCommand("/presence who room-1");
  EXPECT_EQ(room.kind, CommandKind::kWho);
  EXPECT_EQ(room.channel, "room-1");
  Command two = ParseCommand("/presence who a b");
  EXPECT_EQ(two.kind, CommandKind::kInvalid);
  EXPECT_NE(two.problem.find("at most one channel"), std::string::npos);
}

TEST(CommandParser, StatusWords) {
  const std::pair<const char*, engine::Presence> cases[] = {
      {"online", engine::Presence::kOnline},
      {"away", engine::Presence::kAway},
      {"dnd", engine::Presence::kDnd},
      {"offline", engine::Presence::kOffline},
  };
  for (const auto& [word, status] : cases) {
    Command c = ParseCommand(std::string("/presence ") + word);
    EXPECT_EQ(c.kind, CommandKind::kSetStatus) << word;
    EXPECT_EQ(c.status, status) << word;
  }
  EXPECT_EQ(ParseCommand("/presence Away").status, engine::Presence::kAway);
  EXPECT_EQ(ParseCommand("/presence away now").kind, CommandKind::kInvalid);
}

TEST(CommandParser, StatusTextQuotedUnquotedAndCleared) {
  EXPECT_EQ(ParseCommand(R"(/presence status "In a meeting")").text, "In a meeting");
  EXPECT_EQ(ParseCommand(R"(/presence status "say \"hi\" \\ bye")").text, R"(say "hi" \ bye)");
  EXPECT_EQ(ParseCommand("/presence status out  to lunch").text, "out  to lunch");
  // Typographic quotes, as chat apps type them.
  EXPECT_EQ(ParseCommand("/presence status \xe2\x80\x9c"
                         "focus time\xe2\x80\x9d")
                .text,
            "focus time");
  for (const char* clear : {"/presence status", "/presence status clear", "/presence status \"\"",
                            "/presence status CLEAR"}) {
    Command c = ParseCommand(clear);
    EXPECT_EQ(c.kind, CommandKind::kSetText) << clear;
    EXPECT_FALSE(c.text.has_value()) << clear;
  }
}

TEST(CommandParser, MalformedTextIsExplained) {
  Command open = ParseCommand(R"(/presence status "unfinished)");
  EXPECT_EQ(open.kind, CommandKind::kInvalid);
  EXPECT_NE(open.problem.find("closing quote"), std::string::npos);
  Command trailing = ParseCommand(R"(/presence status "a" b)");
  EXPECT_EQ(trailing.kind, CommandKind::kInvalid);
  EXPECT_NE(trailing.problem.find("after the closing quote"), std::string::npos);
}

TEST(CommandParser, WordsWithoutArguments) {
  EXPECT_EQ(ParseCommand("/presence activity").kind, CommandKind::kActivity);
  EXPECT_EQ(ParseCommand("/presence devices").kind, CommandKind::kDevices);
  EXPECT_EQ(ParseCommand("/presence sync").kind, CommandKind::kSync);
  EXPECT_EQ(ParseCommand("/presence help").kind, CommandKind::kHelp);
  Command extra = ParseCommand("/presence sync now");
  EXPECT_EQ(extra.kind, CommandKind::kInvalid);
  EXPECT_NE(extra.problem.find("takes no arguments"), std::string::npos);
}

TEST(CommandParser, UnknownAndForeignTextGetAProblem) {
  Command unknown = ParseCommand("/presence dance");
  EXPECT_EQ(unknown.kind, CommandKind::kInvalid);
  EXPECT_EQ(unknown.problem, "unknown command /presence dance");
  EXPECT_EQ(ParseCommand("hello there").kind, CommandKind::kInvalid);
  EXPECT_EQ(ParseCommand("").problem, "the command is empty");
  EXPECT_EQ(ParseCommand("/presences").kind, CommandKind::kInvalid);
}

TEST(CommandParser, HelpListsEveryCommand) {
  const std::string help = HelpText();
  for (const CommandHelp& h : CommandHelpList()) {
    EXPECT_NE(help.find(h.usage), std::string::npos) << h.usage;
  }
}

}  // namespace
}  // namespace presenced::protocol
