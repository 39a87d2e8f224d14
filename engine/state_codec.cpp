#include "engine/state_codec.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <utility>
#include <vector>

namespace slotd {
namespace {

constexpr std::size_t kBufferBytes = 1 << 16;
// Fixed part of each record, for size checks before allocating.
constexpr std::size_t kSlotBytes = 8 + 8 + 4 + 4 + 1;
// ... then the reschedule count and the name's length.
constexpr std::size_t kBookingBytes = 8 * 6 + 16 + 4 + 4 + 1 + 4 + 4;
constexpr std::size_t kRememberedBytes = 8 * 6;
// secret 32, created at 8, registered seq 8, clinic id 8, event bits 4, two flags.
constexpr std::size_t kWebhookBytes = 32 + 8 + 8 + 8 + 4 + 2;
// from, to, created at, client, two tokens, doctor id, booking id, status; then the name.
constexpr std::size_t kWaitlistEntryBytes = 8 * 4 + 16 + 16 + 4 + 4 + 1;

// Little-endian fixed-width numbers at a raw position (one store on little-endian hosts).
template <class T>
void store_le(char* p, T v) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(p, &v, sizeof v);
  } else {
    auto u = static_cast<std::uint64_t>(v);
    for (std::size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<char>(u >> (8 * i));
  }
}
template <class T>
T load_le(const char* p) {
  if constexpr (std::endian::native == std::endian::little) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
  } else {
    std::uint64_t u = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) u |= std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
    return static_cast<T>(u);
  }
}

// Buffers small writes so the sink sees large pieces; sticky on failure.
class Writer {
 public:
  explicit Writer(StateSink& sink) : sink_(sink) {}
  // Room for one fixed-size record written in place (the hot path for slots and
  // bookings); nullptr after a failure.
  char* room(std::size_t n) {
    if (buffer_.size() - used_ < n) flush();
    if (!ok_) return nullptr;
    char* p = buffer_.data() + used_;
    used_ += n;
    return p;
  }
  void bytes(const void* data, std::size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0 && ok_) {
      if (used_ == buffer_.size()) flush();
      const std::size_t take = std::min(n, buffer_.size() - used_);
      std::memcpy(buffer_.data() + used_, p, take);
      used_ += take;
      p += take;
      n -= take;
    }
  }
  template <class T>
  void num(T v) {
    // Little-endian whatever the host, one byte at a time (compilers make this a store).
    auto u = static_cast<std::uint64_t>(v);
    unsigned char b[sizeof(T)];
    for (std::size_t i = 0; i < sizeof(T); ++i) b[i] = static_cast<unsigned char>(u >> (8 * i));
    bytes(b, sizeof(T));
  }
  void str(std::string_view s) {
    num(static_cast<std::uint32_t>(s.size()));
    bytes(s.data(), s.size());
  }
  bool finish() {
    flush();
    return ok_;
  }

 private:
  void flush() {
    if (ok_ && used_ > 0) ok_ = sink_.write(buffer_.data(), used_);
    used_ = 0;
  }
  StateSink& sink_;
  std::array<char, kBufferBytes> buffer_;
  std::size_t used_ = 0;
  bool ok_ = true;
};

// Strict reader: any read past the end sets failed and returns zeros.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : p_(bytes.data()), left_(bytes.size()) {}
  template <class T>
  T num() {
    if (left_ < sizeof(T)) return fail<T>();
    std::uint64_t u = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      u |= std::uint64_t{static_cast<unsigned char>(p_[i])} << (8 * i);
    }
    p_ += sizeof(T);
    left_ -= sizeof(T);
    return static_cast<T>(u);
  }
  std::string_view str() {
    const auto n = num<std::uint32_t>();
    if (left_ < n) return fail<std::string_view>();
    std::string_view s(p_, n);
    p_ += n;
    left_ -= n;
    return s;
  }
  // The next n bytes in place, or nullptr (and failed) if fewer are left.
  const char* take(std::size_t n) {
    if (left_ < n) return fail<const char*>();
    const char* p = p_;
    p_ += n;
    left_ -= n;
    return p;
  }
  void bytes(void* out, std::size_t n) {
    if (left_ < n) {
      failed_ = true;
      return;
    }
    std::memcpy(out, p_, n);
    p_ += n;
    left_ -= n;
  }
  // A count of records of at least `min_bytes` each that the bytes left can hold.
  bool plausible(std::uint64_t count, std::size_t min_bytes) const {
    return !failed_ && count <= left_ / min_bytes;
  }
  bool failed() const { return failed_; }
  std::size_t left() const { return left_; }

 private:
  template <class T>
  T fail() {
    failed_ = true;
    left_ = 0;
    return T{};
  }
  const char* p_;
  std::size_t left_;
  bool failed_ = false;
};

