// Admin reads: live stats, bookings with patient names, and the journal for audit.
#include <algorithm>
#include <chrono>
#include <iterator>

#include <fmt/format.h>

#include "api/call.hpp"
#include "api/iso_time.hpp"
#include "api/json_in.hpp"
#include "api/json_out.hpp"
#include "api/partition.hpp"

namespace slotd {
namespace {

double ratio(std::uint64_t a, std::uint64_t b) {
  return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b);
}

struct Tally {
  std::array<std::uint64_t, 4> slots{}, bookings{};
  void add(const StatusCounts& c) {
    for (std::size_t i = 0; i < 4; ++i) {
      slots[i] += c.slots[i].load(std::memory_order_relaxed);
      bookings[i] += c.bookings[i].load(std::memory_order_relaxed);
    }
  }
};

// "slots":{…},"bookings":{…},"fillRate","conversion" of one tally (no braces around).
void append_tally(std::string& out, const Tally& t) {
  const auto [available, held, booked, closed] = t.slots;
  const auto [pending, confirmed, failed, cancelled] = t.bookings;
  const std::uint64_t open_slots = available + held + booked;
  fmt::format_to(std::back_inserter(out),
                 R"("slots":{{"total":{},"available":{},"held":{},"booked":{},"closed":{}}},)"
                 R"("bookings":{{"total":{},"pending":{},"confirmed":{},"failed":{},"cancelled":{}}},)"
                 R"("fillRate":{:.4f},"conversion":{:.4f})",
                 open_slots + closed, available, held, booked, closed,
                 pending + confirmed + failed + cancelled, pending, confirmed, failed, cancelled,
                 ratio(held + booked, open_slots), ratio(confirmed, confirmed + failed));
}

TimeMs wall_clock_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

// Everything is kept incrementally by the read store: a request sums per-doctor counters,
// it never scans slots or bookings. On the home Api of a process serving several partitions
// (and no ?partition=), the figures are of every partition: sums, the per-doctor and
// per-clinic lists joined (each in its partition's ids), and asOfSeq per partition.
void get_admin_stats(Call& call) {
  const std::span<Api* const> merged = call.merged_partitions();
  std::vector<Api*> parts{&call.api};
  if (!merged.empty()) parts.assign(merged.begin(), merged.end());
  const TimeMs now_ms = wall_clock_ms();
  Tally total;
  std::size_t clinics = 0, doctors = 0;
  std::uint64_t commands = 0, rejections = 0, batches = 0, queue_depth = 0, append_ns = 0;
  std::uint64_t last_batch_commands = 0, last_append_ns = 0;
  std::vector<TimeMs> held;
  std::vector<MinuteCounts> minutes;
  std::string per_doctor, per_clinic, as_of;
  for (Api* part : parts) {
    const PartitionScope scope(part->partition());
    const ReadStore& reads = part->sequencer().reads();
    const std::uint64_t seq = reads.as_of_seq();
    auto catalog = reads.catalog();
    if (as_of.empty()) {
      as_of = fmt::format(R"("asOfSeq":{})", seq);
      if (parts.size() > 1) as_of += R"(,"partitions":[)";
    } else {
      as_of += ',';
    }
    if (parts.size() > 1) fmt::format_to(std::back_inserter(as_of), R"({{"partition":{},"asOfSeq":{}}})", part->partition(), seq);
    total.add(reads.counts());
    clinics += catalog->clinics.size();
    doctors += catalog->doctors.size();

    const SequencerStats& st = part->sequencer().stats();
    commands += st.commands.load();
    rejections += st.rejections.load();
    batches += st.batches.load();
    queue_depth += part->sequencer().queue_depth();
    append_ns += st.journal_append_ns.load();
    last_batch_commands = std::max<std::uint64_t>(last_batch_commands, st.last_batch_commands.load());
    last_append_ns = std::max<std::uint64_t>(last_append_ns, st.last_append_ns.load());

    std::vector<Tally> clinic_tallies(catalog->clinics.size());
    for (const DoctorInfo& d : catalog->doctors) {
      const DoctorView* view = reads.doctor(d.id);
      if (!view) continue;
      Tally t;
      t.add(view->counts());
      if (d.clinic_id >= 1 && d.clinic_id <= clinic_tallies.size()) {
        Tally& c = clinic_tallies[d.clinic_id - 1];
        for (std::size_t k = 0; k < 4; ++k) {
          c.slots[k] += t.slots[k];
          c.bookings[k] += t.bookings[k];
        }
      }
      if (!per_doctor.empty()) per_doctor += ',';
      fmt::format_to(std::back_inserter(per_doctor), R"({{"doctorId":{},"clinicId":{},)",
                     external_id(d.id), external_id(d.clinic_id));
      append_tally(per_doctor, t);
      per_doctor += '}';
    }
    for (std::size_t i = 0; i < clinic_tallies.size(); ++i) {
      if (!per_clinic.empty()) per_clinic += ',';
      fmt::format_to(std::back_inserter(per_clinic), R"({{"clinicId":{},)", external_id(i + 1));
      append_tally(per_clinic, clinic_tallies[i]);
      per_clinic += '}';
    }

    std::vector<TimeMs> part_held = reads.recent_hold_to_confirm_ms();
    held.insert(held.end(), part_held.begin(), part_held.end());
    // The same wall clock gives every partition the same minutes.
    std::vector<MinuteCounts> part_minutes = reads.minutes(now_ms);
    if (minutes.empty()) {
      minutes = std::move(part_minutes);
    } else {
      for (const MinuteCounts& m : part_minutes) {
        auto same = std::find_if(minutes.begin(), minutes.end(),
                                 [&](const MinuteCounts& x) { return x.minute_ms == m.minute_ms; });
        if (same == minutes.end()) continue;
        same->held += m.held;
        same->confirmed += m.confirmed;
        same->failed += m.failed;
        same->cancelled += m.cancelled;
      }
    }
  }
  if (parts.size() > 1) as_of += ']';

  std::string body;
  body.reserve(1024 + per_doctor.size() + per_clinic.size() + minutes.size() * 100);
  auto it = std::back_inserter(body);
  fmt::format_to(it, R"({{{},"clinics":{},"doctors":{},)", as_of, clinics, doctors);
  append_tally(body, total);
  fmt::format_to(it, R"(,"expiries":{})", total.bookings[static_cast<std::size_t>(BookingStatus::failed)]);
  fmt::format_to(it,
                 R"(,"sequencer":{{"commands":{},"rejections":{},"batches":{},"queueDepth":{},)"
                 R"("lastBatchSize":{},"avgBatchSize":{:.2f},"journalSyncMsAvg":{:.3f},"journalSyncMsLast":{:.3f}}})",
                 commands, rejections, batches, queue_depth, last_batch_commands,
                 ratio(commands, batches),
                 batches ? static_cast<double>(append_ns) / 1e6 / static_cast<double>(batches) : 0.0,
                 static_cast<double>(last_append_ns) / 1e6);
  fmt::format_to(it, R"(,"perDoctor":[{}],"perClinic":[{}])", per_doctor, per_clinic);

  std::sort(held.begin(), held.end());
  auto percentile = [&](double p) -> TimeMs {
    if (held.empty()) return 0;
    return held[static_cast<std::size_t>(p * static_cast<double>(held.size() - 1))];
  };
  fmt::format_to(it, R"(,"holdToConfirmMs":{{"count":{},"median":{},"p90":{}}})", held.size(),
                 percentile(0.5), percentile(0.9));

  body += R"(,"bookingsPerMinute":[)";
  bool first = true;
  for (const MinuteCounts& m : minutes) {
    if (!first) body += ',';
    first = false;
    body += R"({"minute":")";
    append_iso8601(body, m.minute_ms);
    fmt::format_to(it, R"(","held":{},"confirmed":{},"failed":{},"cancelled":{}}})", m.held,
                   m.confirmed, m.failed, m.cancelled);
  }
  body += "]}";
  call.respond(json_reply(200, std::move(body)));
}

