// History: the journal records of one booking or one slot, in seq order, read through the
// journal's entity index (never a scan of the whole journal). Only published seqs.
#include <fmt/format.h>

#include "api/auth.hpp"
#include "api/call.hpp"
#include "api/json_in.hpp"
#include "api/json_out.hpp"

namespace slotd {
namespace {

constexpr std::uint64_t kDefaultLimit = 1'000;

// {"<idName>":id,"events":[…],"nextSeq":N|null}; nextSeq is where the next page starts.
void answer_history(Call& call, EntityKind kind, std::string_view id_name) {
  const std::optional<JournalPage> page = journal_page(call, kDefaultLimit);
  if (!page) return;
  const std::uint64_t from_seq = page->from_seq, limit = page->limit;
  std::string body = fmt::format(R"({{"{}":{},"events":[)", id_name, external_id(call.id));
  std::uint64_t returned = 0, last = 0;
  JournalStatus st = call.api.sequencer().read_history(kind, call.id, from_seq, limit,
                                                       [&](const JournalRecord& r) {
                                                         if (returned++) body += ',';
                                                         append_event_json(body, r);
                                                         last = r.seq;
                                                         return true;
                                                       });
  if (!st) return call.fail(ApiError{500, "journal_unreadable", st.message});
  body += R"(],"nextSeq":)";
  body += returned == limit ? std::to_string(last + 1) : "null";
  body += '}';
  call.respond(json_reply(200, std::move(body)));
}

}  // namespace

void get_booking_history(Call& call) {
  auto b = call.reads().booking(call.id);
  if (!b) return call.fail(rejection_error(Rejection::booking_not_found));
  if (!call.admin && !token_matches(presented_token(call), b->token)) return call.fail(forbidden_booking());
  answer_history(call, EntityKind::booking, "bookingId");
}

void get_slot_history(Call& call) {
  if (!call.reads().slot(call.id)) return call.fail(rejection_error(Rejection::slot_not_found));
  answer_history(call, EntityKind::slot, "slotId");
}

}  // namespace slotd
