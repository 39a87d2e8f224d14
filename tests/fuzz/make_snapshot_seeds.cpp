// Writes the seed corpus of the snapshot_file fuzz target: snapshots of small engine states
// reached through decide/apply (clinics, doctors, slots in every status, PENDING holds with
// Idempotency-Keys, a webhook), in each of the target's three input modes.
//   make_snapshot_seeds DIR
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "engine/state_codec.hpp"
#include "snapshots/snapshot_file.hpp"

using namespace slotd;

namespace {

class StringSink : public StateSink {
 public:
  bool write(const char* data, std::size_t size) override {
    bytes.append(data, size);
    return true;
  }
  std::string bytes;
};

constexpr TimeMs kBase = 1'925'337'600'000;  // 2031-01-05

void run(Engine& engine, const Command& command, TimeMs now) {
  std::vector<Event> events;
  if (engine.decide(command, now, events) != Rejection::none) return;
  for (const Event& e : events) engine.apply(e);
}

Engine state(int size) {
  Engine engine;
  run(engine, AddClinic{"North", "Europe/Berlin"}, kBase);
  run(engine, AddDoctor{1, "Dr. A", "GP"}, kBase);
  run(engine, AddDoctor{2, "Dr. B", "Skin"}, kBase);
  for (Id doctor = 1; doctor <= 2; ++doctor) {
    CreateSlots slots{doctor, {}};
    for (int i = 0; i < size; ++i) slots.spans.push_back({kBase + i * 1'800'000LL, kBase + (i + 1) * 1'800'000LL});
    run(engine, slots, kBase);
  }
  for (int i = 1; i <= size; ++i) {
    BookSlot book{static_cast<Id>(i), "Pat " + std::to_string(i), static_cast<ClientId>(i % 3), Token{static_cast<std::uint8_t>(i)}};
    if (i % 2) book.idempotency = IdempotencyKey{KeyDigest{static_cast<std::uint64_t>(i)}, 7};
    run(engine, book, kBase + i * 1000);
  }
  for (Id b = 1; b <= static_cast<Id>(size); b += 3) run(engine, ConfirmBooking{b}, kBase + 10'000);
  for (Id b = 2; b <= static_cast<Id>(size); b += 4) run(engine, CancelBooking{b}, kBase + 10'000);
  if (size > 2) run(engine, CloseSlot{static_cast<Id>(size + 1)}, kBase);
  RegisterWebhook hook{"https://hooks.example/x", webhook_event_bit(WebhookEventType::booking_confirmed), 0, false, {}};
  run(engine, hook, kBase);
  // Holds made early expire; the rest stay PENDING.
  run(engine, ExpireDue{}, kBase + 120'000 + 2'500);
  return engine;
}

void save(const std::string& path, char mode, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.put(mode);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_snapshot_seeds DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  for (int size : {0, 1, 4, 9}) {
    const Engine engine = state(size);
    StringSink file, state_bytes;
    if (!write_snapshot(engine, engine.applied_events(), kBase, file) || !StateCodec::encode(engine, state_bytes)) {
      return 1;
    }
    const std::string name = dir + "/state_" + std::to_string(size);
    save(name + "_file", 0, file.bytes);
    save(name + "_file_checksum_repaired", 1, file.bytes);
    save(name + "_state", 2, state_bytes.bytes);
  }
  return 0;
}
