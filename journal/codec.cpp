#include "journal/codec.hpp"

#include "engine/overloaded.hpp"
#include "journal/digest.hpp"

#include <array>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <variant>

#include <fmt/core.h>

namespace slotd {
namespace {

// Format 1 knew the first eight event types only.
constexpr std::size_t kFormat1EventTypes = 8;

static_assert(kEventNames.size() == std::variant_size_v<Event>,
              "a new Event alternative needs a name in kEventNames and a field list in fields_of");

// Signed times are zigzag-mapped so small negative values stay short as varints.
std::uint64_t zigzag(TimeMs v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
TimeMs unzigzag(std::uint64_t z) {
  return static_cast<TimeMs>((z >> 1) ^ (0 - (z & 1)));
}

// Counts an upper bound of the encoded size, so the writer can work on raw memory
// without a capacity check per field (encoding sits on the group-commit path).
class SizeBound {
 public:
  static constexpr std::size_t kMaxVarint = 10;

  bool byte(std::uint8_t, const char*) { return add(1); }
  bool id(std::uint64_t, const char*) { return add(kMaxVarint); }
  bool time(TimeMs, const char*) { return add(kMaxVarint); }
  bool text(const std::string& s, const char*) { return add(kMaxVarint + s.size()); }
  bool token(const Token& t, const char*) { return add(t.size()); }
  bool secret(const WebhookSecret& s, const char*) { return add(s.size()); }
  bool flag(bool, const char*) { return add(1); }
  bool fixed64(std::uint64_t, const char*) { return add(8); }
  std::size_t bytes() const { return bytes_; }

 private:
  bool add(std::size_t n) {
    bytes_ += n;
    return true;
  }
  std::size_t bytes_ = 0;
};

// Writes into memory sized by SizeBound.
class ValueWriter {
 public:
  explicit ValueWriter(char* out) : out_(out) {}

  bool byte(std::uint8_t v, const char* /*field*/) {
    *out_++ = static_cast<char>(v);
    return true;
  }
  bool id(std::uint64_t v, const char* /*field*/) {
    put_varint(v);
    return true;
  }
  bool time(TimeMs v, const char* /*field*/) {
    put_varint(zigzag(v));
    return true;
  }
  bool text(const std::string& s, const char* /*field*/) {
    put_varint(s.size());
    std::memcpy(out_, s.data(), s.size());
    out_ += s.size();
    return true;
  }
  bool token(const Token& t, const char* /*field*/) {
    std::memcpy(out_, t.data(), t.size());
    out_ += t.size();
    return true;
  }
  bool secret(const WebhookSecret& s, const char* /*field*/) {
    std::memcpy(out_, s.data(), s.size());
    out_ += s.size();
    return true;
  }
  bool flag(bool v, const char* /*field*/) {
    *out_++ = static_cast<char>(v ? 1 : 0);
    return true;
  }
  bool fixed64(std::uint64_t v, const char* /*field*/) {
    for (int i = 0; i < 8; ++i) *out_++ = static_cast<char>(v >> (8 * i));
    return true;
  }
  char* end() const { return out_; }

 private:
  void put_varint(std::uint64_t v) {
    while (v >= 0x80) {
      *out_++ = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    *out_++ = static_cast<char>(v);
  }

  char* out_;
};

// Bounds-checked reader: every method checks the bytes left before touching them and
// records why it stopped, so arbitrary input can only produce an error, never a crash.
class ValueReader {
 public:
  explicit ValueReader(std::string_view bytes) : bytes_(bytes) {}

  bool byte(std::uint8_t& v, const char* field) {
    if (pos_ >= bytes_.size()) return fail(pos_, field, "truncated");
    v = static_cast<std::uint8_t>(bytes_[pos_++]);
    return true;
  }
  bool id(std::uint64_t& v, const char* field) { return varint(v, field); }
  bool time(TimeMs& v, const char* field) {
    std::uint64_t z = 0;
    if (!varint(z, field)) return false;
    v = unzigzag(z);
    return true;
  }
  bool text(std::string& s, const char* field) {
    const std::size_t start = pos_;
    std::uint64_t length = 0;
    if (!varint(length, field)) return false;
    if (length > remaining()) {
      return fail(start, field,
                  fmt::format("string length {} exceeds the {} bytes left", length, remaining()));
    }
    s.assign(bytes_.data() + pos_, static_cast<std::size_t>(length));
    pos_ += static_cast<std::size_t>(length);
    return true;
  }
  bool token(Token& t, const char* field) {
    if (remaining() < t.size()) return fail(pos_, field, "truncated");
    for (auto& b : t) b = static_cast<std::uint8_t>(bytes_[pos_++]);
    return true;
  }
  bool secret(WebhookSecret& s, const char* field) {
    if (remaining() < s.size()) return fail(pos_, field, "truncated");
    for (auto& b : s) b = static_cast<std::uint8_t>(bytes_[pos_++]);
    return true;
  }
  // One byte, 0 or 1: any other value is an error, so each record has one encoding.
  bool flag(bool& v, const char* field) {
    if (pos_ >= bytes_.size()) return fail(pos_, field, "truncated");
    const auto b = static_cast<std::uint8_t>(bytes_[pos_]);
    if (b > 1) return fail(pos_, field, "flag byte is not 0 or 1");
    ++pos_;
    v = b == 1;
    return true;
  }
  bool fixed64(std::uint64_t& v, const char* field) {
    if (remaining() < 8) return fail(pos_, field, "truncated");
    v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(bytes_[pos_ + i]);
    pos_ += 8;
    return true;
  }
  bool fail_field(const char* field, std::string_view why) { return fail(pos_, field, why); }

  std::size_t remaining() const { return bytes_.size() - pos_; }
  const std::string& error() const { return error_; }

 private:
  // LEB128, at most 10 bytes. Overlong forms (a final 0x00 after a continuation) are
  // rejected so that every record has exactly one encoding.
  bool varint(std::uint64_t& v, const char* field) {
    const std::size_t start = pos_;
    std::uint64_t result = 0;
    for (int i = 0;; ++i) {
      if (pos_ >= bytes_.size()) return fail(start, field, "truncated");
      const auto b = static_cast<std::uint8_t>(bytes_[pos_++]);
      if (i == 9 && b > 1) return fail(start, field, "varint overflows 64 bits");
      result |= static_cast<std::uint64_t>(b & 0x7f) << (7 * i);
      if ((b & 0x80) == 0) {
        if (b == 0 && i > 0) return fail(start, field, "overlong varint");
        v = result;
        return true;
      }
    }
  }

  bool fail(std::size_t at, const char* field, std::string_view why) {
    error_ = fmt::format("{} at byte {} reading {}", why, at, field);
    return false;
  }

  std::string_view bytes_;
  std::size_t pos_ = 0;
  std::string error_;
};

// A key: 1 byte (0 none, 1 present), then when present its 16-byte digest (hi then lo,
// each little-endian) and the 8-byte request hash.
template <class Io, class K>
bool idempotency_of(Io& io, K& k) {
  std::uint8_t present = k.key.empty() ? 0 : 1;
  if (!io.byte(present, "idempotency_key")) return false;
  if (present == 0) return true;
  if constexpr (std::is_same_v<Io, ValueReader>) {
    if (present != 1) return io.fail_field("idempotency_key", "presence byte is not 0 or 1");
    if (!io.fixed64(k.key.hi, "idempotency_key") || !io.fixed64(k.key.lo, "idempotency_key")) {
      return false;
    }
    if (k.key.empty()) return io.fail_field("idempotency_key", "a present key is all zero");
    return io.fixed64(k.request_hash, "request_hash");
  } else {
    return io.fixed64(k.key.hi, "idempotency_key") && io.fixed64(k.key.lo, "idempotency_key") &&
           io.fixed64(k.request_hash, "request_hash");
  }
}

// A booking status that a move keeps: 1 byte, 0 PENDING or 1 CONFIRMED (nothing else moves).
template <class Io, class S>
bool moving_status_of(Io& io, S& status) {
  std::uint8_t v = static_cast<std::uint8_t>(status);
  if (!io.byte(v, "status")) return false;
  if constexpr (std::is_same_v<Io, ValueReader>) {
    if (v > static_cast<std::uint8_t>(BookingStatus::confirmed)) {
      return io.fail_field("status", "a moved booking is PENDING (0) or CONFIRMED (1)");
    }
    status = static_cast<BookingStatus>(v);
  }
  return true;
}

// One field list per event (format 2), shared by the writer and the reader so they cannot
// drift apart. The order here IS the on-disk order (journal/README.md).
template <class Io, class E>
bool fields_of(Io& io, E& e) {
  using T = std::remove_const_t<E>;
  if constexpr (std::is_same_v<T, ClinicAdded> || std::is_same_v<T, ClinicUpdated>) {
    return io.id(e.clinic_id, "clinic_id") && io.text(e.name, "name") &&
           io.text(e.time_zone, "time_zone");
  } else if constexpr (std::is_same_v<T, DoctorAdded>) {
    return io.id(e.doctor_id, "doctor_id") && io.id(e.clinic_id, "clinic_id") &&
           io.text(e.name, "name") && io.text(e.specialty, "specialty");
  } else if constexpr (std::is_same_v<T, SlotCreated>) {
    return io.id(e.slot_id, "slot_id") && io.id(e.doctor_id, "doctor_id") &&
           io.time(e.start_ms, "start_ms") && io.time(e.end_ms, "end_ms");
  } else if constexpr (std::is_same_v<T, SlotHeld>) {
    return io.id(e.booking_id, "booking_id") && io.id(e.slot_id, "slot_id") &&
           io.text(e.patient_name, "patient_name") && io.fixed64(e.client, "client") &&
           io.token(e.token, "token") && io.time(e.created_at_ms, "created_at_ms") &&
           io.time(e.expires_at_ms, "expires_at_ms") && idempotency_of(io, e.idempotency);
  } else if constexpr (std::is_same_v<T, BookingConfirmed>) {
    return io.id(e.booking_id, "booking_id") && io.id(e.slot_id, "slot_id") &&
           io.time(e.confirmed_at_ms, "confirmed_at_ms") && idempotency_of(io, e.idempotency);
  } else if constexpr (std::is_same_v<T, BookingExpired>) {
    return io.id(e.booking_id, "booking_id") && io.id(e.slot_id, "slot_id") &&
           io.time(e.expired_at_ms, "expired_at_ms");
  } else if constexpr (std::is_same_v<T, BookingCancelled>) {
    return io.id(e.booking_id, "booking_id") && io.id(e.slot_id, "slot_id") &&
           io.time(e.cancelled_at_ms, "cancelled_at_ms") && idempotency_of(io, e.idempotency);
  } else if constexpr (std::is_same_v<T, SlotClosed>) {
    return io.id(e.slot_id, "slot_id");
  } else if constexpr (std::is_same_v<T, IdempotencyKeysForgotten>) {
    return io.time(e.up_to_ms, "up_to_ms");
  } else if constexpr (std::is_same_v<T, WebhookRegistered>) {
    return io.id(e.webhook_id, "webhook_id") && io.text(e.url, "url") &&
           io.id(e.events, "events") && io.id(e.clinic_id, "clinic_id") &&
           io.flag(e.include_patient, "include_patient") && io.secret(e.secret, "secret") &&
           io.time(e.created_at_ms, "created_at_ms");
  } else if constexpr (std::is_same_v<T, WebhookDeleted>) {
    return io.id(e.webhook_id, "webhook_id");
  } else if constexpr (std::is_same_v<T, BookingRescheduled>) {
    return io.id(e.booking_id, "booking_id") && io.id(e.from_slot_id, "from_slot_id") &&
           io.id(e.to_slot_id, "to_slot_id") && moving_status_of(io, e.status) &&
           io.time(e.rescheduled_at_ms, "rescheduled_at_ms") && idempotency_of(io, e.idempotency);
  } else if constexpr (std::is_same_v<T, WaitlistJoined>) {
    return io.id(e.entry_id, "entry_id") && io.id(e.doctor_id, "doctor_id") &&
           io.time(e.from_ms, "from_ms") && io.time(e.to_ms, "to_ms") &&
           io.text(e.patient_name, "patient_name") && io.fixed64(e.client, "client") &&
           io.token(e.token, "token") && io.token(e.offer_token, "offer_token") &&
           io.time(e.created_at_ms, "created_at_ms");
  } else if constexpr (std::is_same_v<T, WaitlistLeft>) {
    return io.id(e.entry_id, "entry_id") && io.time(e.left_at_ms, "left_at_ms");
  } else if constexpr (std::is_same_v<T, WaitlistOffered>) {
    return io.id(e.entry_id, "entry_id") && io.id(e.booking_id, "booking_id") &&
           io.id(e.slot_id, "slot_id");
  } else {
    static_assert(sizeof(T) == 0, "every Event alternative needs a field list");
  }
}

// Format 1 (read only): client key and Idempotency-Key as strings, which become their
// digests (an Idempotency-Key of format 1 was global: its scope is empty); no slot_id in
// BookingConfirmed/Expired/Cancelled (0: apply uses the booking's slot, which could not
// change in format 1); no time zone in ClinicAdded (UTC).
bool format1_key(ValueReader& r, IdempotencyKey& k) {
  std::string key;
  if (!r.text(key, "idempotency_key") || !r.id(k.request_hash, "request_hash")) return false;
  k.key = key_digest("", key);
  if (key.empty()) k.request_hash = 0;
  return true;
}

bool decode_format1_event(std::size_t type, ValueReader& r, Event& event) {
  switch (type) {
    case 0: {
      auto& e = event.emplace<ClinicAdded>();
      e.time_zone = "UTC";
      return r.id(e.clinic_id, "clinic_id") && r.text(e.name, "name");
    }
    case 3: {
      auto& e = event.emplace<SlotHeld>();
      std::string client_key;
      bool ok = r.id(e.booking_id, "booking_id") && r.id(e.slot_id, "slot_id") &&
                r.text(e.patient_name, "patient_name") && r.text(client_key, "client_key") &&
                r.token(e.token, "token") && r.time(e.created_at_ms, "created_at_ms") &&
                r.time(e.expires_at_ms, "expires_at_ms") && format1_key(r, e.idempotency);
      e.client = client_digest(client_key);
      return ok;
    }
    case 4: {
      auto& e = event.emplace<BookingConfirmed>();
      return r.id(e.booking_id, "booking_id") && r.time(e.confirmed_at_ms, "confirmed_at_ms") &&
             format1_key(r, e.idempotency);
    }
    case 5: {
      auto& e = event.emplace<BookingExpired>();
      return r.id(e.booking_id, "booking_id") && r.time(e.expired_at_ms, "expired_at_ms");
    }
    case 6: {
      auto& e = event.emplace<BookingCancelled>();
      return r.id(e.booking_id, "booking_id") && r.time(e.cancelled_at_ms, "cancelled_at_ms") &&
             format1_key(r, e.idempotency);
    }
    case 1: return fields_of(r, event.emplace<DoctorAdded>());
    case 2: return fields_of(r, event.emplace<SlotCreated>());
    case 7: return fields_of(r, event.emplace<SlotClosed>());
  }
  return false;  // unreachable: the caller range-checks the type byte
}

template <std::size_t I = 0>
bool decode_event(std::size_t type, ValueReader& reader, Event& event) {
  if constexpr (I < std::variant_size_v<Event>) {
    if (type == I) return fields_of(reader, event.template emplace<I>());
    return decode_event<I + 1>(type, reader, event);
  } else {
    return false;  // unreachable: the caller range-checks the type byte
  }
}

template <class Io>
void encode_into(Io& io, const JournalRecord& record) {
  io.byte(kJournalFormatVersion, "format version");
  io.byte(static_cast<std::uint8_t>(record.event.index()), "event type");
  io.time(record.at_ms, "at_ms");
  io.id(record.request_id, "request_id");
  io.byte(static_cast<std::uint8_t>(record.actor), "actor");
  std::visit([&io](const auto& event) { (void)fields_of(io, event); }, record.event);
}

}  // namespace

std::size_t entities_of(const Event& event, EntityRefs& out) {
  std::size_t n = 0;
  auto add = [&](EntityKind kind, Id id) {
    if (id != 0) out[n++] = EntityRef{kind, id};
  };
  std::visit(overloaded{
                 [&](const SlotCreated& e) { add(EntityKind::slot, e.slot_id); },
                 [&](const SlotClosed& e) { add(EntityKind::slot, e.slot_id); },
                 [&](const SlotHeld& e) {
                   add(EntityKind::booking, e.booking_id);
                   add(EntityKind::slot, e.slot_id);
                 },
                 [&](const BookingConfirmed& e) {
                   add(EntityKind::booking, e.booking_id);
                   add(EntityKind::slot, e.slot_id);
                 },
                 [&](const BookingExpired& e) {
                   add(EntityKind::booking, e.booking_id);
                   add(EntityKind::slot, e.slot_id);
                 },
                 [&](const BookingCancelled& e) {
                   add(EntityKind::booking, e.booking_id);
                   add(EntityKind::slot, e.slot_id);
                 },
                 [&](const BookingRescheduled& e) {
                   add(EntityKind::booking, e.booking_id);
                   add(EntityKind::slot, e.from_slot_id);
                   add(EntityKind::slot, e.to_slot_id);
                 },
                 // The hold itself is the SlotHeld just before (booking and slot); this
                 // says it is a waitlist offer, which the booking's history should show.
                 [&](const WaitlistOffered& e) { add(EntityKind::booking, e.booking_id); },
                 [](const auto&) {},
             },
             event);
  return n;
}

void put_entity_key(char (&key)[kEntityKeyBytes], EntityKind kind, Id id, std::uint64_t seq) {
  key[0] = static_cast<char>(kind);
  for (int i = 0; i < 8; ++i) key[1 + i] = static_cast<char>(id >> (56 - 8 * i));
  for (int i = 0; i < 8; ++i) key[9 + i] = static_cast<char>(seq >> (56 - 8 * i));
}

std::string encode_entity_key(EntityKind kind, Id id, std::uint64_t seq) {
  char key[kEntityKeyBytes];
  put_entity_key(key, kind, id, seq);
  return std::string(key, sizeof key);
}

bool decode_entity_key_seq(std::string_view key, std::uint64_t& seq) {
  return key.size() == kEntityKeyBytes && decode_key(key.substr(9), seq);
}

std::string encode_key(std::uint64_t seq) {
  std::string key(8, '\0');
  for (int i = 0; i < 8; ++i) key[i] = static_cast<char>(seq >> (56 - 8 * i));
  return key;
}

bool decode_key(std::string_view key, std::uint64_t& seq) {
  if (key.size() != 8) return false;
  std::uint64_t v = 0;
  for (char c : key) v = (v << 8) | static_cast<std::uint8_t>(c);
  seq = v;
  return true;
}

void encode_record(const JournalRecord& record, std::string& out) {
  SizeBound bound;
  encode_into(bound, record);
  const std::size_t start = out.size();
  out.resize(start + bound.bytes());
  ValueWriter writer(out.data() + start);
  encode_into(writer, record);
  out.resize(static_cast<std::size_t>(writer.end() - out.data()));
}

JournalStatus decode_record(std::uint64_t seq, std::string_view bytes, JournalRecord& out) {
  const auto failed = [seq](std::string_view why) {
    return JournalStatus::error(fmt::format("journal record seq {}: {}", seq, why));
  };
  out.seq = seq;
  ValueReader reader(bytes);

  std::uint8_t version = 0;
  if (!reader.byte(version, "format version")) return failed(reader.error());
  if (version != kJournalFormatVersion && version != 1) {
    return failed(fmt::format("unknown format version {}", version));
  }
  std::uint8_t type = 0;
  if (!reader.byte(type, "event type")) return failed(reader.error());
  if (type >= (version == 1 ? kFormat1EventTypes : std::variant_size_v<Event>)) {
    return failed(fmt::format("unknown event type {} in format {}", type, version));
  }
  const std::string_view event_name = kEventNames[type];

  std::uint8_t actor = 0;
  if (!reader.time(out.at_ms, "at_ms") || !reader.id(out.request_id, "request_id") ||
      !reader.byte(actor, "actor")) {
    return failed(fmt::format("{} {}", event_name, reader.error()));
  }
  if (actor > static_cast<std::uint8_t>(Actor::patient)) {
    return failed(fmt::format("{} actor {} out of range (0..2)", event_name, actor));
  }
  out.actor = static_cast<Actor>(actor);

  const bool decoded = version == 1 ? decode_format1_event(type, reader, out.event)
                                    : decode_event(type, reader, out.event);
  if (!decoded) {
    return failed(fmt::format("{} {}", event_name, reader.error()));
  }
  if (reader.remaining() != 0) {
    return failed(fmt::format("{} trailing {} bytes", event_name, reader.remaining()));
  }
  return {};
}

}  // namespace slotd
