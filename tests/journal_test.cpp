// The journal: its codec on arbitrary bytes, and the store against a real RocksDB in a
// fresh temp directory per test.
#include <doctest/doctest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "engine/engine.hpp"
#include "journal/background_priority.hpp"
#include "journal/codec.hpp"
#include "journal/digest.hpp"
#include "journal/journal.hpp"
#include "tests/raw_rocksdb.hpp"
#include "tests/test_support.hpp"

namespace {

using namespace slotd;
namespace fs = std::filesystem;

constexpr std::uint64_t kMaxU64 = std::numeric_limits<std::uint64_t>::max();
constexpr TimeMs kMinTime = std::numeric_limits<TimeMs>::min();
constexpr TimeMs kMaxTime = std::numeric_limits<TimeMs>::max();
constexpr TimeMs kMonday2031Ms = 1'925'193'600'000;  // 2031-01-06T00:00:00Z

using slotd::testing::TempDir;

std::unique_ptr<Journal> open_journal(const std::string& dir) {
  std::unique_ptr<Journal> journal;
  const JournalStatus status = Journal::open(dir, journal);
  INFO(status.message);
  REQUIRE(status.ok);
  REQUIRE(journal != nullptr);
  return journal;
}

std::vector<JournalRecord> read_all(const Journal& journal, std::uint64_t from_seq = 1,
                                    std::uint64_t limit = 0) {
  std::vector<JournalRecord> records;
  const JournalStatus status = journal.read(from_seq, limit, [&](const JournalRecord& r) {
    records.push_back(r);
    return true;
  });
  INFO(status.message);
  REQUIRE(status.ok);
  return records;
}

WebhookSecret secret_of(std::uint8_t first) {
  WebhookSecret s{};
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(first + 29 * i);
  return s;
}

Token token_of(std::uint8_t first) {
  Token t{};
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<std::uint8_t>(first + 17 * i);
  return t;
}

// Records whose seqs run from `first_seq`, with small events (fast to write in bulk).
std::vector<JournalRecord> closed_slot_records(std::uint64_t first_seq, std::size_t count) {
  std::vector<JournalRecord> records(count);
  for (std::size_t i = 0; i < count; ++i) {
    records[i].seq = first_seq + i;
    records[i].at_ms = kMonday2031Ms + static_cast<TimeMs>(i);
    records[i].request_id = first_seq + i;
    records[i].actor = Actor::admin;
    records[i].event = SlotClosed{first_seq + i};
  }
  return records;
}

// Appends closed-slot records from `seq` on, 2,000 at a time, until the journal has at least
// `files` table files at level 0 (flushed memtables); a journal with a 64 KiB memtable
// flushes every few thousand records.
void append_until_level0_files(Journal& journal, std::uint64_t& seq, std::uint64_t files,
                               std::chrono::steady_clock::time_point deadline) {
  while (journal.level0_files() < files && std::chrono::steady_clock::now() < deadline) {
    auto records = closed_slot_records(seq, 2'000);
    REQUIRE(journal.append(records).ok);
    seq += records.size();
  }
  REQUIRE(journal.level0_files() >= files);
}

std::string encoded(const JournalRecord& record) {
  std::string bytes;
  encode_record(record, bytes);
  return bytes;
}

// ---- Field-by-field comparison (events have no operator==, on purpose: engine/ owns them).

void check_same_fields(const ClinicAdded& a, const ClinicAdded& b) {
  CHECK(a.clinic_id == b.clinic_id);
  CHECK(a.name == b.name);
  CHECK(a.time_zone == b.time_zone);
}
void check_same_fields(const ClinicUpdated& a, const ClinicUpdated& b) {
  CHECK(a.clinic_id == b.clinic_id);
  CHECK(a.name == b.name);
  CHECK(a.time_zone == b.time_zone);
}
void check_same_fields(const IdempotencyKeysForgotten& a, const IdempotencyKeysForgotten& b) {
  CHECK(a.up_to_ms == b.up_to_ms);
}
void check_same_fields(const DoctorAdded& a, const DoctorAdded& b) {
  CHECK(a.doctor_id == b.doctor_id);
  CHECK(a.clinic_id == b.clinic_id);
  CHECK(a.name == b.name);
  CHECK(a.specialty == b.specialty);
}
void check_same_fields(const SlotCreated& a, const SlotCreated& b) {
  CHECK(a.slot_id == b.slot_id);
  CHECK(a.doctor_id == b.doctor_id);
  CHECK(a.start_ms == b.start_ms);
  CHECK(a.end_ms == b.end_ms);
}
void check_same_fields(const IdempotencyKey& a, const IdempotencyKey& b) {
  CHECK(a.key == b.key);
  CHECK(a.request_hash == b.request_hash);
}
void check_same_fields(const SlotHeld& a, const SlotHeld& b) {
  CHECK(a.booking_id == b.booking_id);
  CHECK(a.slot_id == b.slot_id);
  CHECK(a.patient_name == b.patient_name);
  CHECK(a.client == b.client);
  CHECK(a.token == b.token);
  CHECK(a.created_at_ms == b.created_at_ms);
  CHECK(a.expires_at_ms == b.expires_at_ms);
  check_same_fields(a.idempotency, b.idempotency);
}
void check_same_fields(const BookingConfirmed& a, const BookingConfirmed& b) {
  CHECK(a.booking_id == b.booking_id);
  CHECK(a.slot_id == b.slot_id);
  CHECK(a.confirmed_at_ms == b.confirmed_at_ms);
  check_same_fields(a.idempotency, b.idempotency);
}
void check_same_fields(const BookingExpired& a, const BookingExpired& b) {
  CHECK(a.booking_id == b.booking_id);
  CHECK(a.slot_id == b.slot_id);
  CHECK(a.expired_at_ms == b.expired_at_ms);
}
void check_same_fields(const BookingCancelled& a, const BookingCancelled& b) {
  CHECK(a.booking_id == b.booking_id);
  CHECK(a.slot_id == b.slot_id);
  CHECK(a.cancelled_at_ms == b.cancelled_at_ms);
  check_same_fields(a.idempotency, b.idempotency);
}
void check_same_fields(const SlotClosed& a, const SlotClosed& b) {
  CHECK(a.slot_id == b.slot_id);
}
void check_same_fields(const WebhookRegistered& a, const WebhookRegistered& b) {
  CHECK(a.webhook_id == b.webhook_id);
  CHECK(a.url == b.url);
  CHECK(a.events == b.events);
  CHECK(a.clinic_id == b.clinic_id);
  CHECK(a.include_patient == b.include_patient);
  CHECK(a.secret == b.secret);
  CHECK(a.created_at_ms == b.created_at_ms);
}
void check_same_fields(const WebhookDeleted& a, const WebhookDeleted& b) {
  CHECK(a.webhook_id == b.webhook_id);
}
void check_same_fields(const BookingRescheduled& a, const BookingRescheduled& b) {
  CHECK(a.booking_id == b.booking_id);
  CHECK(a.from_slot_id == b.from_slot_id);
  CHECK(a.to_slot_id == b.to_slot_id);
  CHECK(a.status == b.status);
  CHECK(a.rescheduled_at_ms == b.rescheduled_at_ms);
  check_same_fields(a.idempotency, b.idempotency);
}
void check_same_fields(const WaitlistJoined& a, const WaitlistJoined& b) {
  CHECK(a.entry_id == b.entry_id);
  CHECK(a.doctor_id == b.doctor_id);
  CHECK(a.from_ms == b.from_ms);
  CHECK(a.to_ms == b.to_ms);
  CHECK(a.patient_name == b.patient_name);
  CHECK(a.client == b.client);
  CHECK(a.token == b.token);
  CHECK(a.offer_token == b.offer_token);
  CHECK(a.created_at_ms == b.created_at_ms);
}
void check_same_fields(const WaitlistLeft& a, const WaitlistLeft& b) {
  CHECK(a.entry_id == b.entry_id);
  CHECK(a.left_at_ms == b.left_at_ms);
}
void check_same_fields(const WaitlistOffered& a, const WaitlistOffered& b) {
  CHECK(a.entry_id == b.entry_id);
  CHECK(a.booking_id == b.booking_id);
  CHECK(a.slot_id == b.slot_id);
}

void check_same_record(const JournalRecord& expected, const JournalRecord& actual) {
  CHECK(actual.seq == expected.seq);
  CHECK(actual.at_ms == expected.at_ms);
  CHECK(actual.request_id == expected.request_id);
  CHECK(actual.actor == expected.actor);
  REQUIRE(actual.event.index() == expected.event.index());
  std::visit(
      [&](const auto& e) {
        check_same_fields(e, std::get<std::decay_t<decltype(e)>>(actual.event));
      },
      expected.event);
}

// Each alternative at ordinary values and at the edges of every field's range.
std::vector<JournalRecord> sample_records() {
  const std::string long_text(70'000, 'x');
  const std::string binary_text("nul\0byte \xc3\xa9\xff", 13);
  const KeyDigest key{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  const KeyDigest max_key{kMaxU64, kMaxU64};
  std::vector<Event> events = {
      ClinicAdded{1, "Clinic One", "Europe/Berlin"},
      ClinicAdded{kMaxU64, "", ""},
      ClinicAdded{0, long_text, binary_text},
      DoctorAdded{7, 1, "Dr Ada", "GP"},
      DoctorAdded{kMaxU64, kMaxU64, "", ""},
      DoctorAdded{3, 2, binary_text, long_text},
      SlotCreated{42, 7, kMonday2031Ms, kMonday2031Ms + 1'800'000},
      SlotCreated{kMaxU64, kMaxU64, kMinTime, kMaxTime},
      SlotCreated{1, 1, -1, 0},
      SlotHeld{9, 42, "Grace Hopper", 0x9999, token_of(0), kMonday2031Ms, kMonday2031Ms + 120'000},
      SlotHeld{kMaxU64, kMaxU64, "", 0, token_of(0xf0), kMinTime, kMaxTime},
      SlotHeld{1, 2, long_text, kMaxU64, Token{}, -123'456'789, kMaxTime - 1},
      SlotHeld{3, 4, "Ann", 0, token_of(7), 1, 2, IdempotencyKey{key, kMaxU64}},
      BookingConfirmed{9, 42, kMonday2031Ms + 5'000},
      BookingConfirmed{kMaxU64, kMaxU64, kMinTime},
      BookingConfirmed{5, 0, 6, IdempotencyKey{max_key, 1}},
      BookingExpired{9, 42, kMonday2031Ms + 120'000},
      BookingExpired{kMaxU64, 0, -1},
      BookingCancelled{9, 42, kMonday2031Ms + 60'000},
      BookingCancelled{0, kMaxU64, kMaxTime},
      BookingCancelled{1, 1, 2, IdempotencyKey{KeyDigest{0, 1}, 0}},
      SlotClosed{42},
      SlotClosed{kMaxU64},
      IdempotencyKeysForgotten{kMonday2031Ms},
      IdempotencyKeysForgotten{kMinTime},
      ClinicUpdated{1, "Renamed", "America/New_York"},
      ClinicUpdated{kMaxU64, "", long_text},
      WebhookRegistered{1, "https://clinic.example/hooks?x=1", 2, 0, false, secret_of(1), kMonday2031Ms},
      WebhookRegistered{kMaxU64, "", kMaxU64, kMaxU64, true, secret_of(0xff), kMinTime},
      WebhookRegistered{2, long_text, 63, 1, true, WebhookSecret{}, kMaxTime},
      WebhookDeleted{1},
      WebhookDeleted{kMaxU64},
      BookingRescheduled{9, 42, 43, BookingStatus::confirmed, kMonday2031Ms + 90'000},
      BookingRescheduled{kMaxU64, kMaxU64, 0, BookingStatus::pending, kMinTime,
                         IdempotencyKey{max_key, kMaxU64}},
      WaitlistJoined{1, 7, kMonday2031Ms, kMonday2031Ms + 86'400'000, "Wanda", 0x77,
                     token_of(1), token_of(2), kMonday2031Ms - 5'000},
      WaitlistJoined{kMaxU64, kMaxU64, kMinTime, kMaxTime, long_text, kMaxU64, Token{},
                     token_of(0xff), -1},
      WaitlistLeft{1, kMonday2031Ms},
      WaitlistLeft{kMaxU64, kMaxTime},
      WaitlistOffered{1, 10, 42},
      WaitlistOffered{kMaxU64, kMaxU64, kMaxU64},
  };
  const TimeMs times[] = {kMonday2031Ms, 0, -1, kMinTime, kMaxTime};
  const std::uint64_t request_ids[] = {0, 1, 300, kMaxU64};
  const Actor actors[] = {Actor::system, Actor::admin, Actor::patient};
  std::vector<JournalRecord> records;
  for (std::size_t i = 0; i < events.size(); ++i) {
    JournalRecord r;
    r.seq = i + 1;
    r.at_ms = times[i % std::size(times)];
    r.request_id = request_ids[i % std::size(request_ids)];
    r.actor = actors[i % std::size(actors)];
    r.event = events[i];
    records.push_back(std::move(r));
  }
  return records;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---- A realistic event stream made by a real Engine ----------------------------------

// Runs a seeded mix of admin and patient commands through an Engine and turns every
// event into a journal record, as the sequencer would.
class Workload {
 public:
  explicit Workload(std::uint64_t seed) : rng_(seed) {}

  // Runs commands until at least `min_events` records exist.
  void run_until(std::size_t min_events) {
    for (int d = 0; d < 6; ++d) add_doctor();
    for (Id d = 1; d <= doctor_count_; ++d) create_slots(d, 40);
    while (records_.size() < min_events) step();
  }

  const Engine& engine() const { return engine_; }
  const std::vector<JournalRecord>& records() const { return records_; }

 private:
  void step() {
    const auto roll = pick(100);
    if (roll < 41) {
      BookSlot book;
      book.slot_id = 1 + pick(engine_.slots().size());
      book.patient_name = "Patient " + std::to_string(pick(100'000));
      book.client = testing::client("client-" + std::to_string(pick(500)));
      if (pick(4) == 0) {
        // Idempotency-Keys from a small pool: some are carried out, some retried, all
        // forgotten after the TTL (the clock below runs for days).
        book.idempotency = {testing::key("k" + std::to_string(pick(50))), pick(3)};
      }
      for (auto& b : book.token) b = static_cast<std::uint8_t>(rng_());
      run(book, Actor::patient);
    } else if (roll < 43) {
      if (!engine_.bookings().empty()) {
        run(RescheduleBooking{1 + pick(engine_.bookings().size()), 1 + pick(engine_.slots().size())},
            Actor::patient);
      }
    } else if (roll < 45) {
      const Id doctor_id = 1 + pick(doctor_count_);
      const auto& waiting = engine_.waiting_for(doctor_id);
      if (pick(4) == 0 && !waiting.empty()) {
        run(LeaveWaitlist{waiting[pick(waiting.size())]}, Actor::patient);
      } else {
        // Half wait for the doctor's next slots, which do not exist yet: they are offered
        // when created (or the patient leaves first); the others mostly get a slot at once.
        JoinWaitlist join;
        join.doctor_id = doctor_id;
        join.from_ms = pick(2) ? next_start_ms_[doctor_id - 1]
                               : kMonday2031Ms + static_cast<TimeMs>(pick(40)) * 1'800'000;
        join.to_ms = join.from_ms + 4 * 1'800'000;
        join.patient_name = "Waiting " + std::to_string(pick(100'000));
        for (auto& b : join.token) b = static_cast<std::uint8_t>(rng_());
        for (auto& b : join.offer_token) b = static_cast<std::uint8_t>(rng_());
        run(join, Actor::patient);
      }
    } else if (roll < 65) {
      if (!engine_.bookings().empty()) {
        run(ConfirmBooking{1 + pick(engine_.bookings().size())}, Actor::patient);
      }
    } else if (roll < 72) {
      if (!engine_.bookings().empty()) {
        run(CancelBooking{1 + pick(engine_.bookings().size())}, Actor::patient);
      }
    } else if (roll < 75) {
      run(CloseSlot{1 + pick(engine_.slots().size())}, Actor::admin);
    } else if (roll < 88) {
      now_ms_ += static_cast<TimeMs>(pick(60'000)) + (pick(100) == 0 ? 86'400'000 : 0);
      run(ExpireDue{}, Actor::system);
    } else if (roll < 98) {
      create_slots(1 + pick(doctor_count_), 1 + pick(60));
    } else if (roll < 99) {
      const auto which = pick(4);
      if (which == 0) {
        run(AddClinic{"Clinic " + std::to_string(pick(1000)), "Europe/Berlin"}, Actor::admin);
      } else if (which == 1) {
        run(UpdateClinic{1 + pick(engine_.clinics().size()), "Renamed", "Asia/Tokyo"}, Actor::admin);
      } else if (which == 2 || engine_.webhooks().empty()) {
        RegisterWebhook hook{"https://hooks.example/" + std::to_string(pick(1000)),
                             static_cast<std::uint32_t>(1 + pick(63)),
                             pick(engine_.clinics().size() + 1), pick(2) == 0};
        for (auto& b : hook.secret) b = static_cast<std::uint8_t>(rng_());
        run(hook, Actor::admin);
      } else {
        run(DeleteWebhook{1 + pick(engine_.webhooks().size())}, Actor::admin);
      }
    } else {
      add_doctor();
    }
  }

  void add_doctor() {
    const Id clinic_id = 1 + pick(engine_.clinics().size());
    run(AddDoctor{clinic_id, "Dr " + std::to_string(doctor_count_ + 1), "GP"}, Actor::admin);
    ++doctor_count_;
    next_start_ms_.push_back(kMonday2031Ms);
  }

  void create_slots(Id doctor_id, std::size_t count) {
    CreateSlots create{doctor_id, {}};
    TimeMs& start = next_start_ms_[doctor_id - 1];
    for (std::size_t i = 0; i < count; ++i) {
      create.spans.push_back({start, start + 1'800'000});
      start += 1'800'000;
    }
    run(create, Actor::admin);
  }

  void run(const Command& command, Actor actor) {
    ++request_id_;
    events_.clear();
    const Rejection rejection = engine_.execute(command, now_ms_, events_);
    if (rejection != Rejection::none) return;
    for (Event& event : events_) {
      JournalRecord record;
      record.seq = records_.size() + 1;
      record.at_ms = now_ms_;
      record.request_id = actor == Actor::system ? 0 : request_id_;
      record.actor = actor;
      record.event = std::move(event);
      records_.push_back(std::move(record));
    }
  }

  std::uint64_t pick(std::uint64_t n) { return n == 0 ? 0 : rng_() % n; }

  std::mt19937_64 rng_;
  Engine engine_;
  TimeMs now_ms_ = kMonday2031Ms - 86'400'000;
  std::uint64_t request_id_ = 0;
  Id doctor_count_ = 0;
  std::vector<TimeMs> next_start_ms_;
  std::vector<Event> events_;
  std::vector<JournalRecord> records_;
};

// ---- Codec ---------------------------------------------------------------------------

TEST_CASE("the samples cover every Event alternative") {
  std::vector<bool> seen(std::variant_size_v<Event>, false);
  for (const JournalRecord& r : sample_records()) seen[r.event.index()] = true;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    INFO("event type " << i);
    CHECK(seen[i]);
  }
}

TEST_CASE("every event alternative round-trips through encode and decode field by field") {
  for (const JournalRecord& original : sample_records()) {
    const std::string bytes = encoded(original);
    CHECK(static_cast<std::uint8_t>(bytes[0]) == kJournalFormatVersion);
    CHECK(static_cast<std::size_t>(bytes[1]) == original.event.index());

    JournalRecord decoded;
    decoded.event = SlotClosed{999};  // stale contents must be replaced
    const JournalStatus status = decode_record(original.seq, bytes, decoded);
    INFO("seq " << original.seq << ": " << status.message);
    REQUIRE(status.ok);
    check_same_record(original, decoded);
    CHECK(encoded(decoded) == bytes);
  }
}

TEST_CASE("the encoding matches the documented bytes of journal/README.md") {
  JournalRecord closed;
  closed.event = SlotClosed{5};
  CHECK(encoded(closed) == std::string("\x02\x07\x00\x00\x00\x05", 6));

  // at_ms 1 → zigzag 02; request_id 128 → 80 01; admin → 01; booking 300 → ac 02; slot 7
  // → 07; confirmed_at -1 → zigzag 01; no Idempotency-Key → 00.
  JournalRecord confirmed;
  confirmed.at_ms = 1;
  confirmed.request_id = 128;
  confirmed.actor = Actor::admin;
  confirmed.event = BookingConfirmed{300, 7, -1};
  CHECK(encoded(confirmed) == std::string("\x02\x04\x02\x80\x01\x01\xac\x02\x07\x01\x00", 11));
  // With a key: 01, then hi and lo (little-endian 8 bytes each), then the request hash.
  confirmed.event = BookingConfirmed{300, 7, -1, IdempotencyKey{KeyDigest{1, 2}, 3}};
  CHECK(encoded(confirmed) ==
        std::string("\x02\x04\x02\x80\x01\x01\xac\x02\x07\x01\x01", 11) +
            std::string("\x01\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0\x03\0\0\0\0\0\0\0", 24));
}

TEST_CASE("records of format 1 still decode, as the events they meant") {
  JournalRecord decoded;
  // SlotClosed{5}, the README's format-1 example.
  REQUIRE(decode_record(1, std::string("\x01\x07\x00\x00\x00\x05", 6), decoded).ok);
  CHECK(std::get<SlotClosed>(decoded.event).slot_id == 5);
  // ClinicAdded{2, "N"}: no time zone then, so UTC.
  REQUIRE(decode_record(2, std::string("\x01\x00\x00\x00\x01\x02\x01N", 8), decoded).ok);
  CHECK(std::get<ClinicAdded>(decoded.event).time_zone == "UTC");
  CHECK(std::get<ClinicAdded>(decoded.event).name == "N");
  // BookingConfirmed{300, -1, key "k", request_hash 3}: no slot (0), the key becomes the
  // digest of "k" in the empty scope (format 1 keys were global).
  REQUIRE(decode_record(3, std::string("\x01\x04\x02\x80\x01\x01\xac\x02\x01\x01k\x03", 12), decoded).ok);
  const auto& c = std::get<BookingConfirmed>(decoded.event);
  CHECK(c.booking_id == 300);
  CHECK(c.slot_id == 0);
  CHECK(c.confirmed_at_ms == -1);
  CHECK(c.idempotency.key == key_digest("", "k"));
  CHECK(c.idempotency.request_hash == 3);
  // SlotHeld{1, 2, "Al", client "ip:1.2.3.4", token, 10, 20, no key}.
  std::string held("\x01\x03\x00\x00\x02\x01\x02\x02" "Al" "\x0a" "ip:1.2.3.4", 21);
  held += std::string(16, '\x07');
  held += std::string("\x14\x28\x00\x00", 4);
  REQUIRE(decode_record(4, held, decoded).ok);
  const auto& h = std::get<SlotHeld>(decoded.event);
  CHECK(h.patient_name == "Al");
  CHECK(h.client == client_digest("ip:1.2.3.4"));
  CHECK(h.created_at_ms == 10);
  CHECK(h.expires_at_ms == 20);
  CHECK(h.idempotency.key.empty());
  // Format 1 knew only the first eight event types.
  CHECK_FALSE(decode_record(5, std::string("\x01\x08\x00\x00\x00\x02", 6), decoded).ok);
}

TEST_CASE("a present Idempotency-Key must be flagged 1 and not all zero") {
  JournalRecord confirmed;
  confirmed.event = BookingConfirmed{1, 1, 1, IdempotencyKey{KeyDigest{1, 2}, 3}};
  std::string bytes = encoded(confirmed);
  JournalRecord decoded;
  REQUIRE(decode_record(1, bytes, decoded).ok);
  const std::size_t flag = bytes.size() - 25;
  REQUIRE(bytes[flag] == '\x01');
  bytes[flag] = '\x02';
  CHECK_FALSE(decode_record(1, bytes, decoded).ok);
  confirmed.event = BookingConfirmed{1, 1, 1, IdempotencyKey{KeyDigest{1, 2}, 3}};
  bytes = encoded(confirmed);
  for (std::size_t i = flag + 1; i < flag + 17; ++i) bytes[i] = '\0';
  CHECK_FALSE(decode_record(1, bytes, decoded).ok);
}

TEST_CASE("decode takes the seq from its argument, not from the value bytes") {
  JournalRecord original = sample_records().front();
  JournalRecord decoded;
  REQUIRE(decode_record(kMaxU64, encoded(original), decoded).ok);
  CHECK(decoded.seq == kMaxU64);
}

TEST_CASE("decode rejects a record truncated at every prefix length, naming the seq") {
  for (const JournalRecord& original : sample_records()) {
    const std::string bytes = encoded(original);
    // Long strings would make this quadratic; their prefixes add nothing new past the header.
    const std::size_t lengths = std::min<std::size_t>(bytes.size(), 400);
    for (std::size_t length = 0; length < lengths; ++length) {
      JournalRecord decoded;
      const JournalStatus status =
          decode_record(42, std::string_view(bytes).substr(0, length), decoded);
      INFO("record " << original.seq << " cut at " << length << " of " << bytes.size());
      REQUIRE_FALSE(status.ok);
      CHECK(contains(status.message, "journal record seq 42:"));
    }
    // And the cut just before the end of a long record.
    JournalRecord decoded;
    CHECK_FALSE(decode_record(42, std::string_view(bytes).substr(0, bytes.size() - 1), decoded).ok);
  }
}

TEST_CASE("decode rejects trailing bytes after a valid record") {
  for (const JournalRecord& original : sample_records()) {
    for (const std::string& garbage : {std::string(1, '\0'), std::string("xyz")}) {
      JournalRecord decoded;
      const JournalStatus status = decode_record(42, encoded(original) + garbage, decoded);
      REQUIRE_FALSE(status.ok);
      CHECK(contains(status.message, "journal record seq 42:"));
      CHECK(contains(status.message, "trailing " + std::to_string(garbage.size()) + " bytes"));
    }
  }
}

TEST_CASE("decode rejects an unknown format version, naming the seq and the version") {
  std::string bytes = encoded(sample_records().front());
  bytes[0] = 7;
  JournalRecord decoded;
  const JournalStatus status = decode_record(42, bytes, decoded);
  REQUIRE_FALSE(status.ok);
  CHECK(status.message == "journal record seq 42: unknown format version 7");
  bytes[0] = 0;
  CHECK_FALSE(decode_record(42, bytes, decoded).ok);
}

TEST_CASE("decode rejects an unknown event type, naming the seq and the type") {
  for (const int type : {static_cast<int>(std::variant_size_v<Event>), 200, 255}) {
    std::string bytes = encoded(sample_records().front());
    bytes[1] = static_cast<char>(type);
    JournalRecord decoded;
    const JournalStatus status = decode_record(43, bytes, decoded);
    REQUIRE_FALSE(status.ok);
    CHECK(status.message == "journal record seq 43: unknown event type " + std::to_string(type) +
                                " in format 2");
  }
}

TEST_CASE("decode rejects a moved booking whose status is neither PENDING nor CONFIRMED") {
  JournalRecord record;
  record.event = BookingRescheduled{1, 2, 3, BookingStatus::confirmed, 0};
  std::string bytes = encoded(record);
  // version, type, at_ms, request_id, actor, booking_id, from, to, then the status byte.
  REQUIRE(bytes[8] == 1);
  bytes[8] = 2;
  JournalRecord decoded;
  const JournalStatus status = decode_record(7, bytes, decoded);
  REQUIRE_FALSE(status.ok);
  CHECK(status.message.find("journal record seq 7: BookingRescheduled") == 0);
  CHECK(status.message.find("status") != std::string::npos);
}

TEST_CASE("decode rejects an actor outside the Actor enum") {
  JournalRecord record;
  record.event = SlotClosed{5};
  std::string bytes = encoded(record);  // version, type, at_ms 0, request_id 0, actor, slot_id
  REQUIRE(bytes.size() == 6);
  JournalRecord decoded;
  bytes[4] = 2;
  CHECK(decode_record(44, bytes, decoded).ok);
  CHECK(decoded.actor == Actor::patient);
  bytes[4] = 3;
  const JournalStatus status = decode_record(44, bytes, decoded);
  REQUIRE_FALSE(status.ok);
  CHECK(contains(status.message, "journal record seq 44:"));
  CHECK(contains(status.message, "actor 3 out of range"));
}

TEST_CASE("decode rejects overlong and overflowing varints so every record has one encoding") {
  // SlotClosed with system metadata: 02 07 00 00 00 <slot_id varint>.
  const std::string header("\x02\x07\x00\x00\x00", 5);
  JournalRecord decoded;
  CHECK(decode_record(1, header + std::string("\x05", 1), decoded).ok);
  CHECK(std::get<SlotClosed>(decoded.event).slot_id == 5);
  // 5 written in two bytes.
  CHECK_FALSE(decode_record(1, header + std::string("\x85\x00", 2), decoded).ok);
  // The largest id in ten bytes is fine, one more bit is not.
  const std::string max_id = std::string(9, '\xff') + std::string("\x01", 1);
  REQUIRE(decode_record(1, header + max_id, decoded).ok);
  CHECK(std::get<SlotClosed>(decoded.event).slot_id == kMaxU64);
  const JournalStatus overflow =
      decode_record(1, header + std::string(9, '\xff') + "\x02", decoded);
  REQUIRE_FALSE(overflow.ok);
  CHECK(contains(overflow.message, "overflows"));
  CHECK_FALSE(decode_record(1, header + std::string(11, '\xff'), decoded).ok);
}

TEST_CASE("a webhook's include_patient flag must be 0 or 1 and its secret is 32 bytes") {
  JournalRecord record;
  record.event = WebhookRegistered{3, "u", 2, 0, true, secret_of(9), 0};
  // 02 0a 00 00 00 | id 03 | url 01 'u' | events 02 | clinic 00 | flag 01 | 32 secret bytes | 00
  std::string bytes = encoded(record);
  REQUIRE(bytes.size() == 5 + 1 + 2 + 1 + 1 + 1 + 32 + 1);
  CHECK(static_cast<std::uint8_t>(bytes[1]) == 10);
  CHECK(bytes[10] == 1);
  CHECK(bytes.substr(11, 32) ==
        std::string(reinterpret_cast<const char*>(secret_of(9).data()), 32));
  JournalRecord decoded;
  bytes[10] = 2;
  const JournalStatus status = decode_record(46, bytes, decoded);
  REQUIRE_FALSE(status.ok);
  CHECK(contains(status.message, "journal record seq 46: WebhookRegistered flag byte is not 0 or 1"));
  CHECK(contains(status.message, "include_patient"));
  bytes[10] = 0;
  REQUIRE(decode_record(46, bytes, decoded).ok);
  CHECK_FALSE(std::get<WebhookRegistered>(decoded.event).include_patient);
  // WebhookDeleted{5} by the admin: 02 0b 00 00 01 05.
  JournalRecord deleted;
  deleted.actor = Actor::admin;
  deleted.event = WebhookDeleted{5};
  CHECK(encoded(deleted) == std::string("\x02\x0b\x00\x00\x01\x05", 6));
}

TEST_CASE("decode rejects a string length larger than the bytes left") {
  // ClinicAdded: 02 00 00 00 00 <clinic_id 1> <name length 200> "ab".
  const std::string bytes(
      "\x02\x00\x00\x00\x00\x01\xc8\x01"
      "ab",
      10);
  JournalRecord decoded;
  const JournalStatus status = decode_record(45, bytes, decoded);
  REQUIRE_FALSE(status.ok);
  CHECK(contains(status.message, "journal record seq 45:"));
  CHECK(contains(status.message, "string length 200"));
}

TEST_CASE(
    "100k random byte strings never crash decode, format-2 input re-encodes identically, format-1 input to a fixed point") {
  std::mt19937_64 rng(20310106);
  const std::vector<JournalRecord> samples = sample_records();
  std::vector<std::string> valid;
  for (const JournalRecord& r : samples) {
    if (encoded(r).size() < 1000) valid.push_back(encoded(r));
  }
  std::size_t decoded_ok = 0;
  JournalRecord decoded;
  for (int i = 0; i < 100'000; ++i) {
    std::string bytes;
    switch (i % 3) {
      case 0: {  // pure noise
        bytes.resize(rng() % 64);
        for (char& c : bytes) c = static_cast<char>(rng());
        break;
      }
      case 1: {  // a plausible header followed by noise, to reach the field decoders
        bytes.resize(2 + rng() % 64);
        for (char& c : bytes) c = static_cast<char>(rng());
        bytes[0] = static_cast<char>(kJournalFormatVersion);
        bytes[1] = static_cast<char>(rng() % std::variant_size_v<Event>);
        break;
      }
      default: {  // a valid record with a few bytes flipped, cut or extended
        bytes = valid[rng() % valid.size()];
        for (int flips = 1 + static_cast<int>(rng() % 3); flips > 0; --flips) {
          bytes[rng() % bytes.size()] = static_cast<char>(rng());
        }
        if (rng() % 4 == 0) bytes.resize(rng() % (bytes.size() + 8));
        break;
      }
    }
    const std::uint64_t seq = rng();
    const JournalStatus status = decode_record(seq, bytes, decoded);
    if (status.ok) {
      ++decoded_ok;
      if (bytes[0] == static_cast<char>(kJournalFormatVersion)) {
        REQUIRE(encoded(decoded) == bytes);
      } else {
        // A format-1 record is re-encoded as format 2, which must then be a fixed point.
        JournalRecord again;
        REQUIRE(decode_record(seq, encoded(decoded), again).ok);
        REQUIRE(encoded(again) == encoded(decoded));
      }
    } else {
      REQUIRE(contains(status.message, "journal record seq " + std::to_string(seq) + ":"));
    }
  }
  MESSAGE(decoded_ok << " of 100000 random inputs happened to be valid records");
}

TEST_CASE("keys are 8-byte big-endian and round-trip") {
  CHECK(encode_key(0x0102030405060708) == std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  CHECK(encode_key(255) == std::string("\0\0\0\0\0\0\0\xff", 8));
  CHECK(encode_key(256) == std::string("\0\0\0\0\0\0\x01\0", 8));
  for (const std::uint64_t seq :
       {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{65536}, kMaxU64}) {
    std::uint64_t back = 0;
    REQUIRE(decode_key(encode_key(seq), back));
    CHECK(back == seq);
  }
  std::uint64_t ignored = 0;
  CHECK_FALSE(decode_key(std::string(7, '\0'), ignored));
  CHECK_FALSE(decode_key(std::string(9, '\0'), ignored));
}

// ---- The store ---------------------------------------------------------------------

TEST_CASE("keys sort numerically in RocksDB iteration order") {
  TempDir dir;
  const std::vector<std::uint64_t> seqs = {65536, 256, 1, kMaxU64, 255, 4294967296, 65535, 2};
  {
    slotd::testing::RawDb db(dir.str());
    for (const std::uint64_t seq : seqs) REQUIRE(db->Put({}, encode_key(seq), "v").ok());
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}));
    std::vector<std::uint64_t> order;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::uint64_t seq = 0;
      REQUIRE(decode_key(it->key().ToStringView(), seq));
      order.push_back(seq);
    }
    REQUIRE(it->status().ok());
    std::vector<std::uint64_t> sorted = seqs;
    std::sort(sorted.begin(), sorted.end());
    CHECK(order == sorted);
  }
}

TEST_CASE("the journal reads back across the 255/256 and 65535/65536 byte boundaries in order") {
  TempDir dir;
  auto journal = open_journal(dir.str());
  const auto records = closed_slot_records(1, 65'600);
  REQUIRE(journal->append(records).ok);
  for (const std::uint64_t from : {std::uint64_t{250}, std::uint64_t{65'530}}) {
    const auto window = read_all(*journal, from, 10);
    REQUIRE(window.size() == 10);
    for (std::size_t i = 0; i < window.size(); ++i) {
      CHECK(window[i].seq == from + i);
      CHECK(std::get<SlotClosed>(window[i].event).slot_id == from + i);
    }
  }
}

TEST_CASE("an empty journal has last_seq 0 and reads nothing") {
  TempDir dir;
  auto journal = open_journal(dir.str());
  CHECK(journal->last_seq() == 0);
  CHECK(read_all(*journal).empty());
  CHECK(journal->append({}).ok);
  CHECK(journal->last_seq() == 0);
}

TEST_CASE("open creates missing parent directories") {
  TempDir root;
  const fs::path nested = root.path() / "a" / "b" / "c" / "journal";
  REQUIRE_FALSE(fs::exists(root.path() / "a"));
  {
    auto journal = open_journal(nested.string());
    REQUIRE(journal->append(closed_slot_records(1, 3)).ok);
  }
  CHECK(fs::is_directory(nested));
  auto reopened = open_journal(nested.string());
  CHECK(reopened->last_seq() == 3);
}

TEST_CASE("open fails with a message when the directory cannot be created") {
  TempDir root;
  const fs::path file = root.path() / "not-a-directory";
  { std::ofstream(file.string()) << "x"; }
  std::unique_ptr<Journal> journal;
  const JournalStatus status = Journal::open((file / "journal").string(), journal);
  CHECK_FALSE(status.ok);
  CHECK(contains(status.message, "not-a-directory"));
  CHECK(journal == nullptr);
}

TEST_CASE(
    "append rejects a batch that does not continue at last_seq+1 or has a gap, and writes "
    "nothing") {
  TempDir dir;
  {
    auto journal = open_journal(dir.str());
    CHECK_FALSE(journal->append(closed_slot_records(0, 2)).ok);  // seqs start at 1
    CHECK_FALSE(journal->append(closed_slot_records(2, 2)).ok);  // 1 is missing
    CHECK(journal->last_seq() == 0);

    REQUIRE(journal->append(closed_slot_records(1, 3)).ok);
    CHECK(journal->last_seq() == 3);

    const JournalStatus skipped = journal->append(closed_slot_records(5, 2));
    CHECK_FALSE(skipped.ok);
    CHECK(contains(skipped.message, "seq 5, expected 4"));

    CHECK_FALSE(journal->append(closed_slot_records(3, 2)).ok);  // 3 again

    auto with_gap = closed_slot_records(4, 3);
    with_gap[2].seq = 7;  // 4, 5, 7
    const JournalStatus gap = journal->append(with_gap);
    CHECK_FALSE(gap.ok);
    CHECK(contains(gap.message, "seq 7, expected 6"));

    auto bad_actor = closed_slot_records(4, 1);
    bad_actor[0].actor = static_cast<Actor>(9);
    CHECK_FALSE(journal->append(bad_actor).ok);

    CHECK(journal->last_seq() == 3);
    CHECK(read_all(*journal).size() == 3);
    // The journal still accepts the right continuation after the refusals.
    REQUIRE(journal->append(closed_slot_records(4, 1)).ok);
  }
  auto reopened = open_journal(dir.str());
  CHECK(reopened->last_seq() == 4);
  const auto all = read_all(*reopened);
  REQUIRE(all.size() == 4);
  CHECK(all.back().seq == 4);
}

TEST_CASE("append_parts writes consecutive spans as one batch and refuses a gap between spans, writing nothing") {
  TempDir dir;
  {
    auto journal = open_journal(dir.str());
    const auto first = closed_slot_records(1, 3);
    const auto second = closed_slot_records(4, 2);
    const auto after_gap = closed_slot_records(7, 1);  // 6 is missing
    const std::span<const JournalRecord> with_gap[] = {first, second, after_gap};
    const JournalStatus gap = journal->append_parts(with_gap);
    CHECK_FALSE(gap.ok);
    CHECK(contains(gap.message, "seq 7, expected 6"));
    CHECK(journal->last_seq() == 0);
    CHECK(read_all(*journal).empty());

    const std::span<const JournalRecord> empty;
    const std::span<const JournalRecord> parts[] = {first, empty, second};
    REQUIRE(journal->append_parts(parts).ok);
    CHECK(journal->last_seq() == 5);
  }
  auto reopened = open_journal(dir.str());
  const auto all = read_all(*reopened);
  REQUIRE(all.size() == 5);
  for (std::size_t i = 0; i < all.size(); ++i) {
    CHECK(all[i].seq == i + 1);
    CHECK(std::get<SlotClosed>(all[i].event).slot_id == i + 1);
  }
}

TEST_CASE("read returns exactly the requested window") {
  TempDir dir;
  auto journal = open_journal(dir.str());
  REQUIRE(journal->append(closed_slot_records(1, 60)).ok);
  REQUIRE(journal->append(closed_slot_records(61, 40)).ok);
  REQUIRE(journal->last_seq() == 100);

  const auto seqs_of = [](const std::vector<JournalRecord>& records) {
    std::vector<std::uint64_t> seqs;
    for (const auto& r : records) seqs.push_back(r.seq);
    return seqs;
  };
  const auto range = [](std::uint64_t first, std::uint64_t last) {
    std::vector<std::uint64_t> seqs;
    for (std::uint64_t s = first; s <= last; ++s) seqs.push_back(s);
    return seqs;
  };
  CHECK(seqs_of(read_all(*journal, 10, 5)) == range(10, 14));
  CHECK(seqs_of(read_all(*journal, 1, 0)) == range(1, 100));
  CHECK(seqs_of(read_all(*journal, 0, 3)) == range(1, 3));  // seq 0 does not exist
  CHECK(seqs_of(read_all(*journal, 95, 0)) == range(95, 100));
  CHECK(seqs_of(read_all(*journal, 98, 10)) == range(98, 100));
  CHECK(seqs_of(read_all(*journal, 100, 1)) == range(100, 100));
  CHECK(read_all(*journal, 101, 0).empty());
  CHECK(read_all(*journal, kMaxU64, 0).empty());

  std::vector<std::uint64_t> stopped;
  const JournalStatus status = journal->read(20, 0, [&](const JournalRecord& r) {
    stopped.push_back(r.seq);
    return stopped.size() < 2;
  });
  CHECK(status.ok);
  CHECK(stopped == range(20, 21));
}

TEST_CASE("20,000 engine events survive close and reopen, and replay rebuilds the same state") {
  Workload workload(7);
  workload.run_until(20'000);
  const Engine& source = workload.engine();
  REQUIRE(!source.broken_invariant());
  const std::vector<JournalRecord>& records = workload.records();
  REQUIRE(records.size() >= 20'000);
  std::vector<std::size_t> per_type(std::variant_size_v<Event>, 0);
  for (const JournalRecord& r : records) ++per_type[r.event.index()];
  for (std::size_t type = 0; type < per_type.size(); ++type) {
    INFO("event type " << type << " must occur in the workload");
    CHECK(per_type[type] > 0);
  }

  TempDir dir;
  std::mt19937_64 rng(99);
  {
    auto journal = open_journal(dir.str());
    std::span<const JournalRecord> rest(records);
    std::size_t batches = 0;
    while (!rest.empty()) {
      // Batch sizes from 1 to 700, like a sequencer under varying load.
      const std::size_t size = std::min<std::size_t>(rest.size(), 1 + rng() % 700);
      const JournalStatus status = journal->append(rest.first(size));
      INFO(status.message);
      REQUIRE(status.ok);
      rest = rest.subspan(size);
      ++batches;
    }
    CHECK(journal->last_seq() == records.size());
    MESSAGE(records.size() << " records in " << batches << " batches");
  }

  auto reopened = open_journal(dir.str());
  CHECK(reopened->last_seq() == records.size());

  Engine replayed;
  std::size_t count = 0;
  bool same_bytes = true;
  const JournalStatus status = reopened->read(1, 0, [&](const JournalRecord& r) {
    same_bytes = same_bytes && r.seq == records[count].seq && encoded(r) == encoded(records[count]);
    replayed.apply(r.event);
    ++count;
    return true;
  });
  INFO(status.message);
  REQUIRE(status.ok);
  CHECK(count == records.size());
  CHECK(same_bytes);
  CHECK(replayed.state_hash() == source.state_hash());
  CHECK(!replayed.broken_invariant());
  CHECK(replayed.bookings().size() == source.bookings().size());
  CHECK(replayed.slots().size() == source.slots().size());
}

TEST_CASE("a corrupt record makes read fail with a message naming its seq") {
  TempDir dir;
  {
    auto journal = open_journal(dir.str());
    REQUIRE(journal->append(closed_slot_records(1, 50)).ok);
  }
  {
    slotd::testing::RawDb db(dir.str());
    REQUIRE(db->Put({}, encode_key(17), std::string("\x01\x63garbage", 9)).ok());
  }
  auto journal = open_journal(dir.str());
  CHECK(journal->last_seq() == 50);
  std::vector<std::uint64_t> visited;
  const JournalStatus status = journal->read(1, 0, [&](const JournalRecord& r) {
    visited.push_back(r.seq);
    return true;
  });
  CHECK_FALSE(status.ok);
  CHECK(contains(status.message, "journal record seq 17:"));
  CHECK(visited.size() == 16);
  CHECK(read_all(*journal, 18, 0).size() == 33);  // the records after it still read
}

TEST_CASE("a deleted middle record is reported as a gap naming the missing seq") {
  TempDir dir;
  {
    auto journal = open_journal(dir.str());
    REQUIRE(journal->append(closed_slot_records(1, 50)).ok);
  }
  {
    slotd::testing::RawDb db(dir.str());
    REQUIRE(db->Delete({}, encode_key(23)).ok());
  }
  auto journal = open_journal(dir.str());
  CHECK(journal->last_seq() == 50);
  const JournalStatus from_start = journal->read(1, 0, [](const JournalRecord&) { return true; });
  CHECK_FALSE(from_start.ok);
  CHECK(contains(from_start.message, "seq 23 is missing"));
  // Starting exactly at the hole is a gap too.
  const JournalStatus at_hole = journal->read(23, 5, [](const JournalRecord&) { return true; });
  CHECK_FALSE(at_hole.ok);
  CHECK(contains(at_hole.message, "seq 23 is missing"));
  // A window that ends before the hole is fine.
  CHECK(read_all(*journal, 1, 22).size() == 22);
}

TEST_CASE("a key that is not 8 bytes is reported as a bad key") {
  TempDir dir;
  {
    auto journal = open_journal(dir.str());
    REQUIRE(journal->append(closed_slot_records(1, 10)).ok);
  }
  {
    slotd::testing::RawDb db(dir.str());
    // Sorts between seq 4 and seq 5.
    REQUIRE(db->Put({}, encode_key(4) + "x", "v").ok());
  }
  auto journal = open_journal(dir.str());
  const JournalStatus status = journal->read(1, 0, [](const JournalRecord&) { return true; });
  CHECK_FALSE(status.ok);
  CHECK(contains(status.message, "bad key of 9 bytes where seq 5 was expected"));
}

}  // namespace

// ---- Consumer cursors ------------------------------------------------------------------

TEST_CASE("a consumer cursor that was put survives close and reopen, an unknown consumer has none") {
  TempDir dir;
  {
    auto journal = open_journal(dir.str());
    std::optional<JournalCursor> none;
    REQUIRE(journal->get_cursor(1, none).ok);
    CHECK_FALSE(none.has_value());
    REQUIRE(journal->append(closed_slot_records(1, 10)).ok);
    REQUIRE(journal->put_cursor(1, JournalCursor{7, false}).ok);
    REQUIRE(journal->put_cursor(kMaxU64, JournalCursor{kMaxU64, true}).ok);
    REQUIRE(journal->put_cursor(1, JournalCursor{9, false}).ok);  // the newest wins
  }
  auto journal = open_journal(dir.str());
  std::optional<JournalCursor> first, last, unknown;
  REQUIRE(journal->get_cursor(1, first).ok);
  REQUIRE(journal->get_cursor(kMaxU64, last).ok);
  REQUIRE(journal->get_cursor(2, unknown).ok);
  REQUIRE(first.has_value());
  CHECK(first->next_seq == 9);
  CHECK_FALSE(first->stopped);
  REQUIRE(last.has_value());
  CHECK(last->next_seq == kMaxU64);
  CHECK(last->stopped);
  CHECK_FALSE(unknown.has_value());
  // The records are untouched: the cursors live in their own column family.
  CHECK(journal->last_seq() == 10);
  CHECK(read_all(*journal).size() == 10);
  REQUIRE(journal->append(closed_slot_records(11, 5)).ok);
  CHECK(read_all(*journal, 9).size() == 7);
}

TEST_CASE("a deleted consumer cursor is gone, also after reopening") {
  TempDir dir;
  {
    auto journal = open_journal(dir.str());
    REQUIRE(journal->put_cursor(3, JournalCursor{4, true}).ok);
    REQUIRE(journal->delete_cursor(3).ok);
    REQUIRE(journal->delete_cursor(99).ok);  // deleting what is not there is not an error
  }
  auto journal = open_journal(dir.str());
  std::optional<JournalCursor> cursor;
  REQUIRE(journal->get_cursor(3, cursor).ok);
  CHECK_FALSE(cursor.has_value());
}

TEST_CASE("a journal that never had a consumer has no cursors column family until the first put") {
  TempDir dir;
  {
    auto journal = open_journal(dir.str());
    REQUIRE(journal->append(closed_slot_records(1, 3)).ok);
    std::optional<JournalCursor> cursor;
    REQUIRE(journal->get_cursor(1, cursor).ok);
  }
  std::vector<std::string> families;
  REQUIRE(rocksdb::DB::ListColumnFamilies(rocksdb::Options(), dir.str(), &families).ok());
  CHECK(families == std::vector<std::string>{"default", "entities"});
  {
    auto journal = open_journal(dir.str());
    REQUIRE(journal->put_cursor(1, JournalCursor{2, false}).ok);
  }
  REQUIRE(rocksdb::DB::ListColumnFamilies(rocksdb::Options(), dir.str(), &families).ok());
  CHECK(families == std::vector<std::string>{"default", "entities", "cursors"});
}

namespace {

// Which records name the entity, by scanning everything (the slow truth the index must match).
std::vector<std::uint64_t> naming(const std::vector<JournalRecord>& records, EntityKind kind, Id id) {
  std::vector<std::uint64_t> seqs;
  for (const JournalRecord& r : records) {
    EntityRefs refs;
    const std::size_t n = entities_of(r.event, refs);
    for (std::size_t i = 0; i < n; ++i) {
      if (refs[i].kind == kind && refs[i].id == id) seqs.push_back(r.seq);
    }
  }
  return seqs;
}

std::vector<std::uint64_t> history_seqs(const Journal& journal, EntityKind kind, Id id,
                                        std::uint64_t from = 1, std::uint64_t up_to = ~0ULL,
                                        std::uint64_t limit = 0) {
  std::vector<std::uint64_t> seqs;
  const JournalStatus st = journal.history(kind, id, from, up_to, limit, [&](const JournalRecord& r) {
    seqs.push_back(r.seq);
    return true;
  });
  INFO(st.message);
  REQUIRE(st.ok);
  return seqs;
}

void check_index(const Journal& journal, const std::vector<JournalRecord>& records, const Engine& engine) {
  for (Id b = 1; b <= engine.bookings().size(); b += 7) {
    INFO("booking " << b);
    CHECK(history_seqs(journal, EntityKind::booking, b) == naming(records, EntityKind::booking, b));
  }
  for (Id s = 1; s <= engine.slots().size(); s += 5) {
    INFO("slot " << s);
    CHECK(history_seqs(journal, EntityKind::slot, s) == naming(records, EntityKind::slot, s));
  }
}

}  // namespace

TEST_CASE("the entity index lists every record of a booking or a slot in seq order, within the asked window") {
  Workload workload(11);
  workload.run_until(5'000);
  const std::vector<JournalRecord>& records = workload.records();
  TempDir dir;
  auto journal = open_journal(dir.str());
  std::span<const JournalRecord> rest(records);
  while (!rest.empty()) {
    const std::size_t size = std::min<std::size_t>(rest.size(), 97);
    REQUIRE(journal->append(rest.first(size)).ok);
    rest = rest.subspan(size);
  }
  check_index(*journal, records, workload.engine());
  // A slot with many events: the window and the limit cut it exactly.
  Id busiest = 1;
  for (Id s = 1; s <= workload.engine().slots().size(); ++s) {
    if (naming(records, EntityKind::slot, s).size() > naming(records, EntityKind::slot, busiest).size()) busiest = s;
  }
  const std::vector<std::uint64_t> all = naming(records, EntityKind::slot, busiest);
  REQUIRE(all.size() >= 4);
  CHECK(history_seqs(*journal, EntityKind::slot, busiest, all[1], all[2]) ==
        std::vector<std::uint64_t>{all[1], all[2]});
  CHECK(history_seqs(*journal, EntityKind::slot, busiest, 1, ~0ULL, 3) ==
        std::vector<std::uint64_t>(all.begin(), all.begin() + 3));
  CHECK(history_seqs(*journal, EntityKind::booking, workload.engine().bookings().size() + 1).empty());
}

TEST_CASE("a move is in the history of its booking and of both its slots, a waitlist offer in its booking's") {
  std::vector<JournalRecord> records;
  auto add = [&](Event e) {
    JournalRecord r;
    r.seq = records.size() + 1;
    r.event = std::move(e);
    records.push_back(std::move(r));
  };
  add(DoctorAdded{1, 1, "Dr. A", "GP"});
  for (Id s = 1; s <= 3; ++s) add(SlotCreated{s, 1, kMonday2031Ms + static_cast<TimeMs>(s) * 1'800'000, kMonday2031Ms + static_cast<TimeMs>(s + 1) * 1'800'000});
  add(SlotHeld{1, 1, "Ann", 0, token_of(1), kMonday2031Ms, kMonday2031Ms + 60'000});      // 5
  add(BookingRescheduled{1, 1, 2, BookingStatus::pending, kMonday2031Ms});               // 6
  add(WaitlistJoined{1, 1, kMonday2031Ms, kMonday2031Ms + 86'400'000, "Wes", 0, token_of(2), token_of(3), kMonday2031Ms});
  add(SlotHeld{2, 1, "Wes", 0, token_of(3), kMonday2031Ms, kMonday2031Ms + 60'000});      // 8
  add(WaitlistOffered{1, 2, 1});                                                         // 9
  TempDir dir;
  auto journal = open_journal(dir.str());
  REQUIRE(journal->append(records).ok);
  CHECK(history_seqs(*journal, EntityKind::booking, 1) == std::vector<std::uint64_t>{5, 6});
  CHECK(history_seqs(*journal, EntityKind::slot, 1) == std::vector<std::uint64_t>{2, 5, 6, 8});
  CHECK(history_seqs(*journal, EntityKind::slot, 2) == std::vector<std::uint64_t>{3, 6});
  CHECK(history_seqs(*journal, EntityKind::booking, 2) == std::vector<std::uint64_t>{8, 9});
  CHECK(history_seqs(*journal, EntityKind::slot, 3) == std::vector<std::uint64_t>{4});
}

TEST_CASE("a journal written before the entity index is indexed at its next open") {
  Workload workload(12);
  workload.run_until(3'000);
  TempDir dir;
  {
    auto journal = open_journal(dir.str());
    REQUIRE(journal->append(workload.records()).ok);
  }
  {
    // What an older slotd left: records only.
    rocksdb::Options options;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(options, dir.str(),
                              {{rocksdb::kDefaultColumnFamilyName, {}}, {"entities", {}}}, &handles, &raw)
                .ok());
    REQUIRE(raw->DropColumnFamily(handles[1]).ok());
    for (auto* h : handles) REQUIRE(raw->DestroyColumnFamilyHandle(h).ok());
    delete raw;
  }
  auto reopened = open_journal(dir.str());
  check_index(*reopened, workload.records(), workload.engine());
}

namespace {

// Small index blocks, so that a few thousand records fill and ingest several of them.
JournalOptions small_index_blocks() {
  JournalOptions options;
  options.index_block_keys = 256;
  options.index_ingest_blocks = 2;
  return options;
}

std::unique_ptr<Journal> open_journal(const std::string& dir, const JournalOptions& options) {
  std::unique_ptr<Journal> journal;
  const JournalStatus status = Journal::open(dir, journal, options);
  INFO(status.message);
  REQUIRE(status.ok);
  return journal;
}

void append_in_batches(Journal& journal, std::span<const JournalRecord> rest, std::size_t size) {
  while (!rest.empty()) {
    const std::size_t n = std::min(rest.size(), size);
    REQUIRE(journal.append(rest.first(n)).ok);
    rest = rest.subspan(n);
  }
}

// Waits (bounded) until the index thread has ingested the keys of seq `seq`.
void wait_ingested(const Journal& journal, std::uint64_t seq) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (journal.index_ingested_up_to() < seq && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(journal.index_ingested_up_to() >= seq);
}

// The last seq the index thread will have ingested once it has nothing left to do, for
// records appended to a new journal: blocks close at a record boundary once they hold
// `block_keys` keys, and every `ingest_blocks` full ones are ingested.
std::uint64_t final_coverage(std::span<const JournalRecord> records, std::size_t block_keys,
                             std::size_t ingest_blocks) {
  std::size_t keys = 0, full = 0;
  std::uint64_t covered = 0;
  for (const JournalRecord& r : records) {
    EntityRefs refs;
    keys += entities_of(r.event, refs);
    if (keys < block_keys) continue;
    keys = 0;
    if (++full % ingest_blocks == 0) covered = r.seq;
  }
  return covered;
}

}  // namespace

TEST_CASE("the entity index lists the same records whether their keys are ingested into RocksDB, in sorted blocks or in the open block") {
  Workload workload(14);
  workload.run_until(6'000);
  const std::vector<JournalRecord>& records = workload.records();
  TempDir dir;
  auto journal = open_journal(dir.str(), small_index_blocks());
  append_in_batches(*journal, records, 61);
  // 6,000 records make about 9,000 keys: some 35 blocks of 256, so RocksDB holds most of
  // them, and the newest are in memory.
  wait_ingested(*journal, records.size() / 2);
  const std::uint64_t covered = journal->index_ingested_up_to();
  CHECK(covered < records.size());
  check_index(*journal, records, workload.engine());
  // A slot whose history crosses from the ingested part to the blocks: windows and limits
  // that start or end on either side of the boundary cut it exactly.
  bool crossed = false;
  for (Id s = 1; s <= workload.engine().slots().size() && !crossed; ++s) {
    const std::vector<std::uint64_t> all = naming(records, EntityKind::slot, s);
    const auto boundary = std::upper_bound(all.begin(), all.end(), covered);
    if (boundary == all.begin() || boundary == all.end()) continue;
    crossed = true;
    const std::uint64_t before = *(boundary - 1), after = *boundary;
    CHECK(history_seqs(*journal, EntityKind::slot, s, before, after) ==
          std::vector<std::uint64_t>{before, after});
    CHECK(history_seqs(*journal, EntityKind::slot, s, after) ==
          std::vector<std::uint64_t>(boundary, all.end()));
    CHECK(history_seqs(*journal, EntityKind::slot, s, 1, after - 1) ==
          std::vector<std::uint64_t>(all.begin(), boundary));
    CHECK(history_seqs(*journal, EntityKind::slot, s, 1, ~0ULL, boundary - all.begin() + 1) ==
          std::vector<std::uint64_t>(all.begin(), boundary + 1));
  }
  CHECK(crossed);
  // A read-only open beside the writer reads the ingested part and indexes the rest itself.
  {
    std::unique_ptr<Journal> reader;
    const JournalStatus st = Journal::open_read_only(dir.str(), reader);
    INFO(st.message);
    REQUIRE(st.ok);
    CHECK(reader->index_ingested_up_to() >= covered);
    check_index(*reader, records, workload.engine());
  }
  journal.reset();
  auto reopened = open_journal(dir.str(), small_index_blocks());
  CHECK(reopened->index_ingested_up_to() >= covered);
  check_index(*reopened, records, workload.engine());
}

TEST_CASE("a journal copied as a crash leaves it indexes the records after its last ingest again, and a clean close ingests everything") {
  Workload workload(15);
  workload.run_until(8'000);
  const std::vector<JournalRecord>& records = workload.records();
  const std::size_t half = records.size() / 2;
  TempDir dir;
  const fs::path crashed = dir.path() / "crashed";
  const fs::path closed = dir.path() / "closed";
  std::uint64_t covered = 0;
  {
    auto journal = open_journal(closed.string(), small_index_blocks());
    const std::span<const JournalRecord> first(std::span<const JournalRecord>(records).first(half));
    append_in_batches(*journal, first, 97);
    covered = final_coverage(first, small_index_blocks().index_block_keys,
                             small_index_blocks().index_ingest_blocks);
    REQUIRE(covered > half / 2);
    REQUIRE(covered < half);
    wait_ingested(*journal, covered);
    // What kill -9 would leave now: the files as they are (every append is synced, and the
    // index thread has nothing more to ingest).
    fs::copy(closed, crashed, fs::copy_options::recursive);
  }
  {
    // Default blocks now: the blocks the crash lost are indexed again from the journal, and
    // new records follow them.
    auto journal = open_journal(crashed.string());
    CHECK(journal->index_ingested_up_to() == covered);
    append_in_batches(*journal, std::span<const JournalRecord>(records).subspan(half), 97);
    check_index(*journal, records, workload.engine());
  }
  {
    auto journal = open_journal(crashed.string(), small_index_blocks());
    CHECK(journal->index_ingested_up_to() == records.size());
    check_index(*journal, records, workload.engine());
  }
  auto journal = open_journal(closed.string());
  CHECK(journal->index_ingested_up_to() == half);
  const std::vector<JournalRecord> first_half(records.begin(), records.begin() + half);
  for (Id s = 1; s <= workload.engine().slots().size(); s += 5) {
    INFO("slot " << s);
    CHECK(history_seqs(*journal, EntityKind::slot, s) == naming(first_half, EntityKind::slot, s));
  }
}

TEST_CASE("an index that covers seqs the journal lost (a disk that lied about a sync) is dropped and rebuilt at open, so new records at those seqs are not confused with the lost ones") {
  Workload lost(17), other(18);
  lost.run_until(4'000);
  other.run_until(4'000);
  const std::uint64_t kept = 1'500;
  TempDir dir;
  {
    auto journal = open_journal(dir.str(), small_index_blocks());
    append_in_batches(*journal, lost.records(), 50);
  }  // a clean close: the family covers every record
  {
    // What the disk kept: the records up to `kept` (the later ones were synced and lost),
    // and the index files that cover them all.
    slotd::testing::RawDb db(dir.str());
    REQUIRE(db->DeleteRange({}, db->DefaultColumnFamily(), encode_key(kept + 1), encode_key(~0ULL)).ok());
  }
  std::vector<JournalRecord> now(lost.records().begin(), lost.records().begin() + kept);
  auto check_all = [&](const Journal& journal) {
    for (Id b = 1; b <= std::max(lost.engine().bookings().size(), other.engine().bookings().size()); b += 3) {
      INFO("booking " << b);
      CHECK(history_seqs(journal, EntityKind::booking, b) == naming(now, EntityKind::booking, b));
    }
    for (Id s = 1; s <= std::max(lost.engine().slots().size(), other.engine().slots().size()); s += 2) {
      INFO("slot " << s);
      CHECK(history_seqs(journal, EntityKind::slot, s) == naming(now, EntityKind::slot, s));
    }
  };
  {
    // A reader changes nothing: it uses the family up to the last record.
    std::unique_ptr<Journal> reader;
    const JournalStatus st = Journal::open_read_only(dir.str(), reader);
    INFO(st.message);
    REQUIRE(st.ok);
    REQUIRE(reader->last_seq() == kept);
    check_all(*reader);
  }
  {
    auto journal = open_journal(dir.str(), small_index_blocks());
    REQUIRE(journal->last_seq() == kept);
    CHECK(journal->index_ingested_up_to() <= kept);
    check_all(*journal);
    // Other events at the lost seqs: history must show them, and none of the lost ones.
    std::vector<JournalRecord> next(other.records().begin() + kept, other.records().end());
    for (std::size_t i = 0; i < next.size(); ++i) next[i].seq = kept + 1 + i;
    append_in_batches(*journal, next, 50);
    now.insert(now.end(), next.begin(), next.end());
    wait_ingested(*journal, kept + 1);
    check_all(*journal);
  }
  auto reopened = open_journal(dir.str(), small_index_blocks());
  CHECK(reopened->index_ingested_up_to() == now.size());
  check_all(*reopened);
}

TEST_CASE("a journal indexed with its records by an earlier version keeps its index, and what is appended after is indexed too") {
  Workload workload(16);
  workload.run_until(3'000);
  const std::vector<JournalRecord>& records = workload.records();
  const std::size_t half = records.size() / 2;
  TempDir dir;
  {
    // What an earlier slotd left: the records, their keys in the family "entities" and its
    // key 00 "built", all through RocksDB's WAL and memtables.
    rocksdb::Options options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(options, dir.str(),
                              {{rocksdb::kDefaultColumnFamilyName, {}}, {"entities", {}}}, &handles, &raw)
                .ok());
    rocksdb::WriteBatch batch;
    for (std::size_t i = 0; i < half; ++i) {
      std::string value;
      encode_record(records[i], value);
      REQUIRE(batch.Put(handles[0], encode_key(records[i].seq), value).ok());
      EntityRefs refs;
      const std::size_t n = entities_of(records[i].event, refs);
      for (std::size_t k = 0; k < n; ++k) {
        REQUIRE(batch.Put(handles[1], encode_entity_key(refs[k].kind, refs[k].id, records[i].seq), "").ok());
      }
    }
    REQUIRE(batch.Put(handles[1], std::string(1, '\0') + "built", "").ok());
    REQUIRE(raw->Write(rocksdb::WriteOptions(), &batch).ok());
    for (auto* h : handles) REQUIRE(raw->DestroyColumnFamilyHandle(h).ok());
    delete raw;
  }
  {
    auto journal = open_journal(dir.str(), small_index_blocks());
    CHECK(journal->index_ingested_up_to() == half);  // the family covered every record
    append_in_batches(*journal, std::span<const JournalRecord>(records).subspan(half), 53);
    check_index(*journal, records, workload.engine());
  }
  // Reopened with the default blocks: the new keys, ingested or not, are all found again.
  auto journal = open_journal(dir.str());
  check_index(*journal, records, workload.engine());
}

TEST_CASE("history reads running beside appends and ingests see, for any last_seq they observe, exactly the records up to it") {
  Workload workload(17);
  workload.run_until(12'000);
  const std::vector<JournalRecord>& records = workload.records();
  TempDir dir;
  auto journal = open_journal(dir.str(), small_index_blocks());
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> reads{0}, mismatches{0};
  std::thread reader([&] {
    std::mt19937_64 rng(5);
    while (!done.load()) {
      const bool slot = rng() % 2 == 0;
      const Id id = 1 + rng() % (slot ? workload.engine().slots().size() : workload.engine().bookings().size());
      const EntityKind kind = slot ? EntityKind::slot : EntityKind::booking;
      const std::uint64_t seen = journal->last_seq();
      std::vector<std::uint64_t> got;
      const JournalStatus st = journal->history(kind, id, 1, seen, 0, [&](const JournalRecord& r) {
        got.push_back(r.seq);
        return true;
      });
      std::vector<std::uint64_t> want = naming(records, kind, id);
      want.erase(std::upper_bound(want.begin(), want.end(), seen), want.end());
      if (!st.ok || got != want) ++mismatches;
      ++reads;
    }
  });
  append_in_batches(*journal, records, 29);
  wait_ingested(*journal, records.size() / 2);
  done = true;
  reader.join();
  MESSAGE("history reads beside the writer: " << reads.load());
  CHECK(reads.load() > 0);
  CHECK(mismatches.load() == 0);
}

TEST_CASE("a read-only open beside an open writer sees every record, takes no lock and writes nothing in the journal dir") {
  Workload workload(13);
  workload.run_until(2'000);
  TempDir dir;
  auto writer = open_journal(dir.str());
  REQUIRE(writer->append(workload.records()).ok);
  auto listing = [&] {
    std::vector<std::pair<std::string, std::uintmax_t>> files;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
      files.emplace_back(e.path().filename().string(), e.is_regular_file() ? e.file_size() : 0);
    }
    std::sort(files.begin(), files.end());
    return files;
  };
  const auto before = listing();
  {
    std::unique_ptr<Journal> reader;
    const JournalStatus st = Journal::open_read_only(dir.str(), reader);
    INFO(st.message);
    REQUIRE(st.ok);
    CHECK(reader->last_seq() == workload.records().size());
    std::uint64_t count = 0;
    REQUIRE(reader->read(1, 0, [&](const JournalRecord&) { return ++count, true; }).ok);
    CHECK(count == workload.records().size());
    check_index(*reader, workload.records(), workload.engine());
    CHECK_FALSE(reader->append(workload.records()).ok);
  }
  CHECK(listing() == before);
  // The writer goes on unharmed.
  JournalRecord next;
  next.seq = writer->last_seq() + 1;
  next.event = SlotClosed{1};
  CHECK(writer->append(std::span<const JournalRecord>(&next, 1)).ok);
}

TEST_CASE("a journal opened with compactions deferred compacts its flushed files only after start_compactions") {
  TempDir dir("slotd-journal-deferred");
  JournalOptions options;
  options.write_buffer_bytes = 64 << 10;  // a flush every few thousand records
  options.defer_compactions = true;
  std::unique_ptr<Journal> journal;
  REQUIRE(Journal::open((dir.path() / "j").string(), journal, options).ok);
  // More flushed files than RocksDB's compaction trigger (4), fewer than its write slowdown (20).
  std::uint64_t seq = 1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  append_until_level0_files(*journal, seq, 8, deadline);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(journal->level0_files() >= 8);  // still not compacted
  REQUIRE(journal->start_compactions().ok);
  while (journal->level0_files() >= 4 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(journal->level0_files() < 4);
  CHECK(read_all(*journal).size() == seq - 1);  // compacted, every record still there
}

namespace {

// The scheduling policies of this process's threads named `name` (RocksDB names its pools'
// threads "rocksdb:high" for flushes and "rocksdb:low" for compactions).
std::vector<int> policies_of_threads(const std::string& name) {
  std::vector<int> policies;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string line;
    if (!std::getline(comm, line) || line != name) continue;
    const int policy = ::sched_getscheduler(std::stoi(task.path().filename().string()));
    if (policy >= 0) policies.push_back(policy);
  }
  return policies;
}

// Appends one record at a time until no stall RocksDB reported (writes delayed or stopped)
// holds any more: each append asks RocksDB, and the pool threads go back to SCHED_IDLE.
void append_until_not_stalled(Journal& journal, std::uint64_t& seq) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (background_priority_raised() && std::chrono::steady_clock::now() < deadline) {
    auto records = closed_slot_records(seq, 1);
    REQUIRE(journal.append(records).ok);
    seq += records.size();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE_FALSE(background_priority_raised());
}

// A journal (with the default idle_background_threads) whose 64 KiB memtable was flushed
// to table files at least twice after it opened, and no write stall holds: a pool thread
// takes its priority as it begins a job, so only a flush after the open shows it.
struct FlushedJournal {
  std::unique_ptr<Journal> journal;
  std::uint64_t seq = 1;  // the next one to append

  explicit FlushedJournal(const TempDir& dir) {
    JournalOptions options;
    options.write_buffer_bytes = 64 << 10;  // a flush every few thousand records
    REQUIRE(options.idle_background_threads);  // the default
    REQUIRE(Journal::open((dir.path() / "j").string(), journal, options).ok);
    append_until_level0_files(*journal, seq, 2,
                              std::chrono::steady_clock::now() + std::chrono::seconds(30));
    // Writes this fast with so small a memtable make RocksDB stop them now and then, and
    // the pool threads run at normal priority until that is over.
    append_until_not_stalled(*journal, seq);
  }
};

}  // namespace

TEST_CASE("a journal's memtable flushes run on a thread under SCHED_IDLE") {
  TempDir dir("slotd-journal-idle-flush");
  FlushedJournal flushed(dir);
  const std::vector<int> flushers = policies_of_threads("rocksdb:high");
  REQUIRE_FALSE(flushers.empty());
  CHECK(std::count(flushers.begin(), flushers.end(), SCHED_IDLE) >= 1);
  CHECK(read_all(*flushed.journal).size() == flushed.seq - 1);
}

TEST_CASE("while a journal's writes are stalled RocksDB's pool threads run at normal priority") {
  TempDir dir("slotd-journal-stall");
  FlushedJournal flushed(dir);
  auto& journal = flushed.journal;
  std::uint64_t& seq = flushed.seq;
  const std::vector<int> before = policies_of_threads("rocksdb:high");
  REQUIRE(std::count(before.begin(), before.end(), SCHED_IDLE) >= 1);
  // RocksDB cannot be made to stall on cue, so the test calls what the watcher calls on a
  // report. Two journals: the threads stay raised until neither is stalled.
  const int a = 0, b = 0;
  const std::uint64_t raises = background_priority_raises();
  background_stall_changed(&a, true);
  background_stall_changed(&b, true);
  CHECK(background_priority_raised());
  CHECK(background_priority_raises() == raises + 1);
  for (const int policy : policies_of_threads("rocksdb:high")) CHECK(policy == SCHED_OTHER);
  for (const int policy : policies_of_threads("rocksdb:low")) CHECK(policy == SCHED_OTHER);
  background_stall_changed(&a, false);
  CHECK(background_priority_raised());
  for (const int policy : policies_of_threads("rocksdb:high")) CHECK(policy == SCHED_OTHER);
  background_stall_changed(&b, false);
  CHECK_FALSE(background_priority_raised());
  for (const int policy : policies_of_threads("rocksdb:high")) CHECK(policy == SCHED_IDLE);
  for (const int policy : policies_of_threads("rocksdb:low")) CHECK(policy == SCHED_IDLE);
  // The journal goes on.
  auto records = closed_slot_records(seq, 2'000);
  REQUIRE(journal->append(records).ok);
  seq += records.size();
  CHECK(read_all(*journal).size() == seq - 1);
}
