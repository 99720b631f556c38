// Human-readable output of presencectl: aligned tables, relative and local times, one-line
// events, optional colour, and escaping of whatever the server sends before it reaches a terminal.
//
// Pure functions of their arguments (the current time is a parameter; local times use the
// process's time zone); no I/O. Safe to call from any thread.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"

namespace presenced::ctl {

// Member data and other JSON shown in a table or an event line is cut to this many characters.
inline constexpr size_t kMaxDataWidth = 60;

enum class Color { kNone, kRed, kGreen, kYellow, kBlue, kCyan, kDim };

// Colours text with ANSI escapes, or leaves it alone when colour is off.
class Style {
 public:
  explicit Style(bool color) : color_(color) {}
  std::string Paint(std::string_view text, Color color) const;

 private:
  bool color_;
};

struct Cell {
  std::string text;  // already Printable
  Color color = Color::kNone;
};

// Rows printed in columns two spaces apart, under an upper-case header; the last column is not
// padded. Widths count UTF-8 code points (wide characters count as one).
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void AddRow(std::vector<Cell> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.empty(); }
  std::string Render(const Style& style) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<Cell>> rows_;
};

// `s` with control characters (C0, DEL and C1, also tabs; newlines too unless `keep_newlines`)
// written as \xNN, so text from the server cannot move the cursor or change the terminal.
std::string Printable(std::string_view s, bool keep_newlines = false);

// The number of UTF-8 code points in `s`.
size_t DisplayWidth(std::string_view s);

// "just now", "5s ago", "2m ago", "3h ago", "4d ago"; "in 5s" ... for times after `now`.
std::string Relative(TimeMs then, TimeMs now);
// Local time "HH:MM:SS.mmm" and "YYYY-MM-DD HH:MM:SS.mmm".
std::string ClockTime(TimeMs t);
std::string DateTime(TimeMs t);

// Serialized JSON, Printable, cut to `max_width` characters ending in "..." when longer.
std::string Compact(const boost::json::value& v, size_t max_width = kMaxDataWidth);

// Reading fields of a reply without trusting its shape.
// An integer field (also a whole double), or nullopt when absent, null or not a number.
std::optional<int64_t> IntField(const boost::json::object& o, std::string_view key);
// A string field as Printable text, `fallback` when absent or null, other JSON as Compact.
std::string Field(const boost::json::object& o, std::string_view key,
                  std::string_view fallback = "-");
// The object at `key`, or an empty one.
const boost::json::object& ObjectField(const boost::json::object& o, std::string_view key);
// The array at `key`, or an empty one.
const boost::json::array& ArrayField(const boost::json::object& o, std::string_view key);

// online green, away yellow, dnd red, offline dim.
Color StatusColor(std::string_view status);

// One line for a pushed presence event (docs/protocol.md, "Member and event"), timed by the
// member's timestamp:  `12:00:01.123 enter  room-1  alice (conn abc) {"x":1}` (a leave ends in
// `[reason]`).
std::string PresenceLine(const boost::json::object& event, const Style& style);
// One line for a pushed status frame, timed by `received`:
// `12:00:05.000 status bob away "lunch" (was online)`.
std::string StatusLine(const boost::json::object& status, TimeMs received, const Style& style);

}  // namespace presenced::ctl