// Newest first, in keyset pages: `after` is the id to continue below. One request looks
// at no more than kMaxScan bookings; if it stops there, `next` says where to go on. On the
// home Api of a process serving several partitions, without a clinicId, doctorId or
// ?partition=, the pages run through every partition by id, highest partition first (ids
// carry their partition, so `after` alone says where a page ends).
void get_admin_bookings(Call& call) {
  constexpr std::uint64_t kMaxScan = 200'000;
  const Target& t = call.target;
  const bool merged = !call.merged_partitions().empty() && !t.param("clinicId") && !t.param("doctorId");
  std::optional<Id> clinic_id, doctor_id, after;
  std::optional<BookingStatus> status;
  TimeMs from = std::numeric_limits<TimeMs>::min(), to = std::numeric_limits<TimeMs>::max();
  std::uint64_t limit = 50;
  std::optional<ApiError> elsewhere;  // an id of a partition another node owns
  auto id_param = [&](std::string_view key, std::optional<Id>& out, bool keep_external = false) {
    const std::string* p = t.param(key);
    if (!p) return true;
    out = id_from_text(*p);
    if (!out) return false;
    if (keep_external) return true;
    auto local = local_id(*out);
    if (!local) {
      if (!elsewhere) elsewhere = local.error();
      return true;
    }
    out = *local;
    return true;
  };
  if (!id_param("clinicId", clinic_id)) return call.fail(bad_query("clinicId must be an integer id"));
  if (!id_param("doctorId", doctor_id)) return call.fail(bad_query("doctorId must be an integer id"));
  if (!id_param("after", after, merged)) return call.fail(bad_query("after must be a booking id"));
  if (elsewhere) return call.fail(*elsewhere);
  if (const std::string* p = t.param("status")) {
    for (auto s : {BookingStatus::pending, BookingStatus::confirmed, BookingStatus::failed,
                   BookingStatus::cancelled}) {
      std::string upper;
      for (char c : *p) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (upper == to_string(s)) status = s;
    }
    if (!status) return call.fail(bad_query("status must be PENDING, CONFIRMED, FAILED or CANCELLED"));
  }
  if (const std::string* p = t.param("from")) {
    auto ms = instant_from_text(*p);
    if (!ms) return call.fail(bad_query("from must be an ISO-8601 instant"));
    from = *ms;
  }
  if (const std::string* p = t.param("to")) {
    auto ms = instant_from_text(*p);
    if (!ms) return call.fail(bad_query("to must be an ISO-8601 instant"));
    to = *ms;
  }
  if (const std::string* p = t.param("limit")) {
    auto v = id_from_text(*p);
    if (!v || *v == 0 || *v > 500) return call.fail(bad_query("limit must be an integer from 1 to 500"));
    limit = *v;
  }

  // The partitions to page through, highest first, and where each one starts.
  std::vector<Api*> parts{&call.api};
  if (merged) parts.assign(call.merged_partitions().begin(), call.merged_partitions().end());
  std::sort(parts.begin(), parts.end(), [](Api* a, Api* b) { return a->partition() > b->partition(); });
  std::string body = R"({"bookings":[)";
  std::uint64_t found = 0, scanned = 0;
  std::optional<Id> next;  // external
  for (Api* part : parts) {
    const PartitionScope scope(part->partition());
    const ReadStore& reads = part->sequencer().reads();
    auto catalog = reads.catalog();
    const std::uint64_t count = reads.booking_count();
    std::uint64_t id = count;
    if (after && merged) {
      if (part->partition() > partition_of(*after)) continue;  // a page before this one
      if (part->partition() == partition_of(*after)) {
        const Id local = *after & kLocalIdMask;
        id = std::min<std::uint64_t>(local == 0 ? 0 : local - 1, count);
      }
    } else if (after) {
      id = std::min<std::uint64_t>(*after == 0 ? 0 : *after - 1, count);
    }
    for (; id >= 1; --id) {
      if (found == limit || scanned++ == kMaxScan) {
        next = external_id(id + 1);  // the last one looked at
        break;
      }
      auto b = reads.booking(id);
      if (!b || (status && b->status != *status)) continue;
      auto s = reads.slot(b->slot_id);
      if (!s) continue;
      const DoctorInfo* d = catalog->doctor(s->doctor_id);
      const Id clinic = d ? d->clinic_id : 0;
      if ((doctor_id && s->doctor_id != *doctor_id) || (clinic_id && clinic != *clinic_id) ||
          s->start_ms < from || s->start_ms >= to) {
        continue;
      }
      if (found++) body += ',';
      fmt::format_to(std::back_inserter(body),
                     R"({{"id":{},"slotId":{},"doctorId":{},"clinicId":{},"patientName":)",
                     external_id(b->id), external_id(b->slot_id), external_id(s->doctor_id),
                     external_id(clinic));
      append_json_string(body, b->patient_name);
      fmt::format_to(std::back_inserter(body), R"(,"status":"{}","createdAt":")", to_string(b->status));
      append_iso8601(body, b->created_at_ms);
      body += R"(","expiresAt":")";
      append_iso8601(body, b->expires_at_ms);
      body += R"(","confirmedAt":)";
      if (b->confirmed_at_ms) {
        body += '"';
        append_iso8601(body, b->confirmed_at_ms);
        body += '"';
      } else {
        body += "null";
      }
      body += R"(,"start":")";
      append_iso8601(body, s->start_ms);
      body += R"(","end":")";
      append_iso8601(body, s->end_ms);
      body += "\"}";
    }
    if (next) break;
  }
  body += R"(],"next":)";
  body += next ? std::to_string(*next) : "null";
  body += '}';
  call.respond(json_reply(200, std::move(body)));
}

