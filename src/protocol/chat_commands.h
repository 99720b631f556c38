// Runs the `/presence ...` chat commands (parsed by commands.h) for the calling user, replying
// with a short English sentence plus the structured data of the op each command stands for. A
// command is checked as that op (channel names, token patterns).
//
// Threading: the Dispatcher's thread.
#pragma once

#include <string_view>

#include "protocol/ops.h"

namespace presenced::protocol {

// Runs `line`; `respond` gets the reply fields `"text":..,"data":..` (now or later).
void RunCommand(OpCall& call, std::string_view line, Responder respond);

}  // namespace presenced::protocol
