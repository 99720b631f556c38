// Fuzzes the configuration loader (server/config.h): TOML text (ApplyTomlText, what a config file
// goes through) and single settings as the environment and flags give them (ApplySetting).
//
// Input: byte 0 picks the mode. Even: the rest is a TOML document. Odd: byte 1 picks the setting
// (by index into Settings()), the rest is its value.
//
// Invariants: no crash, UB or exception; a refusal names what it refuses; a TOML float lands in a
// real-valued setting exactly (not rounded through six printed digits); after Reconcile the
// settings agree with each other; a configuration that validates has a listen address that splits.
#include "server/config.h"

#include <toml++/toml.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"

namespace {

using presenced::Status;
using presenced::server::Config;

void CheckConsistent(Config& config) {
  (void)presenced::server::Reconcile(config);
  FUZZ_CHECK(config.protocol.default_remain_present_for_ms <=
             config.protocol.max_remain_present_for_ms);
  FUZZ_CHECK(config.protocol.engine.away_after_ms <= config.protocol.engine.offline_after_ms);
  if (presenced::server::Validate(config).ok()) {
    FUZZ_CHECK(presenced::server::SplitListen(config.listen).ok());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Config config;
  if (data[0] % 2 == 0) {
    const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
    const Status st = presenced::server::ApplyTomlText(config, text, "fuzz.toml");
    if (!st.ok()) {
      FUZZ_CHECK(st.error().message.find("fuzz.toml") != std::string::npos);
      return 0;
    }
    // Real-valued settings take a TOML float as it is.
    toml::table table;
    try {
      table = toml::parse(text);
    } catch (const toml::parse_error&) {
      FUZZ_CHECK(false);  // ApplyTomlText accepted it
    }
    for (const auto& [key, value] : {std::pair{"rate_per_second", config.protocol.rate_per_second},
                                     std::pair{"rate_burst", config.protocol.rate_burst}}) {
      if (const toml::node* n = table.get(key); n && n->is_floating_point()) {
        FUZZ_CHECK(value == *n->value<double>());
      }
    }
  } else {
    const auto& settings = presenced::server::Settings();
    const auto& setting = settings[data[1] % settings.size()];
    const std::string value(reinterpret_cast<const char*>(data) + 2, size - 2);
    const Status st = presenced::server::ApplySetting(config, setting.key, value);
    if (!st.ok()) {
      FUZZ_CHECK(st.error().message.find(setting.key) != std::string::npos);
      return 0;
    }
  }
  CheckConsistent(config);
  return 0;
}
