// presencectl's human-readable output (format.h); no I/O, any thread.
#include "ctl/format.h"

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <cinttypes>
#include <cstdio>
#include <ctime>

namespace presenced::ctl {
namespace {

namespace json = boost::json;

const char* Ansi(Color color) {
  switch (color) {
    case Color::kRed:
      return "\x1b[31m";
    case Color::kGreen:
      return "\x1b[32m";
    case Color::kYellow:
      return "\x1b[33m";
    case Color::kBlue:
      return "\x1b[34m";
    case Color::kCyan:
      return "\x1b[36m";
    case Color::kDim:
      return "\x1b[2m";
    case Color::kNone:
      break;
  }
  return "";
}

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// `s` cut to at most `width` code points.
std::string_view Cut(std::string_view s, size_t width) {
  size_t points = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!IsContinuationByte(s[i]) && points++ == width) return s.substr(0, i);
  }
  return s;
}

// Local broken-down time of `t` and its milliseconds.
std::tm Local(TimeMs t, int& millis) {
  TimeMs seconds = t / 1000;
  TimeMs ms = t % 1000;
  if (ms < 0) ms += 1000, seconds -= 1;
  millis = static_cast<int>(ms);
  const std::time_t tt = static_cast<std::time_t>(seconds);
  std::tm tm{};
  localtime_r(&tt, &tm);
  return tm;
}

Color ActionColor(std::string_view action) {
  if (action == "enter") return Color::kGreen;
  if (action == "leave") return Color::kRed;
  return Color::kYellow;
}

}  // namespace

std::string Style::Paint(std::string_view text, Color color) const {
  if (!color_ || color == Color::kNone) return std::string(text);
  return std::string(Ansi(color)) + std::string(text) + "\x1b[0m";
}

std::string Table::Render(const Style& style) const {
  std::vector<size_t> widths(header_.size(), 0);
  for (size_t i = 0; i < header_.size(); ++i) widths[i] = DisplayWidth(header_[i]);
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], DisplayWidth(row[i].text));
    }
  }
  std::string out;
  auto line = [&](auto cell_at, size_t n) {
    for (size_t i = 0; i < n && i < widths.size(); ++i) {
      const Cell cell = cell_at(i);
      const bool last = i + 1 == n || i + 1 == widths.size();
      out += style.Paint(cell.text, cell.color);
      if (!last) out.append(widths[i] - DisplayWidth(cell.text) + 2, ' ');
    }
    out += '\n';
  };
  line([&](size_t i) { return Cell{header_[i], Color::kNone}; }, header_.size());
  for (const auto& row : rows_) {
    line([&](size_t i) { return row[i]; }, row.size());
  }
  return out;
}

std::string Printable(std::string_view s, bool keep_newlines) {
  std::string out;
  out.reserve(s.size());
  char hex[8];
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && !(keep_newlines && c == '\n')) || c == 0x7F) {
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(s[i + 1]) <= 0x9F) {
      // U+0080..U+009F (C1 controls, e.g. the single-character CSI) in UTF-8.
      std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(s[i + 1]));
      out += hex;
      ++i;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

size_t DisplayWidth(std::string_view s) {
  size_t points = 0;
  for (char c : s) points += IsContinuationByte(c) ? 0 : 1;
  return points;
}

std::string Relative(TimeMs then, TimeMs now) {
  TimeMs d = now - then;
  const bool future = d < 0;
  if (future) d = -d;
  if (d < 1000) return "just now";
  std::string amount;
  if (d < 60'000) {
    amount = std::to_string(d / 1000) + "s";
  } else if (d < 3'600'000) {
    amount = std::to_string(d / 60'000) + "m";
  } else if (d < 86'400'000) {
    amount = std::to_string(d / 3'600'000) + "h";
  } else {
    amount = std::to_string(d / 86'400'000) + "d";
  }
  return future ? "in " + amount : amount + " ago";
}

std::string ClockTime(TimeMs t) {
  int ms = 0;
  const std::tm tm = Local(t, ms);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

std::string DateTime(TimeMs t) {
  int ms = 0;
  const std::tm tm = Local(t, ms);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%03d", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

std::string Compact(const json::value& v, size_t max_width) {
  const std::string text = Printable(json::serialize(v));
  if (DisplayWidth(text) <= max_width) return text;
  const size_t keep = max_width > 3 ? max_width - 3 : 0;
  return std::string(Cut(text, keep)) + "...";
}

std::optional<int64_t> IntField(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<int64_t>(v->get_uint64());
  if (v->is_double()) return static_cast<int64_t>(v->get_double());
  return std::nullopt;
}

std::string Field(const json::object& o, std::string_view key, std::string_view fallback) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return std::string(fallback);
  if (v->is_string()) return Printable(v->get_string());
  return Compact(*v);
}

const json::object& ObjectField(const json::object& o, std::string_view key) {
  static const json::object kEmpty;
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_object() ? v->get_object() : kEmpty;
}

const json::array& ArrayField(const json::object& o, std::string_view key) {
  static const json::array kEmpty;
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_array() ? v->get_array() : kEmpty;
}

Color StatusColor(std::string_view status) {
  if (status == "online") return Color::kGreen;
  if (status == "away") return Color::kYellow;
  if (status == "dnd") return Color::kRed;
  if (status == "offline") return Color::kDim;
  return Color::kNone;
}

std::string PresenceLine(const json::object& event, const Style& style) {
  const json::object& member = ObjectField(event, "member");
  const std::optional<TimeMs> at = IntField(member, "timestamp");
  const std::string action = Field(event, "action", "?");
  std::string line = at ? ClockTime(*at) : "--:--:--.---";
  line += ' ';
  line += style.Paint(action, ActionColor(action));
  line.append(action.size() < 6 ? 7 - action.size() : 1, ' ');
  line += Field(event, "channel") + "  " + Field(member, "clientId") + " (conn " +
          Field(member, "connectionId") + ") ";
  const json::value* data = member.if_contains("data");
  line += data != nullptr ? Compact(*data) : "null";
  if (event.contains("reason")) line += " [" + Field(event, "reason") + "]";
  return line;
}

std::string StatusLine(const json::object& status, TimeMs received, const Style& style) {
  const std::string value = Field(status, "status", "?");
  std::string line = ClockTime(received) + " " + style.Paint("status", Color::kCyan) + " " +
                     Field(status, "clientId") + " " + style.Paint(value, StatusColor(value));
  if (const json::value* text = status.if_contains("text"); text != nullptr && text->is_string()) {
    line += " \"" + Printable(text->get_string()) + "\"";
  }
  if (status.contains("previous")) line += " (was " + Field(status, "previous") + ")";
  return line;
}

}  // namespace presenced::ctl
