// Unit and scenario tests of the pure engine (engine/engine.hpp).
//
// Every command goes through a Harness that works like the sequencer (decide, then apply
// each event) and checks on every step what must always hold: decide never mutates, a
// refusal appends nothing and leaves state_hash unchanged, every applied event changes the
// state and leaves check_invariants() empty. The harness keeps the events as a journal so
// each test can prove that replaying them with apply alone rebuilds an equal state_hash.
#include "engine/engine.hpp"
#include "engine/overloaded.hpp"
#include "tests/test_support.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>


namespace {

using namespace slotd;

constexpr TimeMs kT0 = 1'925'000'000'000;  // 2031-01-01, any instant would do
constexpr TimeMs kSecond = 1'000;
constexpr TimeMs kMinute = 60 * kSecond;
constexpr TimeMs kHour = 60 * kMinute;

Token token_of(std::uint8_t n) {
  Token t{};
  t.fill(n);
  return t;
}

std::string describe(const Event& event) {
  auto n = [](auto v) { return std::to_string(v); };
  return std::visit(
      overloaded{
          [&](const ClinicAdded& e) {
            return "ClinicAdded{" + n(e.clinic_id) + "," + e.name + "}";
          },
          [&](const DoctorAdded& e) {
            return "DoctorAdded{" + n(e.doctor_id) + "," + n(e.clinic_id) + "," + e.name + "," +
                   e.specialty + "}";
          },
          [&](const SlotCreated& e) {
            return "SlotCreated{" + n(e.slot_id) + "," + n(e.doctor_id) + "," + n(e.start_ms) +
                   "," + n(e.end_ms) + "}";
          },
          [&](const SlotHeld& e) {
            return "SlotHeld{" + n(e.booking_id) + "," + n(e.slot_id) + "," + e.patient_name + "," +
                   std::to_string(e.client) + ",token" + n(e.token[0]) + "," + n(e.created_at_ms) + "," +
                   n(e.expires_at_ms) + "}";
          },
          [&](const BookingConfirmed& e) {
            return "BookingConfirmed{" + n(e.booking_id) + "," + n(e.confirmed_at_ms) + "}";
          },
          [&](const BookingExpired& e) {
            return "BookingExpired{" + n(e.booking_id) + "," + n(e.expired_at_ms) + "}";
          },
          [&](const BookingCancelled& e) {
            return "BookingCancelled{" + n(e.booking_id) + "," + n(e.cancelled_at_ms) + "}";
          },
          [&](const SlotClosed& e) { return "SlotClosed{" + n(e.slot_id) + "}"; },
          [&](const IdempotencyKeysForgotten& e) {
            return "IdempotencyKeysForgotten{" + n(e.up_to_ms) + "}";
          },
          [&](const ClinicUpdated& e) {
            return "ClinicUpdated{" + n(e.clinic_id) + "," + e.name + "," + e.time_zone + "}";
          },
          [&](const WebhookRegistered& e) {
            return "WebhookRegistered{" + n(e.webhook_id) + "," + e.url + "," + n(e.events) + "," +
                   n(e.clinic_id) + "," + n(e.include_patient) + "," + n(e.created_at_ms) + "}";
          },
          [&](const WebhookDeleted& e) { return "WebhookDeleted{" + n(e.webhook_id) + "}"; },
          [&](const BookingRescheduled& e) {
            return "BookingRescheduled{" + n(e.booking_id) + "," + n(e.from_slot_id) + "->" +
                   n(e.to_slot_id) + "," + std::string(to_string(e.status)) + "," +
                   n(e.rescheduled_at_ms) + "}";
          },
          [&](const WaitlistJoined& e) {
            return "WaitlistJoined{" + n(e.entry_id) + "," + n(e.doctor_id) + "," + n(e.from_ms) +
                   "," + n(e.to_ms) + "," + e.patient_name + "}";
          },
          [&](const WaitlistLeft& e) {
            return "WaitlistLeft{" + n(e.entry_id) + "," + n(e.left_at_ms) + "}";
          },
          [&](const WaitlistOffered& e) {
            return "WaitlistOffered{" + n(e.entry_id) + "," + n(e.booking_id) + "," +
                   n(e.slot_id) + "}";
          },
      },
      event);
}

struct Outcome {
  Rejection rejection = Rejection::none;
  std::vector<Event> events;
};

class Harness {
 public:
  explicit Harness(EngineConfig config = {}) : engine(config) {}

  Engine engine;
  TimeMs now = kT0;
  std::vector<Event> journal;  // every applied event, in order
  int refusals = 0;