using RememberedEntry = std::pair<const KeyDigest, RememberedRequest>;

}  // namespace

std::uint64_t StateCodec::encoded_size(const Engine& e) {
  std::uint64_t n = 8 + 4;
  for (const Clinic& c : e.clinics_) n += 8 + c.name.size() + c.time_zone.size();
  n += 4;
  for (const Doctor& d : e.doctors_) n += 8 + 8 + d.name.size() + d.specialty.size();
  n += 8 + e.slots_.size() * kSlotBytes;
  n += 8 + e.bookings_.size() * kBookingBytes;
  for (const Booking& b : e.bookings_) n += b.patient_name.length();
  n += 8 + e.remembered_.size() * kRememberedBytes;
  n += 4;
  for (const Webhook& h : e.webhooks_) n += 4 + h.url.size() + kWebhookBytes;
  n += 8 + e.waitlist_.size() * (kWaitlistEntryBytes + 4);
  for (const WaitlistEntry& w : e.waitlist_) n += w.patient_name.length();
  return n;
}

bool StateCodec::encode(const Engine& e, StateSink& sink, EncodeScratch* scratch) {
  Writer w(sink);
  w.num(e.applied_events_);
  w.num(static_cast<std::uint32_t>(e.clinics_.size()));
  for (const Clinic& c : e.clinics_) {
    w.str(c.name);
    w.str(c.time_zone);
  }
  w.num(static_cast<std::uint32_t>(e.doctors_.size()));
  for (const Doctor& d : e.doctors_) {
    w.num(d.clinic_id);
    w.str(d.name);
    w.str(d.specialty);
  }
  w.num(static_cast<std::uint64_t>(e.slots_.size()));
  for (const Slot& s : e.slots_) {
    char* p = w.room(kSlotBytes);
    if (!p) return false;
    store_le(p, s.start_ms);
    store_le(p + 8, s.end_ms);
    store_le(p + 16, s.doctor_id);
    store_le(p + 20, s.booking_id);
    p[24] = static_cast<char>(s.status);
  }
  w.num(static_cast<std::uint64_t>(e.bookings_.size()));
  for (const Booking& b : e.bookings_) {
    char* p = w.room(kBookingBytes - 4);
    if (!p) return false;
    store_le(p, b.created_at_ms);
    store_le(p + 8, b.expires_at_ms);
    store_le(p + 16, b.confirmed_at_ms);
    store_le(p + 24, b.ended_at_ms);
    store_le(p + 32, b.held_seq);
    store_le(p + 40, b.client);
    std::memcpy(p + 48, b.token.data(), b.token.size());
    store_le(p + 64, b.slot_id);
    store_le(p + 68, b.held_slot_id);
    p[72] = static_cast<char>(b.status);
    store_le(p + 73, b.reschedules);
    w.str(e.names_.view(b.patient_name));
  }
  // In key order, so equal states encode to equal bytes (the map's order is not stable).
  EncodeScratch own;
  std::vector<const void*>& keys = (scratch ? *scratch : own).remembered_;
  keys.clear();
  keys.reserve(e.remembered_.size());  // a no-op with a scratch reserved for this state
  for (const auto& entry : e.remembered_) keys.push_back(&entry);
  auto entry_of = [](const void* p) { return static_cast<const RememberedEntry*>(p); };
  std::sort(keys.begin(), keys.end(),
            [&](const void* a, const void* b) { return entry_of(a)->first < entry_of(b)->first; });
  w.num(static_cast<std::uint64_t>(keys.size()));
  for (const void* key : keys) {
    const RememberedEntry* entry = entry_of(key);
    w.num(entry->first.hi);
    w.num(entry->first.lo);
    w.num(entry->second.request_hash);
    w.num(entry->second.booking_id);
    w.num(entry->second.seq);
    w.num(entry->second.at_ms);
  }
  w.num(static_cast<std::uint32_t>(e.webhooks_.size()));
  for (const Webhook& h : e.webhooks_) {
    w.str(h.url);
    char* p = w.room(kWebhookBytes);
    if (!p) return false;
    std::memcpy(p, h.secret.data(), h.secret.size());
    store_le(p + 32, h.created_at_ms);
    store_le(p + 40, h.registered_seq);
    store_le(p + 48, h.clinic_id);
    store_le(p + 56, h.events);
    p[60] = static_cast<char>(h.include_patient ? 1 : 0);
    p[61] = static_cast<char>(h.deleted ? 1 : 0);
  }
  w.num(static_cast<std::uint64_t>(e.waitlist_.size()));
  for (const WaitlistEntry& entry : e.waitlist_) {
    char* p = w.room(kWaitlistEntryBytes);
    if (!p) return false;
    store_le(p, entry.from_ms);
    store_le(p + 8, entry.to_ms);
    store_le(p + 16, entry.created_at_ms);
    store_le(p + 24, entry.client);
    std::memcpy(p + 32, entry.token.data(), entry.token.size());
    std::memcpy(p + 48, entry.offer_token.data(), entry.offer_token.size());
    store_le(p + 64, entry.doctor_id);
    store_le(p + 68, entry.booking_id);
    p[72] = static_cast<char>(entry.status);
    w.str(e.names_.view(entry.patient_name));
  }
  return w.finish();
}

