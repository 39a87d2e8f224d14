// The JSON form of a journal record, shared by GET /events (and the WebSocket feed to
// come). Names match the C++ event names; the booking token is never written out.
#pragma once

#include <string>

#include "journal/codec.hpp"

namespace slotd {

void append_json_string(std::string& out, std::string_view s);
std::string_view to_string(Actor actor);
// {"id","doctorId","start","end","status"(,"seq")}: the slot with `status` (the slot's own
// status, or the one right after an event); "seq" only when non-zero.
void append_slot_json(std::string& out, const Slot& slot, SlotStatus status,
                      std::uint64_t seq = 0);
// {"seq","at","requestId","actor","type","data":{…}}
void append_event_json(std::string& out, const JournalRecord& record);

}  // namespace slotd