std::optional<JournalPage> journal_page(Call& call, std::uint64_t default_limit) {
  JournalPage page{1, default_limit};
  if (const std::string* p = call.target.param("fromSeq")) {
    auto v = id_from_text(*p);
    if (!v || *v == 0) {
      call.fail(bad_query("fromSeq must be a positive integer"));
      return std::nullopt;
    }
    page.from_seq = *v;
  }
  if (const std::string* p = call.target.param("limit")) {
    auto v = id_from_text(*p);
    if (!v || *v == 0 || *v > 10'000) {
      call.fail(bad_query("limit must be an integer from 1 to 10000"));
      return std::nullopt;
    }
    page.limit = *v;
  }
  return page;
}

// The journal for audit: durable records from fromSeq (default 1), at most limit (100,
// at most 10,000), with the seq to ask for next.
void get_events(Call& call) {
  const std::optional<JournalPage> page = journal_page(call, 100);
  if (!page) return;
  const std::uint64_t from_seq = page->from_seq, limit = page->limit;
  Sequencer& seq = call.api.sequencer();
  const std::uint64_t last = seq.durable_seq();
  std::string body = R"({"events":[)";
  std::uint64_t next_seq = from_seq;
  bool first = true;
  JournalStatus st = seq.read_journal(from_seq, limit, [&](const JournalRecord& r) {
    if (r.seq > last) return false;
    if (!first) body += ',';
    first = false;
    append_event_json(body, r);
    next_seq = r.seq + 1;
    return true;
  });
  if (!st) return call.fail(ApiError{500, "journal_unreadable", st.message});
  fmt::format_to(std::back_inserter(body), R"(],"fromSeq":{},"nextSeq":{},"lastSeq":{}}})",
                 from_seq, next_seq, last);
  call.respond(json_reply(200, std::move(body)));
}

}  // namespace slotd