std::optional<std::string> StateCodec::decode(std::string_view bytes, Engine& e) {
  if (auto error = decode_unchecked(bytes, e)) return error;
  if (auto broken = e.broken_invariant()) return "engine state: breaks an invariant: " + *broken;
  return std::nullopt;
}

std::optional<std::string> StateCodec::decode_unchecked(std::string_view bytes, Engine& e) {
  Reader r(bytes);
  auto bad = [](std::string what) -> std::optional<std::string> {
    return "engine state: " + std::move(what);
  };

  e.applied_events_ = r.num<std::uint64_t>();

  const auto clinics = r.num<std::uint32_t>();
  if (clinics == 0 || !r.plausible(clinics, 8)) return bad("clinic count out of range");
  e.clinics_.clear();
  e.clinics_.reserve(clinics);
  for (std::uint32_t i = 0; i < clinics; ++i) {
    Clinic c;
    c.name = r.str();
    c.time_zone = r.str();
    e.clinics_.push_back(std::move(c));
  }

  const auto doctors = r.num<std::uint32_t>();
  if (!r.plausible(doctors, 16)) return bad("doctor count out of range");
  e.doctors_.clear();
  e.doctors_.reserve(doctors);
  for (std::uint32_t i = 0; i < doctors; ++i) {
    Doctor d;
    d.clinic_id = r.num<std::uint64_t>();
    d.name = r.str();
    d.specialty = r.str();
    if (d.clinic_id == 0 || d.clinic_id > clinics) return bad("doctor of an unknown clinic");
    e.doctors_.push_back(std::move(d));
  }

  const auto slots = r.num<std::uint64_t>();
  if (!r.plausible(slots, kSlotBytes) || slots >= ChunkedVector<Slot>::kMaxSize) {
    return bad("slot count out of range");
  }
  e.slots_ = ChunkedVector<Slot>();
  e.slots_by_doctor_.assign(doctors, {});
  e.slot_counts_ = {};
  bool sorted = true;
  for (std::uint64_t i = 0; i < slots; ++i) {
    const char* p = r.take(kSlotBytes);
    if (!p) return bad("truncated in the slots");
    Slot& s = e.slots_.emplace_back();
    s.start_ms = load_le<TimeMs>(p);
    s.end_ms = load_le<TimeMs>(p + 8);
    s.doctor_id = load_le<std::uint32_t>(p + 16);
    s.booking_id = load_le<std::uint32_t>(p + 20);
    const auto status = static_cast<std::uint8_t>(p[24]);
    if (status > 3) return bad("slot " + std::to_string(i + 1) + " has an unknown status");
    if (s.doctor_id == 0 || s.doctor_id > doctors) {
      return bad("slot " + std::to_string(i + 1) + " of an unknown doctor");
    }
    s.status = static_cast<SlotStatus>(status);
    ++e.slot_counts_[status];
    auto& index = e.slots_by_doctor_[s.doctor_id - 1];
    if (!index.empty() && e.slots_[index.back() - 1].start_ms > s.start_ms) sorted = false;
    index.push_back(static_cast<std::uint32_t>(i + 1));
  }
  if (!sorted) {
    // Ids were pushed in increasing order, so a stable sort by start gives (start, id).
    for (auto& index : e.slots_by_doctor_) {
      std::stable_sort(index.begin(), index.end(), [&](std::uint32_t a, std::uint32_t b) {
        return e.slots_[a - 1].start_ms < e.slots_[b - 1].start_ms;
      });
    }
  }

  const auto bookings = r.num<std::uint64_t>();
  if (!r.plausible(bookings, kBookingBytes) || bookings >= ChunkedVector<Booking>::kMaxSize) {
    return bad("booking count out of range");
  }
  e.bookings_ = ChunkedVector<Booking>();
  e.names_ = StringArena();
  e.booking_counts_ = {};
  e.pending_count_ = 0;
  e.expiry_queue_.clear();
  std::vector<std::pair<TimeMs, std::uint32_t>> expiries;
  for (std::uint64_t i = 0; i < bookings; ++i) {
    const char* p = r.take(kBookingBytes - 4);
    if (!p) return bad("truncated in the bookings");
    Booking& b = e.bookings_.emplace_back();
    b.created_at_ms = load_le<TimeMs>(p);
    b.expires_at_ms = load_le<TimeMs>(p + 8);
    b.confirmed_at_ms = load_le<TimeMs>(p + 16);
    b.ended_at_ms = load_le<TimeMs>(p + 24);
    b.held_seq = load_le<std::uint64_t>(p + 32);
    b.client = load_le<ClientId>(p + 40);
    std::memcpy(b.token.data(), p + 48, b.token.size());
    b.slot_id = load_le<std::uint32_t>(p + 64);
    b.held_slot_id = load_le<std::uint32_t>(p + 68);
    const auto status = static_cast<std::uint8_t>(p[72]);
    b.reschedules = load_le<std::uint32_t>(p + 73);
    const std::string_view name = r.str();
    if (r.failed()) return bad("truncated in the bookings");
    if (status > 3) return bad("booking " + std::to_string(i + 1) + " has an unknown status");
    if (name.size() > StringArena::kMaxLength) return bad("a patient name is too long");
    b.status = static_cast<BookingStatus>(status);
    b.patient_name = e.names_.add(name);
    ++e.booking_counts_[status];
    if (b.status == BookingStatus::pending) {
      ++e.pending_count_;
      expiries.emplace_back(b.expires_at_ms, static_cast<std::uint32_t>(i + 1));
    }
  }
  // Only PENDING bookings: the live queue may also hold skipped entries of ended ones,
  // which decide and apply ignore, so both give the same decisions.
  std::sort(expiries.begin(), expiries.end());
  e.expiry_queue_.assign(expiries.begin(), expiries.end());

  const auto remembered = r.num<std::uint64_t>();
  if (!r.plausible(remembered, kRememberedBytes)) return bad("remembered key count out of range");
  e.remembered_.clear();
  e.remembered_.reserve(remembered);
  std::vector<std::pair<TimeMs, KeyDigest>> order;
  order.reserve(remembered);
  for (std::uint64_t i = 0; i < remembered; ++i) {
    KeyDigest key;
    key.hi = r.num<std::uint64_t>();
    key.lo = r.num<std::uint64_t>();
    RememberedRequest request;
    request.request_hash = r.num<std::uint64_t>();
    request.booking_id = r.num<std::uint64_t>();
    request.seq = r.num<std::uint64_t>();
    request.at_ms = r.num<TimeMs>();
    if (key.empty()) return bad("an empty Idempotency-Key digest");
    // In increasing key order, as encode writes them: one encoding per state.
    if (i > 0 && !(order.back().second < key)) return bad("Idempotency-Keys out of order");
    if (!e.remembered_.emplace(key, request).second) return bad("an Idempotency-Key twice");
    order.emplace_back(request.at_ms, key);
  }
  // Forgetting pops in time order; among equal times the order does not matter.
  std::sort(order.begin(), order.end());
  e.remembered_order_.assign(order.begin(), order.end());

  const auto webhooks = r.num<std::uint32_t>();
  if (!r.plausible(webhooks, kWebhookBytes + 4)) return bad("webhook count out of range");
  e.webhooks_.clear();
  e.webhooks_.reserve(webhooks);
  for (std::uint32_t i = 0; i < webhooks; ++i) {
    Webhook h;
    h.url = r.str();
    const char* p = r.take(kWebhookBytes);
    if (!p) return bad("truncated in the webhooks");
    std::memcpy(h.secret.data(), p, h.secret.size());
    h.created_at_ms = load_le<TimeMs>(p + 32);
    h.registered_seq = load_le<std::uint64_t>(p + 40);
    h.clinic_id = load_le<Id>(p + 48);
    h.events = load_le<std::uint32_t>(p + 56);
    const auto include_patient = static_cast<std::uint8_t>(p[60]);
    const auto deleted = static_cast<std::uint8_t>(p[61]);
    if (include_patient > 1 || deleted > 1) return bad("webhook " + std::to_string(i + 1) + " has a bad flag");
    if (h.clinic_id > clinics) return bad("webhook " + std::to_string(i + 1) + " of an unknown clinic");
    h.include_patient = include_patient == 1;
    h.deleted = deleted == 1;
    e.webhooks_.push_back(std::move(h));
  }

  const auto entries = r.num<std::uint64_t>();
  if (!r.plausible(entries, kWaitlistEntryBytes + 4) ||
      entries >= ChunkedVector<WaitlistEntry, 10>::kMaxSize) {
    return bad("waitlist entry count out of range");
  }
  e.waitlist_ = ChunkedVector<WaitlistEntry, 10>();
  e.waiting_by_doctor_.assign(doctors, {});
  for (std::uint64_t i = 0; i < entries; ++i) {
    const char* p = r.take(kWaitlistEntryBytes);
    if (!p) return bad("truncated in the waitlist");
    WaitlistEntry& w = e.waitlist_.emplace_back();
    w.from_ms = load_le<TimeMs>(p);
    w.to_ms = load_le<TimeMs>(p + 8);
    w.created_at_ms = load_le<TimeMs>(p + 16);
    w.client = load_le<ClientId>(p + 24);
    std::memcpy(w.token.data(), p + 32, w.token.size());
    std::memcpy(w.offer_token.data(), p + 48, w.offer_token.size());
    w.doctor_id = load_le<std::uint32_t>(p + 64);
    w.booking_id = load_le<std::uint32_t>(p + 68);
    const auto status = static_cast<std::uint8_t>(p[72]);
    const std::string_view name = r.str();
    if (r.failed()) return bad("truncated in the waitlist");
    const std::string which = "waitlist entry " + std::to_string(i + 1);
    if (status > 2) return bad(which + " has an unknown status");
    if (w.doctor_id == 0 || w.doctor_id > doctors) return bad(which + " of an unknown doctor");
    if (w.booking_id > bookings) return bad(which + " offers an unknown booking");
    if (name.size() > StringArena::kMaxLength) return bad("a patient name is too long");
    w.status = static_cast<WaitlistStatus>(status);
    w.patient_name = e.names_.add(name);
    // Ids ascend, so each doctor's list stays oldest first.
    if (w.status == WaitlistStatus::waiting) {
      e.waiting_by_doctor_[w.doctor_id - 1].push_back(static_cast<std::uint32_t>(i + 1));
    }
  }

  if (r.failed()) return bad("truncated");
  if (r.left() != 0) return bad(std::to_string(r.left()) + " bytes after the end");
  e.set_config(e.config_);  // rebuilds the per-client hold counts
  return std::nullopt;
}

}  // namespace slotd