  Outcome run(const Command& command) {
    const std::uint64_t before = engine.state_hash();
    // decide appends: a sentinel already in `out` must survive, and a refusal adds nothing.
    std::vector<Event> out{SlotClosed{999'999}};
    const Rejection r = engine.decide(command, now, out);
    CHECK_MESSAGE(engine.state_hash() == before, "decide changed the state");
    REQUIRE(!out.empty());
    CHECK_MESSAGE(describe(out.front()) == "SlotClosed{999999}", "decide dropped earlier events");
    out.erase(out.begin());
    if (r != Rejection::none) {
      ++refusals;
      CHECK_MESSAGE(out.empty(), "refused with ", to_string(r), " but appended ", out.size(),
                    " events");
      return {r, {}};
    }
    for (const Event& e : out) {
      const std::uint64_t pre = engine.state_hash();
      engine.apply(e);
      CHECK_MESSAGE(engine.state_hash() != pre, "applying ", describe(e), " changed no state");
      const auto broken = engine.broken_invariant();
      CHECK_MESSAGE(!broken, "after ", describe(e), ": ", broken.value_or(""));
      journal.push_back(e);
    }
    return {r, std::move(out)};
  }

  // A refused command must also leave the hash unchanged when run through execute.
  Rejection run_refused_via_execute(const Command& command) {
    const std::uint64_t before = engine.state_hash();
    std::vector<Event> out;
    const Rejection r = engine.execute(command, now, out);
    CHECK(r != Rejection::none);
    CHECK(out.empty());
    CHECK(engine.state_hash() == before);
    return r;
  }

  Id add_doctor(std::string name = "Dr. Ada Osei", Id clinic_id = 1) {
    Outcome o = run(AddDoctor{clinic_id, std::move(name), "General practice"});
    REQUIRE(o.rejection == Rejection::none);
    REQUIRE(o.events.size() == 1);
    return std::get<DoctorAdded>(o.events[0]).doctor_id;
  }
  Rejection create(Id doctor_id, std::vector<SlotSpan> spans) {
    return run(CreateSlots{doctor_id, std::move(spans)}).rejection;
  }
  Id add_slot(Id doctor_id, TimeMs start_ms, TimeMs end_ms) {
    Outcome o = run(CreateSlots{doctor_id, {{start_ms, end_ms}}});
    REQUIRE(o.rejection == Rejection::none);
    REQUIRE(o.events.size() == 1);
    return std::get<SlotCreated>(o.events[0]).slot_id;
  }
  Rejection book(Id slot_id, std::string patient = "Ann Lee", std::string client_key = "") {
    return run(BookSlot{slot_id, std::move(patient), testing::client(client_key), token_of(7)}).rejection;
  }
  Id book_ok(Id slot_id, std::string client_key = "") {
    REQUIRE(book(slot_id, "Ann Lee", std::move(client_key)) == Rejection::none);
    return last_booking();
  }
  Outcome confirm(Id booking_id) { return run(ConfirmBooking{booking_id}); }
  Outcome cancel(Id booking_id) { return run(CancelBooking{booking_id}); }
  Outcome close(Id slot_id) { return run(CloseSlot{slot_id}); }
  Outcome expire() { return run(ExpireDue{}); }
  Outcome reschedule(Id booking_id, Id slot_id) { return run(RescheduleBooking{booking_id, slot_id}); }
  // Joins the waitlist for [from, to); the entry's offer token is token_of(100 + entry id).
  Id join(Id doctor_id, TimeMs from, TimeMs to, std::string patient = "Wanda Wait",
          std::string client_key = "") {
    const Id next = engine.waitlist().size() + 1;
    Outcome o = run(JoinWaitlist{doctor_id, from, to, std::move(patient),
                                 testing::client(client_key), token_of(50),
                                 token_of(static_cast<std::uint8_t>(100 + next))});
    REQUIRE(o.rejection == Rejection::none);
    return std::get<WaitlistJoined>(o.events.at(0)).entry_id;
  }
  void tick(TimeMs ms) { now += ms; }

  Id last_booking() const { return engine.bookings().size(); }
  SlotStatus slot_status(Id id) const {
    REQUIRE(engine.slot(id) != nullptr);
    return engine.slot(id)->status;
  }
  BookingStatus booking_status(Id id) const {
    REQUIRE(engine.booking(id) != nullptr);
    return engine.booking(id)->status;
  }
  WaitlistStatus entry_status(Id id) const {
    REQUIRE(engine.waitlist_entry(id) != nullptr);
    return engine.waitlist_entry(id)->status;
  }

  // Replaying the journal into a fresh engine with apply alone rebuilds an equal state.
  void check_replay() const {
    Engine fresh(engine.config());
    for (const Event& e : journal) fresh.apply(e);
    CHECK(fresh.state_hash() == engine.state_hash());
    CHECK(fresh.broken_invariant() == std::nullopt);
    CHECK(fresh.pending_count() == engine.pending_count());
    CHECK(fresh.slots().size() == engine.slots().size());
    CHECK(fresh.bookings().size() == engine.bookings().size());
  }
};

std::set<Id> ids_in(const std::vector<std::uint32_t>& index) {
  return std::set<Id>(index.begin(), index.end());
}

}  // namespace

// ---- Construction and names ---------------------------------------------------------

TEST_CASE("a new engine has clinic 1 and nothing else, and its invariants hold") {
  Engine e;
  REQUIRE(e.clinics().size() == 1);
  REQUIRE(e.clinic(1) != nullptr);
  CHECK_FALSE(e.clinic(1)->name.empty());
  CHECK(e.clinic(0) == nullptr);
  CHECK(e.clinic(2) == nullptr);
  CHECK(e.doctor(1) == nullptr);
  CHECK(e.slot(1) == nullptr);
  CHECK(e.booking(1) == nullptr);
  CHECK(e.doctors().empty());
  CHECK(e.slots().empty());
  CHECK(e.bookings().empty());
  CHECK(e.slots_of(1).empty());
  CHECK(e.holds_of(testing::client("anyone")) == 0);
  CHECK(e.pending_count() == 0);
  CHECK(e.broken_invariant() == std::nullopt);
  CHECK(Engine{}.state_hash() == e.state_hash());
}

TEST_CASE("statuses print as the API spells them") {
  CHECK(to_string(SlotStatus::available) == "AVAILABLE");
  CHECK(to_string(SlotStatus::held) == "HELD");
  CHECK(to_string(SlotStatus::booked) == "BOOKED");
  CHECK(to_string(SlotStatus::closed) == "CLOSED");
  CHECK(to_string(BookingStatus::pending) == "PENDING");
  CHECK(to_string(BookingStatus::confirmed) == "CONFIRMED");
  CHECK(to_string(BookingStatus::failed) == "FAILED");
  CHECK(to_string(BookingStatus::cancelled) == "CANCELLED");
  CHECK(to_string(WaitlistStatus::waiting) == "WAITING");
  CHECK(to_string(WaitlistStatus::offered) == "OFFERED");
  CHECK(to_string(WaitlistStatus::cancelled) == "CANCELLED");
}

TEST_CASE("every rejection prints as its own error code, the enumerator's name") {
  const std::vector<std::pair<Rejection, std::string>> expected = {
      {Rejection::none, "none"},
      {Rejection::clinic_not_found, "clinic_not_found"},
      {Rejection::doctor_not_found, "doctor_not_found"},
      {Rejection::slot_not_found, "slot_not_found"},
      {Rejection::booking_not_found, "booking_not_found"},
      {Rejection::slot_unavailable, "slot_unavailable"},
      {Rejection::slot_overlap, "slot_overlap"},
      {Rejection::booking_expired, "booking_expired"},
      {Rejection::booking_failed, "booking_failed"},
      {Rejection::booking_cancelled, "booking_cancelled"},
      {Rejection::booking_confirmed, "booking_confirmed"},
      {Rejection::slot_booked, "slot_booked"},
      {Rejection::invalid_name, "invalid_name"},
      {Rejection::invalid_time_range, "invalid_time_range"},
      {Rejection::too_many_slots, "too_many_slots"},
      {Rejection::empty_request, "empty_request"},
      {Rejection::too_many_holds, "too_many_holds"},
      {Rejection::idempotency_key_reused, "idempotency_key_reused"},
      {Rejection::waitlist_entry_not_found, "waitlist_entry_not_found"},
      {Rejection::waitlist_entry_served, "waitlist_entry_served"},
      {Rejection::duplicate_request, "duplicate_request"},
  };
  std::set<std::string> seen;
  for (const auto& [r, code] : expected) {
    CHECK(std::string(to_string(r)) == code);
    seen.insert(std::string(to_string(r)));
  }
  CHECK(seen.size() == expected.size());
}

// ---- AddClinic / AddDoctor ----------------------------------------------------------------

TEST_CASE("add clinic: empty or over-long names are refused, ids continue from clinic 1") {
  Harness h;
  CHECK(h.run(AddClinic{""}).rejection == Rejection::invalid_name);
  CHECK(h.run(AddClinic{std::string(201, 'x')}).rejection == Rejection::invalid_name);
  Outcome o = h.run(AddClinic{std::string(200, 'x')});
  REQUIRE(o.rejection == Rejection::none);
  REQUIRE(o.events.size() == 1);
  CHECK(std::get<ClinicAdded>(o.events[0]).clinic_id == 2);
  CHECK(std::get<ClinicAdded>(o.events[0]).name == std::string(200, 'x'));
  o = h.run(AddClinic{"North"});
  REQUIRE(o.rejection == Rejection::none);
  CHECK(std::get<ClinicAdded>(o.events[0]).clinic_id == 3);
  REQUIRE(h.engine.clinic(3) != nullptr);
  CHECK(h.engine.clinic(3)->name == "North");
  CHECK(h.engine.clinics().size() == 3);
  h.check_replay();
}

TEST_CASE("add doctor: unknown clinic, empty or over-long name or specialty are refused") {
  Harness h;
  CHECK(h.run(AddDoctor{0, "Dr. A", "GP"}).rejection == Rejection::clinic_not_found);
  CHECK(h.run(AddDoctor{2, "Dr. A", "GP"}).rejection == Rejection::clinic_not_found);
  CHECK(h.run(AddDoctor{1, "", "GP"}).rejection == Rejection::invalid_name);
  CHECK(h.run(AddDoctor{1, std::string(201, 'n'), "GP"}).rejection == Rejection::invalid_name);
  CHECK(h.run(AddDoctor{1, "Dr. A", std::string(201, 's')}).rejection == Rejection::invalid_name);
  CHECK(h.engine.doctors().empty());

  Outcome o = h.run(AddDoctor{1, std::string(200, 'n'), ""});  // empty specialty is fine
  REQUIRE(o.rejection == Rejection::none);
  REQUIRE(o.events.size() == 1);
  const auto& added = std::get<DoctorAdded>(o.events[0]);
  CHECK(added.doctor_id == 1);
  CHECK(added.clinic_id == 1);
  CHECK(added.name == std::string(200, 'n'));
  CHECK(added.specialty == "");

  REQUIRE(h.run(AddClinic{"North"}).rejection == Rejection::none);
  CHECK(h.add_doctor("Dr. B", 2) == 2);
  REQUIRE(h.engine.doctor(2) != nullptr);
  CHECK(h.engine.doctor(2)->clinic_id == 2);
  CHECK(h.engine.doctor(2)->name == "Dr. B");
  CHECK(h.engine.doctor(2)->specialty == "General practice");
  h.check_replay();
}

TEST_CASE(
    "add doctor checks the clinic before the name (spec order: clinic_not_found, then "
    "invalid_name)") {
  Harness h;
  CHECK(h.run(AddDoctor{7, "", "GP"}).rejection == Rejection::clinic_not_found);
}

// ---- CreateSlots ------------------------------------------------------------------------

TEST_CASE("create slots: ids are consecutive in request order, all AVAILABLE, indexed by start") {
  Harness h;
  const Id d = h.add_doctor();
  Outcome o = h.run(CreateSlots{
      d, {{kT0 + 2 * kHour, kT0 + 3 * kHour}, {kT0, kT0 + kHour}, {kT0 + kHour, kT0 + 2 * kHour}}});
  REQUIRE(o.rejection == Rejection::none);
  REQUIRE(o.events.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& c = std::get<SlotCreated>(o.events[i]);
    CHECK(c.slot_id == i + 1);
    CHECK(c.doctor_id == d);
    CHECK(h.slot_status(c.slot_id) == SlotStatus::available);
    CHECK(h.engine.slot(c.slot_id)->booking_id == 0);
  }
  CHECK(h.engine.slot(1)->start_ms == kT0 + 2 * kHour);
  CHECK(h.engine.slot(1)->end_ms == kT0 + 3 * kHour);
  CHECK(h.engine.slot(2)->start_ms == kT0);
  const std::vector<std::uint32_t> expected{2, 3, 1};  // by start
  CHECK(h.engine.slots_of(d) == expected);
  CHECK(h.engine.slots_of(d + 1).empty());

  // The next request continues the ids.
  CHECK(h.add_slot(d, kT0 + 5 * kHour, kT0 + 6 * kHour) == 4);
  h.check_replay();
}

TEST_CASE(
    "create slots refuses, in order: unknown doctor, empty request, too many, bad range, overlap") {
  Harness h;
  const Id d = h.add_doctor();
  const SlotSpan ok{kT0, kT0 + kHour};
  CHECK(h.create(0, {ok}) == Rejection::doctor_not_found);
  CHECK(h.create(d + 1, {ok}) == Rejection::doctor_not_found);
  CHECK(h.create(d + 1, {}) == Rejection::doctor_not_found);
  CHECK(h.create(d, {}) == Rejection::empty_request);
  CHECK(h.create(d, {{kT0, kT0}}) == Rejection::invalid_time_range);
  CHECK(h.create(d, {{kT0, kT0 - 1}}) == Rejection::invalid_time_range);
  // One bad span refuses the whole request: nothing is created.
  CHECK(h.create(d, {ok, {kT0 + 2 * kHour, kT0 + kHour}}) == Rejection::invalid_time_range);
  CHECK(h.engine.slots().empty());
  // A bad range is reported before an overlap in the same request.
  CHECK(h.create(d, {ok, ok, {kT0 + 3 * kHour, kT0 + 3 * kHour}}) == Rejection::invalid_time_range);

  h.engine.set_config([&] {
    EngineConfig c = h.engine.config();
    c.max_slots_per_request = 3;
    return c;
  }());
  std::vector<SlotSpan> four{
      {kT0, kT0 + 1}, {kT0 + 1, kT0 + 2}, {kT0 + 2, kT0 + 3}, {kT0 + 3, kT0 + 2}};
  CHECK(h.create(d, four) == Rejection::too_many_slots);  // checked before the bad range in it
  four.pop_back();
  CHECK(h.create(d, four) == Rejection::none);
  CHECK(h.engine.slots().size() == 3);
  h.check_replay();
}

TEST_CASE(
    "create slots: overlap with a live slot or within the request is refused, adjacent is fine") {
  Harness h;
  const Id d = h.add_doctor();
  const Id other = h.add_doctor("Dr. Other");
  const Id s1 = h.add_slot(d, kT0 + kHour, kT0 + 2 * kHour);

  // Overlapping [1h, 2h) in every way.
  CHECK(h.create(d, {{kT0 + kHour, kT0 + 2 * kHour}}) == Rejection::slot_overlap);  // same
  CHECK(h.create(d, {{kT0 + 30 * kMinute, kT0 + 61 * kMinute}}) == Rejection::slot_overlap);
  CHECK(h.create(d, {{kT0 + 119 * kMinute, kT0 + 3 * kHour}}) == Rejection::slot_overlap);
  CHECK(h.create(d, {{kT0 + 70 * kMinute, kT0 + 80 * kMinute}}) ==
        Rejection::slot_overlap);                                           // inside
  CHECK(h.create(d, {{kT0, kT0 + 3 * kHour}}) == Rejection::slot_overlap);  // around
  // One overlapping span among good ones refuses them all.
  CHECK(h.create(d, {{kT0 + 5 * kHour, kT0 + 6 * kHour},
                     {kT0 + 90 * kMinute, kT0 + 100 * kMinute}}) == Rejection::slot_overlap);
  // Two spans of one request that overlap each other (also out of order, also nested).
  CHECK(h.create(d, {{kT0 + 10 * kHour, kT0 + 11 * kHour},
                     {kT0 + 10 * kHour + 1, kT0 + 10 * kHour + 2}}) == Rejection::slot_overlap);
  CHECK(h.create(d, {{kT0 + 20 * kHour, kT0 + 22 * kHour},
                     {kT0 + 23 * kHour, kT0 + 24 * kHour},
                     {kT0 + 21 * kHour, kT0 + 21 * kHour + 1}}) == Rejection::slot_overlap);
  CHECK(h.create(d, {{kT0 + 30 * kHour, kT0 + 31 * kHour}, {kT0 + 30 * kHour, kT0 + 31 * kHour}}) ==
        Rejection::slot_overlap);
  CHECK(h.engine.slots().size() == 1);

  // Half-open intervals: touching ends are not an overlap, before and after, and in-request.
  CHECK(h.create(d, {{kT0, kT0 + kHour}}) == Rejection::none);
  CHECK(h.create(d, {{kT0 + 3 * kHour, kT0 + 4 * kHour}, {kT0 + 2 * kHour, kT0 + 3 * kHour}}) ==
        Rejection::none);
  CHECK(h.engine.slots().size() == 4);
  // Another doctor's calendar is independent.
  CHECK(h.create(other, {{kT0 + kHour, kT0 + 2 * kHour}}) == Rejection::none);
  CHECK(h.engine.slots_of(d).size() == 4);
  CHECK(h.engine.slots_of(other).size() == 1);
  CHECK(h.slot_status(s1) == SlotStatus::available);
  h.check_replay();
}

TEST_CASE("create slots: held and booked slots block overlaps, a closed slot frees its time") {
  Harness h;
  const Id d = h.add_doctor();
  const Id held = h.add_slot(d, kT0, kT0 + kHour);
  const Id booked = h.add_slot(d, kT0 + kHour, kT0 + 2 * kHour);
  const Id closed = h.add_slot(d, kT0 + 2 * kHour, kT0 + 3 * kHour);
  h.book_ok(held);
  REQUIRE(h.confirm(h.book_ok(booked)).rejection == Rejection::none);
  REQUIRE(h.close(closed).rejection == Rejection::none);

  CHECK(h.create(d, {{kT0 + 30 * kMinute, kT0 + 40 * kMinute}}) == Rejection::slot_overlap);
  CHECK(h.create(d, {{kT0 + 90 * kMinute, kT0 + 100 * kMinute}}) == Rejection::slot_overlap);
  // The closed slot's hour can be offered again, even split differently.
  CHECK(h.create(d, {{kT0 + 2 * kHour, kT0 + 150 * kMinute},
                     {kT0 + 150 * kMinute, kT0 + 3 * kHour}}) == Rejection::none);
  // ... and the closed slot stays in the doctor's index, CLOSED.
  CHECK(ids_in(h.engine.slots_of(d)) == std::set<Id>{held, booked, closed, 4, 5});
  CHECK(h.slot_status(closed) == SlotStatus::closed);
  // Closing the new one too, then a third offer of the same time still works.
  REQUIRE(h.close(4).rejection == Rejection::none);
  CHECK(h.create(d, {{kT0 + 2 * kHour, kT0 + 140 * kMinute}}) == Rejection::none);
  // It touches live slot 5 (from 150 min) without overlapping; a span across both overlaps.
  CHECK(h.create(d, {{kT0 + 140 * kMinute, kT0 + 160 * kMinute}}) == Rejection::slot_overlap);
  h.check_replay();
}

TEST_CASE("create slots: 10,000 in one request are fine, 10,001 are too_many_slots") {
  Harness h;
  const Id d = h.add_doctor();
  std::vector<SlotSpan> spans;
  for (TimeMs i = 0; i < 10'001; ++i)
    spans.push_back({kT0 + i * 15 * kMinute, kT0 + (i + 1) * 15 * kMinute});
  // Checked without the per-event harness checks (10,000 invariant scans are slow, not wrong).
  std::vector<Event> out;
  const std::uint64_t before = h.engine.state_hash();
  CHECK(h.engine.decide(CreateSlots{d, spans}, h.now, out) == Rejection::too_many_slots);
  CHECK(out.empty());
  CHECK(h.engine.state_hash() == before);

  spans.pop_back();
  CHECK(h.engine.execute(CreateSlots{d, spans}, h.now, out) == Rejection::none);
  CHECK(out.size() == 10'000);
  CHECK(h.engine.slots().size() == 10'000);
  CHECK(h.engine.slots_of(d).size() == 10'000);
  CHECK(std::get<SlotCreated>(out.front()).slot_id == 1);
  CHECK(std::get<SlotCreated>(out.back()).slot_id == 10'000);
  CHECK(h.engine.broken_invariant() == std::nullopt);
  // Every one of them now blocks its quarter hour, the first and the last included.
  CHECK(h.create(d, {{kT0 + 1, kT0 + 2}}) == Rejection::slot_overlap);
  CHECK(h.create(d, {{kT0 + 9'999 * 15 * kMinute, kT0 + 10'000 * 15 * kMinute}}) ==
        Rejection::slot_overlap);
  CHECK(h.create(d, {{kT0 + 10'000 * 15 * kMinute, kT0 + 10'001 * 15 * kMinute}}) ==
        Rejection::none);
  CHECK(h.create(d, {{kT0 - 15 * kMinute, kT0}}) == Rejection::none);
}

// ---- BookSlot ---------------------------------------------------------------------------

TEST_CASE(
    "book: the hold carries patient, client, token, now and now + TTL, and the slot is HELD") {
  Harness h;
  const Id d = h.add_doctor();
  const Id s = h.add_slot(d, kT0 + kHour, kT0 + 2 * kHour);
  h.tick(5 * kSecond);
  Outcome o = h.run(BookSlot{s, "Ann Lee", testing::client("client-a"), token_of(42)});
  REQUIRE(o.rejection == Rejection::none);
  REQUIRE(o.events.size() == 1);
  const auto& held = std::get<SlotHeld>(o.events[0]);
  CHECK(held.booking_id == 1);
  CHECK(held.slot_id == s);
  CHECK(held.patient_name == "Ann Lee");
  CHECK(held.client == testing::client("client-a"));
  CHECK(held.token == token_of(42));
  CHECK(held.created_at_ms == h.now);
  CHECK(held.expires_at_ms == h.now + 120'000);

  const Booking* b = h.engine.booking(1);
  REQUIRE(b != nullptr);
  CHECK(b->slot_id == s);
  CHECK(b->status == BookingStatus::pending);
  CHECK(h.engine.patient_name(*b) == "Ann Lee");
  CHECK(b->client == testing::client("client-a"));
  CHECK(b->token == token_of(42));
  CHECK(b->created_at_ms == h.now);
  CHECK(b->expires_at_ms == h.now + 120'000);
  CHECK(b->confirmed_at_ms == 0);
  CHECK(b->ended_at_ms == 0);
  CHECK(h.slot_status(s) == SlotStatus::held);
  CHECK(h.engine.slot(s)->booking_id == 1);
  CHECK(h.engine.pending_count() == 1);
  // Without a hold cap nobody's holds are counted (the count exists only for the cap).
  CHECK(h.engine.holds_of(testing::client("client-a")) == 0);
  CHECK(h.engine.holds_of(testing::client("")) == 0);
  h.check_replay();
}

TEST_CASE("book: the hold TTL comes from the config") {
  Harness h(EngineConfig{.hold_ttl_ms = 7'000});
  const Id s = h.add_slot(h.add_doctor(), kT0, kT0 + kHour);
  const Id b = h.book_ok(s);
  CHECK(h.engine.booking(b)->expires_at_ms == h.now + 7'000);
}

TEST_CASE("book refuses, in order: invalid name, unknown slot, slot not AVAILABLE") {
  Harness h;
  const Id s = h.add_slot(h.add_doctor(), kT0, kT0 + kHour);
  CHECK(h.book(s, "") == Rejection::invalid_name);
  CHECK(h.book(s, std::string(201, 'p')) == Rejection::invalid_name);
  CHECK(h.book(999, "") == Rejection::invalid_name);  // the name is checked first
  CHECK(h.book(0) == Rejection::slot_not_found);
  CHECK(h.book(999) == Rejection::slot_not_found);
  CHECK(h.engine.bookings().empty());
  CHECK(h.book(s, std::string(200, 'p')) == Rejection::none);
  CHECK(h.book(s) == Rejection::slot_unavailable);
  CHECK(h.book(s, "") == Rejection::invalid_name);
  CHECK(h.engine.bookings().size() == 1);
  CHECK(h.run_refused_via_execute(BookSlot{s, "Bob", 0, {}}) == Rejection::slot_unavailable);
  h.check_replay();
}

TEST_CASE("book: a BOOKED or CLOSED slot is slot_unavailable") {
  Harness h;
  const Id d = h.add_doctor();
  const Id booked = h.add_slot(d, kT0, kT0 + kHour);
  const Id closed = h.add_slot(d, kT0 + kHour, kT0 + 2 * kHour);
  REQUIRE(h.confirm(h.book_ok(booked)).rejection == Rejection::none);
  REQUIRE(h.close(closed).rejection == Rejection::none);
  CHECK(h.book(booked) == Rejection::slot_unavailable);
  CHECK(h.book(closed) == Rejection::slot_unavailable);
  CHECK(h.engine.bookings().size() == 1);
  h.check_replay();
}

TEST_CASE("hold cap: a client key may hold at most max_holds_per_client PENDING bookings") {
  Harness h(EngineConfig{.max_holds_per_client = 2});
  const Id d = h.add_doctor();
  std::vector<Id> s;
  for (int i = 0; i < 8; ++i) s.push_back(h.add_slot(d, kT0 + i * kHour, kT0 + (i + 1) * kHour));

  const Id b1 = h.book_ok(s[0], "c");
  const Id b2 = h.book_ok(s[1], "c");
  CHECK(h.engine.holds_of(testing::client("c")) == 2);
  CHECK(h.book(s[2], "Ann", "c") == Rejection::too_many_holds);
  // The slot check comes first: a held slot is slot_unavailable even for a capped client.
  CHECK(h.book(s[0], "Ann", "c") == Rejection::slot_unavailable);
  // Other keys and the empty key (no cap) are not affected.
  h.book_ok(s[2], "other");
  h.book_ok(s[3], "");
  h.book_ok(s[4], "");
  h.book_ok(s[5], "");
  CHECK(h.engine.holds_of(testing::client("")) == 0);
  CHECK(h.engine.pending_count() == 6);

  // Confirming frees a hold (CONFIRMED is not PENDING): the client may hold another.
  REQUIRE(h.confirm(b1).rejection == Rejection::none);
  CHECK(h.engine.holds_of(testing::client("c")) == 1);
  const Id b3 = h.book_ok(s[6], "c");
  CHECK(h.book(s[7], "Ann", "c") == Rejection::too_many_holds);
  // Cancelling frees one.
  REQUIRE(h.cancel(b3).rejection == Rejection::none);
  CHECK(h.engine.holds_of(testing::client("c")) == 1);
  const Id b4 = h.book_ok(s[7], "c");
  CHECK(h.engine.holds_of(testing::client("c")) == 2);
  // Expiry frees them.
  h.tick(2 * kMinute);
  Outcome o = h.expire();
  REQUIRE(o.rejection == Rejection::none);
  CHECK(h.booking_status(b2) == BookingStatus::failed);
  CHECK(h.booking_status(b4) == BookingStatus::failed);
  CHECK(h.engine.holds_of(testing::client("c")) == 0);
  CHECK(h.engine.holds_of(testing::client("other")) == 0);
  CHECK(h.engine.pending_count() == 0);
  CHECK(h.book(s[1], "Ann", "c") == Rejection::none);
  h.check_replay();
}

TEST_CASE("without a cap (max_holds_per_client = 0) one client key may hold any number") {
  Harness h;
  const Id d = h.add_doctor();
  for (int i = 0; i < 50; ++i)
    h.book_ok(h.add_slot(d, kT0 + i * kHour, kT0 + (i + 1) * kHour), "greedy");
  CHECK(h.engine.pending_count() == 50);
  CHECK(h.engine.holds_of(testing::client("greedy")) == 0);  // not even counted without a cap
}

// ---- ConfirmBooking ------------------------------------------------------------------------

TEST_CASE(
    "confirm: PENDING → CONFIRMED at now, slot BOOKED, and a repeat succeeds with no events") {
  Harness h;
  const Id s = h.add_slot(h.add_doctor(), kT0, kT0 + kHour);
  const Id b = h.book_ok(s);
  CHECK(h.confirm(0).rejection == Rejection::booking_not_found);
  CHECK(h.confirm(b + 1).rejection == Rejection::booking_not_found);
  h.tick(30 * kSecond);
  Outcome o = h.confirm(b);
  REQUIRE(o.rejection == Rejection::none);
  REQUIRE(o.events.size() == 1);
  CHECK(std::get<BookingConfirmed>(o.events[0]).booking_id == b);
  CHECK(std::get<BookingConfirmed>(o.events[0]).confirmed_at_ms == h.now);
  CHECK(h.booking_status(b) == BookingStatus::confirmed);
  CHECK(h.engine.booking(b)->confirmed_at_ms == h.now);
  CHECK(h.slot_status(s) == SlotStatus::booked);
  CHECK(h.engine.slot(s)->booking_id == b);
  CHECK(h.engine.pending_count() == 0);

  const std::uint64_t hash = h.engine.state_hash();
  o = h.confirm(b);
  CHECK(o.rejection == Rejection::none);
  CHECK(o.events.empty());
  // Even long after its hold would have expired, a CONFIRMED booking stays confirmed.
  h.tick(10 * kMinute);
  o = h.confirm(b);
  CHECK(o.rejection == Rejection::none);
  CHECK(o.events.empty());
  CHECK(h.expire().events.empty());
  CHECK(h.engine.state_hash() == hash);
  h.check_replay();
}

TEST_CASE("confirm: the hold is dead at expires_at exactly, even before ExpireDue runs") {
  Harness h;
  const Id d = h.add_doctor();
  const Id s1 = h.add_slot(d, kT0, kT0 + kHour);
  const Id s2 = h.add_slot(d, kT0 + kHour, kT0 + 2 * kHour);
  const Id late = h.book_ok(s1);
  const Id in_time = h.book_ok(s2);
  h.tick(120'000 - 1);
  CHECK(h.confirm(in_time).rejection == Rejection::none);  // 1 ms before expiry
  h.tick(1);
  const std::uint64_t hash = h.engine.state_hash();
  CHECK(h.confirm(late).rejection == Rejection::booking_expired);  // at expires_at
  h.tick(kHour);
  CHECK(h.confirm(late).rejection == Rejection::booking_expired);
  CHECK(h.run_refused_via_execute(ConfirmBooking{late}) == Rejection::booking_expired);
  // The refusal changed nothing: still PENDING, the slot still HELD, until ExpireDue.
  CHECK(h.engine.state_hash() == hash);
  CHECK(h.booking_status(late) == BookingStatus::pending);
  CHECK(h.slot_status(s1) == SlotStatus::held);
  CHECK(h.book(s1) == Rejection::slot_unavailable);
  Outcome o = h.expire();
  REQUIRE(o.events.size() == 1);
  CHECK(h.booking_status(late) == BookingStatus::failed);
  CHECK(h.confirm(late).rejection == Rejection::booking_failed);
  h.check_replay();
}

TEST_CASE("confirm refuses a CANCELLED booking and a FAILED one") {
  Harness h;
  const Id d = h.add_doctor();
  const Id b1 = h.book_ok(h.add_slot(d, kT0, kT0 + kHour));
  const Id b2 = h.book_ok(h.add_slot(d, kT0 + kHour, kT0 + 2 * kHour));
  REQUIRE(h.cancel(b1).rejection == Rejection::none);
  CHECK(h.confirm(b1).rejection == Rejection::booking_cancelled);
  h.tick(3 * kMinute);
  REQUIRE(h.expire().events.size() == 1);
  CHECK(h.confirm(b2).rejection == Rejection::booking_failed);
  h.check_replay();
}

// ---- CancelBooking ------------------------------------------------------------------------

TEST_CASE("cancel: PENDING or CONFIRMED → CANCELLED at now and the slot AVAILABLE again") {
  Harness h;
  const Id d = h.add_doctor();
  const Id s1 = h.add_slot(d, kT0, kT0 + kHour);
  const Id s2 = h.add_slot(d, kT0 + kHour, kT0 + 2 * kHour);
  const Id pending = h.book_ok(s1, "c");
  const Id confirmed = h.book_ok(s2, "c");
  REQUIRE(h.confirm(confirmed).rejection == Rejection::none);
  CHECK(h.cancel(0).rejection == Rejection::booking_not_found);
  CHECK(h.cancel(99).rejection == Rejection::booking_not_found);

  h.tick(kSecond);
  Outcome o = h.cancel(pending);
  REQUIRE(o.rejection == Rejection::none);
  REQUIRE(o.events.size() == 1);
  CHECK(std::get<BookingCancelled>(o.events[0]).booking_id == pending);
  CHECK(std::get<BookingCancelled>(o.events[0]).cancelled_at_ms == h.now);
  CHECK(h.booking_status(pending) == BookingStatus::cancelled);
  CHECK(h.engine.booking(pending)->ended_at_ms == h.now);
  CHECK(h.slot_status(s1) == SlotStatus::available);
  CHECK(h.engine.slot(s1)->booking_id == 0);
  CHECK(h.engine.holds_of(testing::client("c")) == 0);
  CHECK(h.engine.pending_count() == 0);

  o = h.cancel(confirmed);
  REQUIRE(o.rejection == Rejection::none);
  REQUIRE(o.events.size() == 1);
  CHECK(h.booking_status(confirmed) == BookingStatus::cancelled);
  CHECK(h.engine.booking(confirmed)->confirmed_at_ms == kT0);  // history is kept
  CHECK(h.slot_status(s2) == SlotStatus::available);

  // Cancel again: success, no events, nothing changes.
  const std::uint64_t hash = h.engine.state_hash();
  o = h.cancel(confirmed);
  CHECK(o.rejection == Rejection::none);
  CHECK(o.events.empty());
  CHECK(h.engine.state_hash() == hash);

  // The freed slot can be booked again, by a new booking.
  const Id again = h.book_ok(s1);
  CHECK(again == 3);
  CHECK(h.engine.slot(s1)->booking_id == again);
  CHECK(h.booking_status(pending) == BookingStatus::cancelled);
  h.check_replay();
}

TEST_CASE(
    "cancel refuses a FAILED booking, but a PENDING one past expires_at can still be cancelled") {
  Harness h;
  const Id d = h.add_doctor();
  const Id b1 = h.book_ok(h.add_slot(d, kT0, kT0 + kHour));
  const Id s2 = h.add_slot(d, kT0 + kHour, kT0 + 2 * kHour);
  const Id b2 = h.book_ok(s2);
  h.tick(5 * kMinute);
  // Spec: PENDING → BookingCancelled, whatever the clock says.
  Outcome o = h.cancel(b2);
  CHECK(o.rejection == Rejection::none);
  CHECK(o.events.size() == 1);
  CHECK(h.slot_status(s2) == SlotStatus::available);
  o = h.expire();
  REQUIRE(o.events.size() == 1);  // only b1 is still PENDING
  CHECK(std::get<BookingExpired>(o.events[0]).booking_id == b1);
  CHECK(h.cancel(b1).rejection == Rejection::booking_failed);
  CHECK(h.run_refused_via_execute(CancelBooking{b1}) == Rejection::booking_failed);
  h.check_replay();
}

// ---- CloseSlot ------------------------------------------------------------------------------

TEST_CASE("close: AVAILABLE → CLOSED, again is a no-op, HELD or BOOKED is slot_booked") {
  Harness h;
  const Id d = h.add_doctor();
  const Id free = h.add_slot(d, kT0, kT0 + kHour);
  const Id held = h.add_slot(d, kT0 + kHour, kT0 + 2 * kHour);
  const Id booked = h.add_slot(d, kT0 + 2 * kHour, kT0 + 3 * kHour);
  const Id hold = h.book_ok(held);
  REQUIRE(h.confirm(h.book_ok(booked)).rejection == Rejection::none);

  CHECK(h.close(0).rejection == Rejection::slot_not_found);
  CHECK(h.close(99).rejection == Rejection::slot_not_found);
  CHECK(h.close(held).rejection == Rejection::slot_booked);
  CHECK(h.close(booked).rejection == Rejection::slot_booked);
  CHECK(h.slot_status(held) == SlotStatus::held);
  CHECK(h.slot_status(booked) == SlotStatus::booked);

  Outcome o = h.close(free);
  REQUIRE(o.rejection == Rejection::none);
  REQUIRE(o.events.size() == 1);
  CHECK(std::get<SlotClosed>(o.events[0]).slot_id == free);
  CHECK(h.slot_status(free) == SlotStatus::closed);
  o = h.close(free);
  CHECK(o.rejection == Rejection::none);
  CHECK(o.events.empty());
  CHECK(h.book(free) == Rejection::slot_unavailable);

  // Once the hold ends the slot can be closed.
  REQUIRE(h.cancel(hold).rejection == Rejection::none);
  CHECK(h.close(held).rejection == Rejection::none);
  CHECK(h.slot_status(held) == SlotStatus::closed);
  h.check_replay();
}

// ---- ExpireDue --------------------------------------------------------------------------------

TEST_CASE("expire: nothing due is a success with no events") {
  Harness h;
  CHECK(h.expire().rejection == Rejection::none);
  const Id b = h.book_ok(h.add_slot(h.add_doctor(), kT0, kT0 + kHour));
  h.tick(120'000 - 1);
  Outcome o = h.expire();
  CHECK(o.rejection == Rejection::none);
  CHECK(o.events.empty());
  CHECK(h.booking_status(b) == BookingStatus::pending);
}

TEST_CASE("expire: PENDING holds with expires_at <= now fail and free their slots, others stay") {
  Harness h;
  const Id d = h.add_doctor();
  std::vector<Id> s;
  for (int i = 0; i < 4; ++i) s.push_back(h.add_slot(d, kT0 + i * kHour, kT0 + (i + 1) * kHour));
  const Id due = h.book_ok(s[0], "c");
  const Id confirmed = h.book_ok(s[1]);
  const Id cancelled = h.book_ok(s[2]);
  REQUIRE(h.confirm(confirmed).rejection == Rejection::none);
  REQUIRE(h.cancel(cancelled).rejection == Rejection::none);
  h.tick(kSecond);
  const Id not_yet = h.book_ok(s[3]);

  h.tick(120'000 - kSecond);  // exactly due's expires_at
  Outcome o = h.expire();
  REQUIRE(o.rejection == Rejection::none);
  REQUIRE(o.events.size() == 1);
  CHECK(std::get<BookingExpired>(o.events[0]).booking_id == due);
  CHECK(std::get<BookingExpired>(o.events[0]).expired_at_ms == h.now);
  CHECK(h.booking_status(due) == BookingStatus::failed);
  CHECK(h.engine.booking(due)->ended_at_ms == h.now);
  CHECK(h.slot_status(s[0]) == SlotStatus::available);
  CHECK(h.engine.slot(s[0])->booking_id == 0);
  CHECK(h.engine.holds_of(testing::client("c")) == 0);
  CHECK(h.booking_status(confirmed) == BookingStatus::confirmed);
  CHECK(h.booking_status(cancelled) == BookingStatus::cancelled);
  CHECK(h.booking_status(not_yet) == BookingStatus::pending);
  CHECK(h.engine.pending_count() == 1);
  CHECK(h.expire().events.empty());  // nothing else due yet
  h.tick(kSecond);
  o = h.expire();
  REQUIRE(o.events.size() == 1);
  CHECK(std::get<BookingExpired>(o.events[0]).booking_id == not_yet);
  h.check_replay();
}

TEST_CASE("expire: in (expires_at, id) order, at most max_expiries_per_command per command") {
  Harness h(EngineConfig{.max_expiries_per_command = 3});
  const Id d = h.add_doctor();
  std::vector<Id> s;
  for (int i = 0; i < 6; ++i) s.push_back(h.add_slot(d, kT0 + i * kHour, kT0 + (i + 1) * kHour));
  auto set_ttl = [&](TimeMs ttl) {
    EngineConfig c = h.engine.config();
    c.hold_ttl_ms = ttl;
    h.engine.set_config(c);
  };
  // Booking ids 1..6 with expiries chosen out of id order; 2 and 5 expire together.
  set_ttl(50 * kSecond);
  h.book_ok(s[0]);  // 1: +50s
  set_ttl(20 * kSecond);
  h.book_ok(s[1]);  // 2: +20s
  set_ttl(40 * kSecond);
  h.book_ok(s[2]);  // 3: +40s
  set_ttl(10 * kSecond);
  h.book_ok(s[3]);  // 4: +10s
  set_ttl(20 * kSecond);
  h.book_ok(s[4]);  // 5: +20s
  set_ttl(30 * kSecond);
  h.book_ok(s[5]);  // 6: +30s

  h.tick(kMinute);
  auto expired_ids = [](const Outcome& o) {
    std::vector<Id> ids;
    for (const Event& e : o.events) ids.push_back(std::get<BookingExpired>(e).booking_id);
    return ids;
  };
  Outcome o = h.expire();
  CHECK(expired_ids(o) == std::vector<Id>{4, 2, 5});
  CHECK(h.engine.pending_count() == 3);
  o = h.expire();
  CHECK(expired_ids(o) == std::vector<Id>{6, 3, 1});
  CHECK(h.expire().events.empty());
  CHECK(h.engine.pending_count() == 0);
  h.check_replay();
}

TEST_CASE("expire after replay: a replayed engine expires the same holds as the original") {
  Harness h;
  const Id d = h.add_doctor();
  for (int i = 0; i < 5; ++i) {
    h.book_ok(h.add_slot(d, kT0 + i * kHour, kT0 + (i + 1) * kHour));
    h.tick(10 * kSecond);
  }
  REQUIRE(h.confirm(2).rejection == Rejection::none);
  REQUIRE(h.cancel(4).rejection == Rejection::none);
  Engine replayed(h.engine.config());
  for (const Event& e : h.journal) replayed.apply(e);
  REQUIRE(replayed.state_hash() == h.engine.state_hash());

  h.tick(2 * kMinute);
  std::vector<Event> original_events;
  std::vector<Event> replayed_events;
  REQUIRE(h.engine.execute(ExpireDue{}, h.now, original_events) == Rejection::none);
  REQUIRE(replayed.execute(ExpireDue{}, h.now, replayed_events) == Rejection::none);
  REQUIRE(original_events.size() == 3);
  REQUIRE(replayed_events.size() == 3);
  for (std::size_t i = 0; i < 3; ++i)
    CHECK(describe(original_events[i]) == describe(replayed_events[i]));
  CHECK(replayed.state_hash() == h.engine.state_hash());
}

// ---- RescheduleBooking ---------------------------------------------------------------------

TEST_CASE("reschedule: a CONFIRMED booking moves in one event, stays CONFIRMED, the old slot is AVAILABLE") {
  Harness h;
  const Id d = h.add_doctor();
  const Id s1 = h.add_slot(d, kT0 + kHour, kT0 + 2 * kHour);
  const Id s2 = h.add_slot(d, kT0 + 3 * kHour, kT0 + 4 * kHour);
  const Id b = h.book_ok(s1);
  REQUIRE(h.confirm(b).rejection == Rejection::none);
  h.tick(kSecond);
  Outcome o = h.reschedule(b, s2);
  REQUIRE(o.rejection == Rejection::none);
  REQUIRE(o.events.size() == 1);
  const auto& e = std::get<BookingRescheduled>(o.events[0]);
  CHECK(e.booking_id == b);
  CHECK(e.from_slot_id == s1);
  CHECK(e.to_slot_id == s2);
  CHECK(e.status == BookingStatus::confirmed);
  CHECK(e.rescheduled_at_ms == h.now);
  CHECK(h.booking_status(b) == BookingStatus::confirmed);
  CHECK(h.engine.booking(b)->slot_id == s2);
  CHECK(h.engine.booking(b)->held_slot_id == s1);  // where it was made stays on record
  CHECK(h.engine.booking(b)->reschedules == 1);
  CHECK(h.slot_status(s1) == SlotStatus::available);
  CHECK(h.engine.slot(s1)->booking_id == 0);
  CHECK(h.slot_status(s2) == SlotStatus::booked);
  CHECK(h.engine.slot(s2)->booking_id == b);
  CHECK(h.engine.count(SlotStatus::booked) == 1);
  CHECK(h.engine.count(SlotStatus::available) == 1);
  // The old slot is free for anyone; the booking can move back, and be cancelled there.
  CHECK(h.reschedule(b, s1).rejection == Rejection::none);
  CHECK(h.engine.booking(b)->reschedules == 2);
  REQUIRE(h.cancel(b).rejection == Rejection::none);
  CHECK(h.slot_status(s1) == SlotStatus::available);
  CHECK(h.slot_status(s2) == SlotStatus::available);
  h.check_replay();
}

TEST_CASE("reschedule: a PENDING hold keeps its expires_at, so moving never extends it") {
  Harness h(EngineConfig{.max_holds_per_client = 1});
  const Id other = h.add_doctor("Dr. Other");
  const Id d = h.add_doctor();
  const Id s1 = h.add_slot(d, kT0 + kHour, kT0 + 2 * kHour);
  const Id s2 = h.add_slot(other, kT0 + kHour, kT0 + 2 * kHour);  // another doctor's slot
  const Id b = h.book_ok(s1, "c");
  const TimeMs expires_at = h.engine.booking(b)->expires_at_ms;
  h.tick(100 * kSecond);
  REQUIRE(h.reschedule(b, s2).rejection == Rejection::none);
  CHECK(h.booking_status(b) == BookingStatus::pending);
  CHECK(h.slot_status(s2) == SlotStatus::held);
  CHECK(h.engine.booking(b)->expires_at_ms == expires_at);
  CHECK(h.engine.holds_of(testing::client("c")) == 1);  // still one hold
  CHECK(h.engine.pending_count() == 1);
  h.tick(expires_at - h.now - 1);
  CHECK(h.expire().events.empty());
  h.tick(1);
  Outcome o = h.expire();
  REQUIRE(o.events.size() == 1);
  CHECK(std::get<BookingExpired>(o.events[0]).slot_id == s2);
  CHECK(h.slot_status(s2) == SlotStatus::available);
  CHECK(h.slot_status(s1) == SlotStatus::available);
  h.check_replay();
}

TEST_CASE("reschedule refuses, in order: unknown booking, cancelled, failed, expired hold, unknown slot, taken slot") {
  Harness h;
  const Id d = h.add_doctor();
  const Id s1 = h.add_slot(d, kT0 + kHour, kT0 + 2 * kHour);
  const Id s2 = h.add_slot(d, kT0 + 2 * kHour, kT0 + 3 * kHour);
  const Id s3 = h.add_slot(d, kT0 + 3 * kHour, kT0 + 4 * kHour);
  const Id s4 = h.add_slot(d, kT0 + 4 * kHour, kT0 + 5 * kHour);
  const Id cancelled = h.book_ok(s1);
  REQUIRE(h.cancel(cancelled).rejection == Rejection::none);
  const Id mover = h.book_ok(s1);
  REQUIRE(h.confirm(mover).rejection == Rejection::none);
  const Id holder = h.book_ok(s2);
  REQUIRE(h.close(s4).rejection == Rejection::none);

  CHECK(h.run_refused_via_execute(RescheduleBooking{0, s3}) == Rejection::booking_not_found);
  CHECK(h.run_refused_via_execute(RescheduleBooking{99, s3}) == Rejection::booking_not_found);
  CHECK(h.run_refused_via_execute(RescheduleBooking{cancelled, 99}) == Rejection::booking_cancelled);
  CHECK(h.run_refused_via_execute(RescheduleBooking{mover, 99}) == Rejection::slot_not_found);
  CHECK(h.run_refused_via_execute(RescheduleBooking{mover, s2}) == Rejection::slot_unavailable);  // HELD
  CHECK(h.run_refused_via_execute(RescheduleBooking{holder, s1}) == Rejection::slot_unavailable);  // BOOKED
  CHECK(h.run_refused_via_execute(RescheduleBooking{mover, s4}) == Rejection::slot_unavailable);  // CLOSED
  // A refused move leaves both slots as they were.
  CHECK(h.slot_status(s1) == SlotStatus::booked);
  CHECK(h.slot_status(s2) == SlotStatus::held);
  // At expires_at the hold is dead for moving, as for confirming, before ExpireDue runs.
  h.tick(120 * kSecond);
  CHECK(h.run_refused_via_execute(RescheduleBooking{holder, 99}) == Rejection::booking_expired);
  REQUIRE(h.expire().events.size() == 1);
  CHECK(h.run_refused_via_execute(RescheduleBooking{holder, s3}) == Rejection::booking_failed);
  CHECK(h.slot_status(s3) == SlotStatus::available);
  h.check_replay();
}

TEST_CASE("reschedule onto the booking's own slot is a success with no events") {
  Harness h;
  const Id s = h.add_slot(h.add_doctor(), kT0 + kHour, kT0 + 2 * kHour);
  const Id b = h.book_ok(s);
  const std::uint64_t hash = h.engine.state_hash();
  Outcome o = h.reschedule(b, s);
  CHECK(o.rejection == Rejection::none);
  CHECK(o.events.empty());
  CHECK(h.engine.state_hash() == hash);
}

TEST_CASE("reschedule remembers its Idempotency-Key: the same request is answered, another is refused") {
  Harness h;
  const Id d = h.add_doctor();
  const Id s1 = h.add_slot(d, kT0 + kHour, kT0 + 2 * kHour);
  const Id s2 = h.add_slot(d, kT0 + 2 * kHour, kT0 + 3 * kHour);
  const Id s3 = h.add_slot(d, kT0 + 3 * kHour, kT0 + 4 * kHour);
  const Id b = h.book_ok(s1);
  const IdempotencyKey key{testing::key("move-1"), 41};
  REQUIRE(h.run(RescheduleBooking{b, s2, key}).rejection == Rejection::none);
  const RememberedRequest* done = h.engine.remembered(key.key);
  REQUIRE(done != nullptr);
  CHECK(done->booking_id == b);
  CHECK(done->seq == h.engine.applied_events());
  CHECK(h.run(RescheduleBooking{b, s2, key}).rejection == Rejection::duplicate_request);
  CHECK(h.run(RescheduleBooking{b, s3, IdempotencyKey{key.key, 42}}).rejection ==
        Rejection::idempotency_key_reused);
  CHECK(h.slot_status(s3) == SlotStatus::available);
  h.check_replay();
}

// ---- Waitlist -----------------------------------------------------------------------------

TEST_CASE("waitlist: a cancelled slot goes to the oldest matching entry as a hold in the same command") {
  Harness h;
  const Id d = h.add_doctor();
  const Id other = h.add_doctor("Dr. Other");
  const Id s1 = h.add_slot(d, kT0 + 2 * kHour, kT0 + 3 * kHour);
  const Id b = h.book_ok(s1);
  REQUIRE(h.confirm(b).rejection == Rejection::none);
  h.join(other, kT0, kT0 + 24 * kHour, "Other Doctor");            // wrong doctor
  h.join(d, kT0 + 3 * kHour, kT0 + 24 * kHour, "Too Late");        // range after the slot
  const Id oldest = h.join(d, kT0, kT0 + 24 * kHour, "Olga Oldest", "olga");
  const Id younger = h.join(d, kT0 + 2 * kHour, kT0 + 2 * kHour + 1, "Yuri Younger");
  CHECK(h.engine.waiting_for(d) == std::vector<std::uint32_t>{2, 3, 4});

  h.tick(kMinute);
  Outcome o = h.cancel(b);
  REQUIRE(o.rejection == Rejection::none);
  REQUIRE(o.events.size() == 3);
  CHECK(std::holds_alternative<BookingCancelled>(o.events[0]));
  const auto& held = std::get<SlotHeld>(o.events[1]);
  const Id offer = b + 1;
  CHECK(held.booking_id == offer);
  CHECK(held.slot_id == s1);
  CHECK(held.patient_name == "Olga Oldest");
  CHECK(held.client == testing::client("olga"));
  CHECK(held.token == token_of(100 + 3));  // the entry's offer token
  CHECK(held.created_at_ms == h.now);
  CHECK(held.expires_at_ms == h.now + h.engine.config().hold_ttl_ms);
  CHECK(held.idempotency.key.empty());
  const auto& offered = std::get<WaitlistOffered>(o.events[2]);
  CHECK(offered.entry_id == oldest);
  CHECK(offered.booking_id == offer);
  CHECK(offered.slot_id == s1);
  CHECK(h.slot_status(s1) == SlotStatus::held);
  CHECK(h.entry_status(oldest) == WaitlistStatus::offered);
  CHECK(h.engine.waitlist_entry(oldest)->booking_id == offer);
  CHECK(h.entry_status(younger) == WaitlistStatus::waiting);
  CHECK(h.engine.waiting_for(d) == std::vector<std::uint32_t>{2, 4});
  // The offer is an ordinary booking: it confirms like any other.
  CHECK(h.confirm(offer).rejection == Rejection::none);
  CHECK(h.slot_status(s1) == SlotStatus::booked);
  h.check_replay();
}

TEST_CASE("waitlist: an offer that expires goes to the next entry, an entry is served once") {
  Harness h;
  const Id d = h.add_doctor();
  const Id s = h.add_slot(d, kT0 + 5 * kHour, kT0 + 6 * kHour);
  const Id b = h.book_ok(s);
  const Id first = h.join(d, kT0, kT0 + 24 * kHour, "First");
  const Id second = h.join(d, kT0, kT0 + 24 * kHour, "Second");
  h.tick(120 * kSecond);
  Outcome o = h.expire();  // b expires: its slot goes to `first`
  REQUIRE(o.events.size() == 3);
  CHECK(std::get<BookingExpired>(o.events[0]).booking_id == b);
  CHECK(std::get<WaitlistOffered>(o.events[2]).entry_id == first);
  const Id first_offer = std::get<SlotHeld>(o.events[1]).booking_id;
  h.tick(120 * kSecond);
  o = h.expire();  // the offer expires unconfirmed: the slot goes to `second`, not back to `first`
  REQUIRE(o.events.size() == 3);
  CHECK(std::get<BookingExpired>(o.events[0]).booking_id == first_offer);
  CHECK(std::get<WaitlistOffered>(o.events[2]).entry_id == second);
  CHECK(h.entry_status(first) == WaitlistStatus::offered);
  const Id second_offer = std::get<SlotHeld>(o.events[1]).booking_id;
  h.tick(120 * kSecond);
  o = h.expire();  // nobody is left waiting: the slot stays AVAILABLE
  REQUIRE(o.events.size() == 1);
  CHECK(std::get<BookingExpired>(o.events[0]).booking_id == second_offer);
  CHECK(h.slot_status(s) == SlotStatus::available);
  h.check_replay();
}

TEST_CASE("waitlist: one ExpireDue that frees several slots serves a different entry for each, oldest first") {
  Harness h;
  const Id d = h.add_doctor();
  const Id s1 = h.add_slot(d, kT0 + 2 * kHour, kT0 + 3 * kHour);
  const Id s2 = h.add_slot(d, kT0 + 4 * kHour, kT0 + 5 * kHour);
  const Id s3 = h.add_slot(d, kT0 + 6 * kHour, kT0 + 7 * kHour);
  h.book_ok(s3);
  h.book_ok(s1);
  h.book_ok(s2);
  const Id e1 = h.join(d, kT0, kT0 + 24 * kHour);
  const Id e2 = h.join(d, kT0 + 4 * kHour, kT0 + 5 * kHour);  // only s2
  const Id e3 = h.join(d, kT0, kT0 + 24 * kHour);
  h.tick(3 * kMinute);
  Outcome o = h.expire();
  // Expiry order is (expires_at, id): s3's hold, then s1's, then s2's.
  REQUIRE(o.events.size() == 9);
  CHECK(std::get<WaitlistOffered>(o.events[2]) .entry_id == e1);
  CHECK(std::get<WaitlistOffered>(o.events[2]).slot_id == s3);
  CHECK(std::get<WaitlistOffered>(o.events[5]).entry_id == e3);
  CHECK(std::get<WaitlistOffered>(o.events[5]).slot_id == s1);
  CHECK(std::get<WaitlistOffered>(o.events[8]).entry_id == e2);
  CHECK(std::get<WaitlistOffered>(o.events[8]).slot_id == s2);
  // Offer booking ids continue in event order.
  CHECK(std::get<SlotHeld>(o.events[1]).booking_id == 4);
  CHECK(std::get<SlotHeld>(o.events[4]).booking_id == 5);
  CHECK(std::get<SlotHeld>(o.events[7]).booking_id == 6);
  CHECK(h.engine.count(SlotStatus::held) == 3);
  h.check_replay();
}

TEST_CASE("waitlist: joining while a slot in the range is AVAILABLE offers the earliest one at once") {
  Harness h;
  const Id d = h.add_doctor();
  h.tick(kHour);
  const Id started = h.add_slot(d, kT0, kT0 + 2 * kHour);           // began an hour ago
  const Id later = h.add_slot(d, kT0 + 5 * kHour, kT0 + 6 * kHour);
  const Id earlier = h.add_slot(d, kT0 + 3 * kHour, kT0 + 4 * kHour);
  Outcome o = h.run(JoinWaitlist{d, kT0, kT0 + 24 * kHour, "Ida", 0, token_of(1), token_of(2)});
  REQUIRE(o.rejection == Rejection::none);
  REQUIRE(o.events.size() == 3);
  CHECK(std::get<WaitlistJoined>(o.events[0]).created_at_ms == h.now);
  CHECK(std::get<SlotHeld>(o.events[1]).slot_id == earlier);
  CHECK(std::get<SlotHeld>(o.events[1]).patient_name == "Ida");
  CHECK(std::get<SlotHeld>(o.events[1]).token == token_of(2));
  CHECK(std::get<WaitlistOffered>(o.events[2]).entry_id == 1);
  CHECK(h.slot_status(later) == SlotStatus::available);
  CHECK(h.slot_status(started) == SlotStatus::available);
  // A range holding only a slot that has started waits.
  o = h.run(JoinWaitlist{d, kT0, kT0 + 2 * kHour, "Jo", 0, token_of(3), token_of(4)});
  REQUIRE(o.events.size() == 1);
  CHECK(h.entry_status(2) == WaitlistStatus::waiting);
  h.check_replay();
}

TEST_CASE("waitlist: new slots are offered in request order, each to the oldest entry that wants it") {
  Harness h;
  const Id d = h.add_doctor();
  const Id e1 = h.join(d, kT0 + 2 * kHour, kT0 + 3 * kHour);
  const Id e2 = h.join(d, kT0 + 4 * kHour, kT0 + 5 * kHour);
  const Id e3 = h.join(d, kT0, kT0 + 24 * kHour);
  Outcome o = h.run(CreateSlots{d, {{kT0 + 4 * kHour, kT0 + 5 * kHour}, {kT0 + 2 * kHour, kT0 + 3 * kHour}}});
  REQUIRE(o.rejection == Rejection::none);
  REQUIRE(o.events.size() == 6);
  CHECK(std::get<SlotCreated>(o.events[0]).slot_id == 1);
  CHECK(std::get<SlotCreated>(o.events[1]).slot_id == 2);
  CHECK(std::get<SlotHeld>(o.events[2]).slot_id == 1);
  CHECK(std::get<WaitlistOffered>(o.events[3]).entry_id == e2);
  CHECK(std::get<SlotHeld>(o.events[4]).slot_id == 2);
  CHECK(std::get<WaitlistOffered>(o.events[5]).entry_id == e1);
  CHECK(h.entry_status(e3) == WaitlistStatus::waiting);
  h.check_replay();
}

TEST_CASE("waitlist: a moved booking's old slot is offered in the move's command") {
  Harness h;
  const Id d = h.add_doctor();
  const Id s1 = h.add_slot(d, kT0 + 2 * kHour, kT0 + 3 * kHour);
  const Id s2 = h.add_slot(d, kT0 + 5 * kHour, kT0 + 6 * kHour);
  const Id b = h.book_ok(s1);
  REQUIRE(h.confirm(b).rejection == Rejection::none);
  const Id e = h.join(d, kT0 + 2 * kHour, kT0 + 3 * kHour);  // s2 is outside its range
  CHECK(h.entry_status(e) == WaitlistStatus::waiting);
  Outcome o = h.reschedule(b, s2);
  REQUIRE(o.events.size() == 3);
  CHECK(std::get<BookingRescheduled>(o.events[0]).to_slot_id == s2);
  CHECK(std::get<SlotHeld>(o.events[1]).slot_id == s1);
  CHECK(std::get<WaitlistOffered>(o.events[2]).entry_id == e);
  CHECK(h.slot_status(s1) == SlotStatus::held);
  CHECK(h.slot_status(s2) == SlotStatus::booked);
  h.check_replay();
}

TEST_CASE("waitlist: a slot that has started is never offered") {
  Harness h;
  const Id d = h.add_doctor();
  const Id s = h.add_slot(d, kT0 + kHour, kT0 + 2 * kHour);
  const Id b = h.book_ok(s);
  const Id e = h.join(d, kT0, kT0 + 24 * kHour);
  h.tick(kHour);  // now == the slot's start
  Outcome o = h.cancel(b);
  REQUIRE(o.events.size() == 1);
  CHECK(h.slot_status(s) == SlotStatus::available);
  CHECK(h.entry_status(e) == WaitlistStatus::waiting);
  h.check_replay();
}

TEST_CASE("waitlist: leaving stops offers, again is a no-op, after the offer it is waitlist_entry_served") {
  Harness h;
  const Id d = h.add_doctor();
  const Id s = h.add_slot(d, kT0 + 2 * kHour, kT0 + 3 * kHour);
  const Id b = h.book_ok(s);
  const Id e1 = h.join(d, kT0, kT0 + 24 * kHour);
  const Id e2 = h.join(d, kT0, kT0 + 24 * kHour);
  CHECK(h.run_refused_via_execute(LeaveWaitlist{0}) == Rejection::waitlist_entry_not_found);
  CHECK(h.run_refused_via_execute(LeaveWaitlist{3}) == Rejection::waitlist_entry_not_found);
  h.tick(kSecond);
  Outcome o = h.run(LeaveWaitlist{e1});
  REQUIRE(o.rejection == Rejection::none);
  REQUIRE(o.events.size() == 1);
  CHECK(std::get<WaitlistLeft>(o.events[0]).left_at_ms == h.now);
  CHECK(h.entry_status(e1) == WaitlistStatus::cancelled);
  CHECK(h.engine.waiting_for(d) == std::vector<std::uint32_t>{2});
  const std::uint64_t hash = h.engine.state_hash();
  o = h.run(LeaveWaitlist{e1});
  CHECK(o.rejection == Rejection::none);
  CHECK(o.events.empty());
  CHECK(h.engine.state_hash() == hash);
  REQUIRE(h.cancel(b).rejection == Rejection::none);
  CHECK(h.entry_status(e2) == WaitlistStatus::offered);
  CHECK(h.run_refused_via_execute(LeaveWaitlist{e2}) == Rejection::waitlist_entry_served);
  h.check_replay();
}

TEST_CASE("waitlist: join refuses an unknown doctor, a bad name, an empty range and one that has passed") {
  Harness h(EngineConfig{.max_name_bytes = 20});
  const Id d = h.add_doctor("Dr. Short");
  h.tick(kHour);
  auto join = [&](Id doctor, TimeMs from, TimeMs to, std::string name) {
    return h.run_refused_via_execute(JoinWaitlist{doctor, from, to, std::move(name), 0, token_of(1), token_of(2)});
  };
  CHECK(join(0, kT0, kT0 + 24 * kHour, "Ann") == Rejection::doctor_not_found);
  CHECK(join(d + 1, kT0, kT0 + 24 * kHour, "Ann") == Rejection::doctor_not_found);
  CHECK(join(d, kT0, kT0 + 24 * kHour, "") == Rejection::invalid_name);
  CHECK(join(d, kT0, kT0 + 24 * kHour, std::string(21, 'n')) == Rejection::invalid_name);
  CHECK(join(d, kT0 + 2 * kHour, kT0 + 2 * kHour, "Ann") == Rejection::invalid_time_range);
  CHECK(join(d, kT0 + 3 * kHour, kT0 + 2 * kHour, "Ann") == Rejection::invalid_time_range);
  CHECK(join(d, kT0 - kHour, h.now, "Ann") == Rejection::invalid_time_range);  // over
  CHECK(join(d, kMinInstantMs - 1, kT0 + 2 * kHour, "Ann") == Rejection::invalid_time_range);
  CHECK(h.engine.waitlist().size() == 0);
  // A range that began in the past but has not ended is fine.
  CHECK(h.run(JoinWaitlist{d, kT0, h.now + 1, "Ann", 0, token_of(1), token_of(2)}).rejection ==
        Rejection::none);
}

TEST_CASE("waitlist: an offer counts as a hold of the entry's client but is never refused for the cap") {
  Harness h(EngineConfig{.max_holds_per_client = 1});
  const Id d = h.add_doctor();
  const Id s1 = h.add_slot(d, kT0 + 2 * kHour, kT0 + 3 * kHour);
  const Id s2 = h.add_slot(d, kT0 + 4 * kHour, kT0 + 5 * kHour);
  h.book_ok(s1, "c");
  const Id other = h.book_ok(s2, "o");
  h.join(d, kT0, kT0 + 24 * kHour, "Cy", "c");  // nothing free: it waits
  REQUIRE(h.cancel(other).rejection == Rejection::none);
  CHECK(h.slot_status(s2) == SlotStatus::held);
  CHECK(h.engine.holds_of(testing::client("c")) == 2);
  const Id s3 = h.add_slot(d, kT0 + 6 * kHour, kT0 + 7 * kHour);  // nobody waits for it
  CHECK(h.book(s3, "Cy", "c") == Rejection::too_many_holds);
  h.check_replay();
}

TEST_CASE("state_hash covers every field of a waitlist entry") {
  struct Knobs {
    Id doctor = 1;
    TimeMs from = kT0;
    TimeMs to = kT0 + kHour;
    std::string name = "Ann";
    std::string client = "c";
    Token token = token_of(1);
    Token offer_token = token_of(2);
    TimeMs at = kT0;
  };
  auto hash_of = [](const Knobs& k) {
    Engine e;
    std::vector<Event> out;
    REQUIRE(e.execute(AddDoctor{1, "Dr. A", "GP"}, kT0, out) == Rejection::none);
    REQUIRE(e.execute(AddDoctor{1, "Dr. B", "GP"}, kT0, out) == Rejection::none);
    REQUIRE(e.execute(JoinWaitlist{k.doctor, k.from, k.to, k.name, testing::client(k.client), k.token,
                                   k.offer_token},
                      k.at, out) == Rejection::none);
    return e.state_hash();
  };
  const Knobs base;
  const std::uint64_t h = hash_of(base);
  auto differs = [&](auto change) {
    Knobs k = base;
    change(k);
    return hash_of(k) != h;
  };
  CHECK(differs([](Knobs& k) { k.doctor = 2; }));
  CHECK(differs([](Knobs& k) { k.from += 1; }));
  CHECK(differs([](Knobs& k) { k.to += 1; }));
  CHECK(differs([](Knobs& k) { k.name = "Anne"; }));
  CHECK(differs([](Knobs& k) { k.client = "d"; }));
  CHECK(differs([](Knobs& k) { k.token = token_of(3); }));
  CHECK(differs([](Knobs& k) { k.offer_token = token_of(3); }));
  CHECK(differs([](Knobs& k) { k.at += 1; }));
}

// ---- Hash, execute, affected_doctor ----------------------------------------------------------

TEST_CASE("state_hash differs when any logical field differs") {
  // One script with knobs; each variant changes exactly one field of the final state.
  struct Knobs {
    std::string clinic = "North";
    std::string doctor = "Dr. A";
    std::string specialty = "GP";
    TimeMs slot_end = kT0 + kHour;
    std::string patient = "Ann";
    std::string client = "c";
    Token token = token_of(1);
    TimeMs booked_at = kT0;
    TimeMs ttl = 120'000;
    TimeMs confirmed_at = kT0 + kSecond;
    TimeMs cancelled_at = kT0 + 2 * kSecond;
  };
  auto hash_of = [](const Knobs& k) {
    Engine e(EngineConfig{.hold_ttl_ms = k.ttl});
    std::vector<Event> out;
    REQUIRE(e.execute(AddClinic{k.clinic}, kT0, out) == Rejection::none);
    REQUIRE(e.execute(AddDoctor{2, k.doctor, k.specialty}, kT0, out) == Rejection::none);
    REQUIRE(e.execute(CreateSlots{1, {{kT0, k.slot_end}, {kT0 + 2 * kHour, kT0 + 3 * kHour}}}, kT0,
                      out) == Rejection::none);
    REQUIRE(e.execute(BookSlot{1, k.patient, testing::client(k.client), k.token}, k.booked_at, out) ==
            Rejection::none);
    REQUIRE(e.execute(BookSlot{2, "Bob", 0, token_of(9)}, kT0, out) == Rejection::none);
    REQUIRE(e.execute(ConfirmBooking{1}, k.confirmed_at, out) == Rejection::none);
    REQUIRE(e.execute(CancelBooking{2}, k.cancelled_at, out) == Rejection::none);
    return e.state_hash();
  };
  const Knobs base;
  const std::uint64_t h = hash_of(base);
  CHECK(hash_of(base) == h);
  auto differs = [&](auto change) {
    Knobs k = base;
    change(k);
    return hash_of(k) != h;
  };
  CHECK(differs([](Knobs& k) { k.clinic = "South"; }));
  CHECK(differs([](Knobs& k) { k.doctor = "Dr. B"; }));
  CHECK(differs([](Knobs& k) { k.specialty = "ENT"; }));
  CHECK(differs([](Knobs& k) { k.slot_end += 1; }));
  CHECK(differs([](Knobs& k) { k.patient = "Anne"; }));
  CHECK(differs([](Knobs& k) { k.client = "d"; }));
  CHECK(differs([](Knobs& k) { k.token = token_of(2); }));
  CHECK(differs([](Knobs& k) { k.booked_at += 1; }));     // created_at and expires_at
  CHECK(differs([](Knobs& k) { k.ttl += 1; }));           // expires_at alone
  CHECK(differs([](Knobs& k) { k.confirmed_at += 1; }));  // confirmed_at alone
  CHECK(differs([](Knobs& k) { k.cancelled_at += 1; }));  // ended_at alone
  // Moving bytes between two adjacent strings must not collide.
  CHECK(differs([](Knobs& k) {
    k.patient = "Annc";
    k.client = "";
  }));
}

TEST_CASE("execute is decide followed by apply of each event") {
  Harness h;
  const Id d = h.add_doctor();
  h.add_slot(d, kT0, kT0 + kHour);
  Engine copy(h.engine.config());
  for (const Event& e : h.journal) copy.apply(e);
  std::vector<Event> out;
  CHECK(copy.execute(BookSlot{1, "Ann Lee", 0, token_of(7)}, h.now, out) == Rejection::none);
  CHECK(out.size() == 1);
  h.book_ok(1);
  CHECK(copy.state_hash() == h.engine.state_hash());
  CHECK(copy.execute(BookSlot{1, "Ann Lee", 0, token_of(7)}, h.now, out) ==
        Rejection::slot_unavailable);
  CHECK(out.size() == 1);
  CHECK(copy.state_hash() == h.engine.state_hash());
}

TEST_CASE("affected_doctor names the doctor whose slots each event changes") {
  Harness h;
  const Id d1 = h.add_doctor("Dr. One");
  const Id d2 = h.add_doctor("Dr. Two");
  const Id s1 = h.add_slot(d1, kT0, kT0 + kHour);
  const Id s2 = h.add_slot(d2, kT0, kT0 + kHour);
  const Id s3 = h.add_slot(d2, kT0 + kHour, kT0 + 2 * kHour);
  const Id b1 = h.book_ok(s1);
  const Id b2 = h.book_ok(s2);
  REQUIRE(h.confirm(b1).rejection == Rejection::none);
  REQUIRE(h.cancel(b1).rejection == Rejection::none);
  REQUIRE(h.close(s3).rejection == Rejection::none);
  h.tick(kHour);
  REQUIRE(h.expire().events.size() == 1);
  REQUIRE(h.run(AddClinic{"North"}).rejection == Rejection::none);

  std::vector<Id> doctors;
  for (const Event& e : h.journal) {
    if (std::holds_alternative<DoctorAdded>(e)) continue;  // a new doctor: either answer is fine
    doctors.push_back(affected_doctor(h.engine, e));
  }
  // SlotCreated ×3, SlotHeld ×2, Confirmed, Cancelled, Closed, Expired(b2), ClinicAdded.
  CHECK(doctors == std::vector<Id>{d1, d2, d2, d1, d2, d1, d1, d2, d2, 0});
  (void)b2;
}

// ---- Scenarios (scripts) ----------------------------------------------------------------

TEST_CASE("scenario: book, race, confirm, expire, late confirm, rebook, cancel, close") {
  Harness h;
  const Id d = h.add_doctor();
  REQUIRE(h.create(d, {{kT0 + kHour, kT0 + 2 * kHour}, {kT0 + 2 * kHour, kT0 + 3 * kHour}}) ==
          Rejection::none);

  // book 1 → PENDING
  const Id first = h.book_ok(1);
  CHECK(h.booking_status(first) == BookingStatus::pending);
  CHECK(h.slot_status(1) == SlotStatus::held);
  // book 1 again → slot_unavailable
  CHECK(h.book(1, "Bob Stone") == Rejection::slot_unavailable);
  // confirm → CONFIRMED
  h.tick(20 * kSecond);
  CHECK(h.confirm(first).rejection == Rejection::none);
  CHECK(h.booking_status(first) == BookingStatus::confirmed);
  CHECK(h.slot_status(1) == SlotStatus::booked);
  // book 2 → PENDING; tick 119.999 s → still PENDING after ExpireDue
  const Id second = h.book_ok(2, "web-1");
  h.tick(120'000 - 1);
  CHECK(h.expire().events.empty());
  CHECK(h.booking_status(second) == BookingStatus::pending);
  // tick 1 ms → a late confirm is booking_expired even before ExpireDue, and changes nothing
  h.tick(1);
  const std::uint64_t before = h.engine.state_hash();
  CHECK(h.confirm(second).rejection == Rejection::booking_expired);
  CHECK(h.engine.state_hash() == before);
  CHECK(h.slot_status(2) == SlotStatus::held);
  // ExpireDue → FAILED and slot 2 AVAILABLE
  CHECK(h.expire().events.size() == 1);
  CHECK(h.booking_status(second) == BookingStatus::failed);
  CHECK(h.slot_status(2) == SlotStatus::available);
  CHECK(h.confirm(second).rejection == Rejection::booking_failed);
  // book 2 → PENDING (a new booking id)
  const Id third = h.book_ok(2, "web-2");
  CHECK(third == 3);
  // cancel the CONFIRMED first → slot 1 AVAILABLE; book 1 → PENDING
  CHECK(h.cancel(first).rejection == Rejection::none);
  CHECK(h.slot_status(1) == SlotStatus::available);
  const Id fourth = h.book_ok(1);
  // cancel 4 → slot 1 AVAILABLE; close 1 → CLOSED; book 1 → slot_unavailable
  CHECK(h.cancel(fourth).rejection == Rejection::none);
  CHECK(h.close(1).rejection == Rejection::none);
  CHECK(h.book(1) == Rejection::slot_unavailable);
  // close 2 while HELD → slot_booked
  CHECK(h.close(2).rejection == Rejection::slot_booked);

  CHECK(h.engine.pending_count() == 1);
  CHECK(h.engine.broken_invariant() == std::nullopt);
  CHECK(h.refusals == 5);
  h.check_replay();
}

TEST_CASE("scenario: a clinic's day — many doctors, bulk slots, mixed outcomes, then replay") {
  Harness h(EngineConfig{.hold_ttl_ms = 5 * kMinute, .max_holds_per_client = 3});
  const Id north = std::get<ClinicAdded>(h.run(AddClinic{"North"}).events.at(0)).clinic_id;
  std::vector<Id> doctors;
  for (int i = 0; i < 4; ++i)
    doctors.push_back(h.add_doctor("Dr. " + std::to_string(i), i % 2 ? north : 1));
  // Each doctor offers a day of 20-minute slots, 08:00–17:00.
  for (Id d : doctors) {
    std::vector<SlotSpan> spans;
    for (int i = 0; i < 27; ++i)
      spans.push_back(
          {kT0 + 8 * kHour + i * 20 * kMinute, kT0 + 8 * kHour + (i + 1) * 20 * kMinute});
    REQUIRE(h.create(d, spans) == Rejection::none);
    // The same day again overlaps.
    CHECK(h.create(d, spans) == Rejection::slot_overlap);
  }
  CHECK(h.engine.slots().size() == 4 * 27);

  // Patients book every third slot; every other hold is confirmed, the rest left to expire.
  std::vector<Id> bookings;
  for (Id s = 1; s <= h.engine.slots().size(); s += 3) {
    const std::string client = "phone-" + std::to_string(s % 7);
    const Rejection r = h.book(s, "Patient " + std::to_string(s), client);
    if (r == Rejection::too_many_holds) {
      CHECK(h.engine.holds_of(testing::client(client)) == 3);
      continue;
    }
    REQUIRE(r == Rejection::none);
    bookings.push_back(h.last_booking());
    if (bookings.size() % 2 == 0) REQUIRE(h.confirm(bookings.back()).rejection == Rejection::none);
    h.tick(kSecond);
  }
  // Admin closes every slot it can in the last hour; the taken ones refuse with slot_booked.
  int closed = 0;
  int refused = 0;
  for (Id id = 1; id <= h.engine.slot_count(); ++id) {
    if (h.engine.slot(id)->start_ms < kT0 + 16 * kHour) continue;
    const Rejection r = h.close(id).rejection;
    (r == Rejection::none ? closed : refused) += 1;
    CHECK((r == Rejection::none || r == Rejection::slot_booked));
  }
  CHECK(closed > 0);
  CHECK(refused > 0);

  h.tick(6 * kMinute);
  const std::uint64_t pending_before = h.engine.pending_count();
  Outcome o = h.expire();
  CHECK(o.events.size() == pending_before);
  CHECK(h.engine.pending_count() == 0);
  for (Id b : bookings) {
    const BookingStatus st = h.booking_status(b);
    CHECK((st == BookingStatus::confirmed || st == BookingStatus::failed));
    const SlotStatus slot = h.slot_status(h.engine.booking(b)->slot_id);
    CHECK(slot == (st == BookingStatus::confirmed ? SlotStatus::booked : SlotStatus::available));
  }
  h.check_replay();
}

TEST_CASE("every event changes the state hash: each journal prefix hashes differently") {
  Harness h;
  Engine shadow;
  std::vector<std::uint64_t> hashes{shadow.state_hash()};  // hash after journal[0..i)
  auto step = [&](const Command& c) {
    const std::size_t before = h.journal.size();
    (void)h.run(c);
    for (std::size_t i = before; i < h.journal.size(); ++i) {
      shadow.apply(h.journal[i]);
      hashes.push_back(shadow.state_hash());
    }
    CHECK(shadow.state_hash() == h.engine.state_hash());
  };
  step(AddDoctor{1, "Dr. A", "GP"});
  step(CreateSlots{1, {{kT0, kT0 + kHour}, {kT0 + kHour, kT0 + 2 * kHour}}});
  step(BookSlot{1, "Ann", testing::client("k"), token_of(1)});
  step(BookSlot{2, "Bob", testing::client("k"), token_of(2)});
  step(ConfirmBooking{1});
  h.tick(3 * kMinute);
  step(ExpireDue{});
  step(CloseSlot{2});
  step(CancelBooking{1});
  step(AddClinic{"North"});
  CHECK(hashes.size() == 11);
  CHECK(std::set<std::uint64_t>(hashes.begin(), hashes.end()).size() == hashes.size());
  h.check_replay();
}

TEST_CASE("live counts by status follow every transition: book, confirm, expire, cancel, close") {
  Harness h;
  const Id d = h.add_doctor();
  std::vector<Id> slots;
  for (int i = 0; i < 5; ++i) slots.push_back(h.add_slot(d, kT0 + i * kHour, kT0 + (i + 1) * kHour));
  CHECK(h.engine.count(SlotStatus::available) == 5);

  const Id confirmed = h.book_ok(slots[0]);
  const Id expiring = h.book_ok(slots[1]);
  const Id cancelled = h.book_ok(slots[2]);
  REQUIRE(h.confirm(confirmed).rejection == Rejection::none);
  REQUIRE(h.cancel(cancelled).rejection == Rejection::none);
  REQUIRE(h.close(slots[3]).rejection == Rejection::none);
  CHECK(h.engine.count(SlotStatus::available) == 2);  // slots 3 (cancelled) and 5
  CHECK(h.engine.count(SlotStatus::held) == 1);
  CHECK(h.engine.count(SlotStatus::booked) == 1);
  CHECK(h.engine.count(SlotStatus::closed) == 1);
  CHECK(h.engine.count(BookingStatus::pending) == 1);

  h.tick(121 * kSecond);
  REQUIRE(h.expire().rejection == Rejection::none);
  CHECK(h.engine.booking(expiring)->status == BookingStatus::failed);
  CHECK(h.engine.count(SlotStatus::available) == 3);
  CHECK(h.engine.count(SlotStatus::held) == 0);
  CHECK(h.engine.count(BookingStatus::pending) == 0);
  CHECK(h.engine.count(BookingStatus::confirmed) == 1);
  CHECK(h.engine.count(BookingStatus::failed) == 1);
  CHECK(h.engine.count(BookingStatus::cancelled) == 1);
  h.check_replay();
}

// ---- Idempotency-Key -------------------------------------------------------------------

TEST_CASE("a retried booking with the same Idempotency-Key is answered, not redone, another request with the key is refused") {
  Harness h;
  const Id d = h.add_doctor();
  const Id s1 = h.add_slot(d, kT0, kT0 + kHour);
  const Id s2 = h.add_slot(d, kT0 + kHour, kT0 + 2 * kHour);
  const IdempotencyKey key{testing::key("retry-1"), 77};

  Outcome first = h.run(BookSlot{s1, "Ann Lee", 0, token_of(1), key});
  REQUIRE(first.rejection == Rejection::none);
  const Id booking_id = std::get<SlotHeld>(first.events.at(0)).booking_id;
  const RememberedRequest* done = h.engine.remembered(testing::key("retry-1"));
  REQUIRE(done != nullptr);
  CHECK(done->booking_id == booking_id);
  CHECK(done->request_hash == 77);
  CHECK(done->seq == h.engine.applied_events());
  CHECK(h.engine.booking(booking_id)->held_seq == done->seq);

  // The same request again: nothing changes, the caller answers from remembered().
  CHECK(h.run(BookSlot{s1, "Ann Lee", 0, token_of(2), key}).rejection == Rejection::duplicate_request);
  CHECK(h.engine.bookings().size() == 1);
  // A different request under the same key: refused, whatever it asks.
  CHECK(h.run(BookSlot{s2, "Ann Lee", 0, token_of(3), IdempotencyKey{testing::key("retry-1"), 78}}).rejection ==
        Rejection::idempotency_key_reused);
  CHECK(h.slot_status(s2) == SlotStatus::available);
  // Without a key, booking the held slot is the usual conflict.
  CHECK(h.book(s1) == Rejection::slot_unavailable);
  h.check_replay();  // the remembered keys are rebuilt by replay (they are in the hash)
}

TEST_CASE("confirm and cancel remember their Idempotency-Key, a refused request remembers nothing") {
  Harness h;
  const Id d = h.add_doctor();
  const Id b1 = h.book_ok(h.add_slot(d, kT0, kT0 + kHour));
  const Id b2 = h.book_ok(h.add_slot(d, kT0 + kHour, kT0 + 2 * kHour));

  REQUIRE(h.run(ConfirmBooking{b1, IdempotencyKey{testing::key("c-1"), 5}}).rejection == Rejection::none);
  CHECK(h.run(ConfirmBooking{b1, IdempotencyKey{testing::key("c-1"), 5}}).rejection == Rejection::duplicate_request);
  CHECK(h.run(ConfirmBooking{b2, IdempotencyKey{testing::key("c-1"), 6}}).rejection == Rejection::idempotency_key_reused);
  CHECK(h.engine.booking(b2)->status == BookingStatus::pending);

  REQUIRE(h.run(CancelBooking{b2, IdempotencyKey{testing::key("x-2"), 9}}).rejection == Rejection::none);
  CHECK(h.run(CancelBooking{b2, IdempotencyKey{testing::key("x-2"), 9}}).rejection == Rejection::duplicate_request);
  CHECK(h.engine.remembered(testing::key("x-2"))->booking_id == b2);

  // Confirming the cancelled booking is refused, and its key is not remembered.
  CHECK(h.run(ConfirmBooking{b2, IdempotencyKey{testing::key("c-3"), 1}}).rejection == Rejection::booking_cancelled);
  CHECK(h.engine.remembered(testing::key("c-3")) == nullptr);
  h.check_replay();
}

WebhookSecret secret_of(std::uint8_t n) {
  WebhookSecret s{};
  s.fill(n);
  return s;
}

TEST_CASE("register webhook → WebhookRegistered with the secret, delete → WebhookDeleted, a second delete is refused") {
  Harness h;
  const std::uint32_t confirmed = webhook_event_bit(WebhookEventType::booking_confirmed);
  Outcome registered = h.run(RegisterWebhook{"https://clinic.example/hook", confirmed, 1, true, secret_of(7)});
  REQUIRE(registered.rejection == Rejection::none);
  REQUIRE(registered.events.size() == 1);
  const auto& e = std::get<WebhookRegistered>(registered.events[0]);
  CHECK(e.webhook_id == 1);
  CHECK(e.url == "https://clinic.example/hook");
  CHECK(e.events == confirmed);
  CHECK(e.clinic_id == 1);
  CHECK(e.include_patient);
  CHECK(e.secret == secret_of(7));
  CHECK(e.created_at_ms == h.now);
  const Webhook* w = h.engine.webhook(1);
  REQUIRE(w != nullptr);
  CHECK(w->registered_seq == h.engine.applied_events());
  CHECK(!w->deleted);

  Outcome second = h.run(RegisterWebhook{"http://other.example/", kAllWebhookEvents, 0, false, secret_of(8)});
  REQUIRE(second.rejection == Rejection::none);
  CHECK(std::get<WebhookRegistered>(second.events[0]).webhook_id == 2);

  Outcome deleted = h.run(DeleteWebhook{1});
  REQUIRE(deleted.rejection == Rejection::none);
  CHECK(describe(deleted.events.at(0)) == "WebhookDeleted{1}");
  CHECK(h.engine.webhook(1)->deleted);
  CHECK(!h.engine.webhook(2)->deleted);
  CHECK(h.run_refused_via_execute(DeleteWebhook{1}) == Rejection::webhook_not_found);
  CHECK(h.run_refused_via_execute(DeleteWebhook{3}) == Rejection::webhook_not_found);
  CHECK(h.run_refused_via_execute(DeleteWebhook{0}) == Rejection::webhook_not_found);
}

TEST_CASE("a webhook without a URL, with a URL over 2048 bytes, without or with an unknown event type, or of an unknown clinic is refused") {
  Harness h;
  const std::uint32_t held = webhook_event_bit(WebhookEventType::booking_held);
  CHECK(h.run_refused_via_execute(RegisterWebhook{"", held}) == Rejection::invalid_webhook);
  CHECK(h.run_refused_via_execute(RegisterWebhook{std::string(2049, 'u'), held}) ==
        Rejection::invalid_webhook);
  CHECK(h.run_refused_via_execute(RegisterWebhook{"http://a.example/", 0}) == Rejection::invalid_webhook);
  CHECK(h.run_refused_via_execute(RegisterWebhook{"http://a.example/", kAllWebhookEvents + 1}) ==
        Rejection::invalid_webhook);
  CHECK(h.run_refused_via_execute(RegisterWebhook{"http://a.example/", held, 2}) ==
        Rejection::clinic_not_found);
  CHECK(h.run(RegisterWebhook{std::string(2048, 'u'), kAllWebhookEvents}).rejection == Rejection::none);
  CHECK(h.engine.webhooks().size() == 1);
}

TEST_CASE("webhooks survive replay: the same registrations, secrets and deletions hash equal") {
  Harness h;
  REQUIRE(h.run(RegisterWebhook{"http://a.example/", 3, 0, false, secret_of(1)}).rejection == Rejection::none);
  REQUIRE(h.run(AddClinic{"Second", "UTC"}).rejection == Rejection::none);
  REQUIRE(h.run(RegisterWebhook{"http://b.example/", 12, 2, true, secret_of(2)}).rejection == Rejection::none);
  REQUIRE(h.run(DeleteWebhook{1}).rejection == Rejection::none);
  Engine replayed;
  for (const Event& e : h.journal) replayed.apply(e);
  CHECK(replayed.state_hash() == h.engine.state_hash());
  REQUIRE(replayed.webhooks().size() == 2);
  CHECK(replayed.webhooks()[0].deleted);
  CHECK(replayed.webhooks()[1].secret == secret_of(2));
  CHECK(replayed.webhooks()[1].registered_seq == 3);
  CHECK(!replayed.broken_invariant());
}

TEST_CASE("the webhook event type names are the API's, in bit order") {
  CHECK(to_string(WebhookEventType::booking_held) == "booking.held");
  CHECK(to_string(WebhookEventType::booking_confirmed) == "booking.confirmed");
  CHECK(to_string(WebhookEventType::booking_failed) == "booking.failed");
  CHECK(to_string(WebhookEventType::booking_cancelled) == "booking.cancelled");
  CHECK(to_string(WebhookEventType::slot_created) == "slot.created");
  CHECK(to_string(WebhookEventType::slot_closed) == "slot.closed");
  CHECK(to_string(WebhookEventType::booking_rescheduled) == "booking.rescheduled");
  CHECK(kAllWebhookEvents == 127);
}
