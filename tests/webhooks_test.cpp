// webhooks/ without a receiver: which addresses and URLs are refused, the HMAC and signature
// format, the retry schedule, which records become which webhook bodies (a real engine and
// read store), and the cluster seam (who delivers, where a new leader resumes) with a real
// sequencer and a refusing loopback port. Delivery itself is tested end to end by
// webhook_test.py, the cluster side with NATS by cluster_test.py.
#include <doctest/doctest.h>
#include <simdjson.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "sequencer/read_store.hpp"
#include "tests/test_support.hpp"
#include "webhooks/delivery.hpp"
#include "webhooks/destination.hpp"
#include "webhooks/payload.hpp"
#include "webhooks/signing.hpp"

using namespace slotd;

namespace {

IpAddress ip(const char* text) {
  IpAddress a;
  if (inet_pton(AF_INET, text, a.bytes.data()) == 1) return a;
  a.v6 = true;
  REQUIRE_MESSAGE(inet_pton(AF_INET6, text, a.bytes.data()) == 1, text);
  return a;
}

std::string kind(const char* text) {
  const char* k = refused_address_kind(ip(text).view());
  return k ? k : "public";
}

std::optional<WebhookUrl> url(std::string_view text) {
  std::string problem;
  return parse_webhook_url(text, problem);
}

std::string problem_of(std::string_view text) {
  std::string problem;
  CHECK_FALSE(parse_webhook_url(text, problem).has_value());
  return problem;
}

}  // namespace

TEST_CASE("loopback, private, link-local, unspecified, multicast and reserved IPv4 addresses are refused, public ones pass") {
  CHECK(kind("127.0.0.1") == "loopback");
  CHECK(kind("127.255.255.254") == "loopback");
  CHECK(kind("10.1.2.3") == "private");
  CHECK(kind("172.16.0.1") == "private");
  CHECK(kind("172.31.255.255") == "private");
  CHECK(kind("192.168.1.1") == "private");
  CHECK(kind("100.64.0.1") == "private");
  CHECK(kind("169.254.169.254") == "link-local");  // cloud metadata services live here
  CHECK(kind("0.0.0.0") == "unspecified");
  CHECK(kind("224.0.0.1") == "multicast");
  CHECK(kind("255.255.255.255") == "reserved");
  CHECK(kind("192.0.2.10") == "reserved");
  CHECK(kind("198.18.0.1") == "reserved");
  CHECK(kind("172.15.255.255") == "public");
  CHECK(kind("172.32.0.0") == "public");
  CHECK(kind("100.128.0.1") == "public");
  CHECK(kind("93.184.216.34") == "public");
  CHECK(kind("8.8.8.8") == "public");
}

TEST_CASE("IPv6 loopback, unique-local, link-local and multicast are refused, and IPv4 inside IPv6 is judged as IPv4") {
  CHECK(kind("::1") == "loopback");
  CHECK(kind("::") == "unspecified");
  CHECK(kind("fc00::1") == "private");
  CHECK(kind("fd12:3456::1") == "private");
  CHECK(kind("fe80::1") == "link-local");
  CHECK(kind("fec0::1") == "private");
  CHECK(kind("ff02::1") == "multicast");
  CHECK(kind("2001:db8::1") == "reserved");
  CHECK(kind("::ffff:127.0.0.1") == "loopback");  // IPv4-mapped
  CHECK(kind("::ffff:10.0.0.1") == "private");
  CHECK(kind("::ffff:169.254.169.254") == "link-local");
  CHECK(kind("::ffff:93.184.216.34") == "public");
  CHECK(kind("64:ff9b::127.0.0.1") == "loopback");  // NAT64
  CHECK(kind("2002:7f00:1::") == "loopback");       // 6to4 of 127.0.0.1
  CHECK(kind("2002:5db8:d822::") == "public");      // 6to4 of 93.184.216.34
  CHECK(kind("::127.0.0.1") == "reserved");         // IPv4-compatible, deprecated
  CHECK(kind("2606:4700::1111") == "public");
  CHECK(kind("2a00:1450:4001::1") == "public");
}

TEST_CASE("a webhook URL is http or https with a host, without credentials or fragment") {
  auto plain = url("http://Hooks.Example.com:8080/in/slotd?clinic=3");
  REQUIRE(plain);
  CHECK_FALSE(plain->tls);
  CHECK(plain->host == "hooks.example.com");
  CHECK_FALSE(plain->host_is_ip);
  CHECK(plain->port == 8080);
  CHECK(plain->target == "/in/slotd?clinic=3");
  auto tls = url("https://hooks.example.com");
  REQUIRE(tls);
  CHECK(tls->tls);
  CHECK(tls->port == 443);
  CHECK(tls->target == "/");
  auto v6 = url("http://[::1]:9000/x");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->host_is_ip);
  CHECK(url("http://127.0.0.1/")->host_is_ip);

  CHECK(problem_of("ftp://hooks.example.com/") == "the url must start with http:// or https://");
  CHECK(problem_of("file:///etc/passwd") == "the url must start with http:// or https://");
  CHECK(problem_of("http://user:pass@hooks.example.com/") ==
        "the url must not carry a user name or password");
  CHECK(problem_of("http://token@hooks.example.com/") ==
        "the url must not carry a user name or password");
  CHECK(problem_of("http://hooks.example.com/#x") == "the url must not have a #fragment (it is never sent)");
  CHECK(problem_of("http:///path").find("host") != std::string::npos);
  CHECK(problem_of("http://hooks.example.com:0/") == "the url's port must be from 1 to 65535");
  CHECK(problem_of("http://hooks.example.com:99999/") != "");
  CHECK(problem_of("hooks.example.com/path") != "");
  CHECK(problem_of("http://exa%6dple.com/").find("%-escapes") != std::string::npos);
}

TEST_CASE("URLs that Boost.URL 1.81's parse_uri aborts on are refused with a problem, not a crash (found by the route_body fuzz target)") {
  for (const char* text : {"http:?", "http:]", "htth:}", "x:#", "HTTP:<", "https:|"}) {
    INFO(text);
    CHECK(problem_of(text) == "the url must start with http:// or https://");
  }
  CHECK(url("HTTPS://hooks.example.com/x"));  // the scheme is case-insensitive
}

TEST_CASE("localhost resolves to loopback addresses: refused unless private destinations are allowed") {
  std::vector<IpAddress> addresses;
  std::string error;
  REQUIRE_MESSAGE(resolve_host("localhost", addresses, error), error);
  REQUIRE_FALSE(addresses.empty());
  auto refused = refused_destination("localhost", addresses, false);
  REQUIRE(refused.has_value());
  CHECK(refused->find("loopback") != std::string::npos);
  CHECK_FALSE(refused_destination("localhost", addresses, true).has_value());
  // One private address among public ones refuses the whole answer.
  std::vector<IpAddress> mixed = {ip("93.184.216.34"), ip("10.0.0.1")};
  CHECK(refused_destination("mixed.example", mixed, false).has_value());
  CHECK_FALSE(refused_destination("public.example", {ip("93.184.216.34")}, false).has_value());
  CHECK(refused_destination("empty.example", {}, true).has_value());
}

TEST_CASE("HMAC-SHA256 matches RFC 4231 test case 2, and the signature signs '<timestamp>.<body>' with the secret's hex text") {
  CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  WebhookSecret secret{};
  for (std::size_t i = 0; i < secret.size(); ++i) secret[i] = static_cast<std::uint8_t>(i);
  const std::string text = webhook_secret_text(secret);
  CHECK(text == "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  const std::string body = R"({"id":"evt_7"})";
  CHECK(webhook_signature(secret, 1924992000, body) ==
        "sha256=" + hmac_sha256_hex(text, "1924992000." + body));
  CHECK(webhook_signature(secret, 1924992001, body) != webhook_signature(secret, 1924992000, body));
}

TEST_CASE("retries wait base·2^(n-1) up to the maximum, half of it jittered") {
  using std::chrono::milliseconds;
  CHECK(webhook_retry_delay(1, 2, 1800, 0.0) == milliseconds(1000));
  CHECK(webhook_retry_delay(1, 2, 1800, 0.999) == milliseconds(1999));
  CHECK(webhook_retry_delay(3, 2, 1800, 0.0) == milliseconds(4000));
  CHECK(webhook_retry_delay(3, 2, 1800, 0.5) == milliseconds(6000));
  CHECK(webhook_retry_delay(11, 2, 1800, 0.0) == milliseconds(900'000));
  CHECK(webhook_retry_delay(40, 2, 1800, 0.0) == milliseconds(900'000));  // no overflow
  CHECK(webhook_retry_delay(1000, 0.05, 0.2, 0.999) <= milliseconds(200));
}

TEST_CASE("booking and slot records become webhook events with slot, doctor, clinic and status, the patient only when asked") {
  Engine engine;
  std::vector<JournalRecord> records;
  auto run = [&](const Command& command, TimeMs now) {
    std::vector<Event> events;
    REQUIRE(engine.execute(command, now, events) == Rejection::none);
    for (Event& e : events) {
      records.push_back(JournalRecord{records.size() + 1, now, 0, Actor::admin, std::move(e)});
    }
  };
  const TimeMs t0 = 1'924'992'000'000;  // 2031-01-01T00:00:00Z
  run(AddClinic{"Harbor", "UTC"}, t0);                       // seq 1
  run(AddDoctor{2, "Dr. Ada", "GP"}, t0);                    // seq 2
  run(CreateSlots{1, {{t0 + 3'600'000, t0 + 5'400'000}, {t0 + 5'400'000, t0 + 7'200'000}}}, t0);  // 3, 4
  run(BookSlot{1, "Ann \"Quote\" Lee", 0, Token{}}, t0 + 1);  // seq 5
  run(ConfirmBooking{1}, t0 + 2);                            // seq 6
  run(CancelBooking{1}, t0 + 3);                             // seq 7
  run(CloseSlot{2}, t0 + 4);                                 // seq 8
  run(RegisterWebhook{"http://h.example/", kAllWebhookEvents, 0, true, WebhookSecret{}}, t0 + 5);  // 9
  ReadStore reads(engine);
  reads.load(engine, records.size());

  std::vector<std::string> types;
  for (const JournalRecord& r : records) {
    auto event = webhook_event_of(r, reads);
    types.push_back(event ? std::string(to_string(event->type)) : "-");
  }
  CHECK(types == std::vector<std::string>{"-", "-", "slot.created", "slot.created", "booking.held",
                                          "booking.confirmed", "booking.cancelled", "slot.closed", "-"});

  auto confirmed = webhook_event_of(records[5], reads);
  REQUIRE(confirmed);
  CHECK(confirmed->change.clinic_id == 2);
  const std::string with_patient = webhook_body(records[5], *confirmed, reads, true);
  CHECK(with_patient ==
        R"({"id":"evt_6","type":"booking.confirmed","seq":6,"occurredAt":"2031-01-01T00:00:00.002Z",)"
        R"("data":{"bookingId":1,"slotId":1,"doctorId":1,"clinicId":2,"status":"CONFIRMED",)"
        R"("start":"2031-01-01T01:00:00.000Z","end":"2031-01-01T01:30:00.000Z","patientName":"Ann \"Quote\" Lee"}})");
  const std::string without = webhook_body(records[5], *confirmed, reads, false);
  CHECK(without.find("patientName") == std::string::npos);
  CHECK(without.find("Ann") == std::string::npos);
  simdjson::dom::parser parser;
  simdjson::dom::element parsed;
  CHECK_FALSE(parser.parse(with_patient).get(parsed));

  auto closed = webhook_event_of(records[7], reads);
  REQUIRE(closed);
  CHECK(webhook_body(records[7], *closed, reads, true) ==
        R"({"id":"evt_8","type":"slot.closed","seq":8,"occurredAt":"2031-01-01T00:00:00.004Z",)"
        R"("data":{"slotId":2,"doctorId":1,"clinicId":2,"status":"CLOSED",)"
        R"("start":"2031-01-01T01:30:00.000Z","end":"2031-01-01T02:00:00.000Z"}})");

  WebhookInfo only_confirmed;
  only_confirmed.events = webhook_event_bit(WebhookEventType::booking_confirmed);
  CHECK(webhook_wants(only_confirmed, *confirmed));
  CHECK_FALSE(webhook_wants(only_confirmed, *closed));
  only_confirmed.clinic_id = 1;
  CHECK_FALSE(webhook_wants(only_confirmed, *confirmed));  // clinic 2's event
  only_confirmed.clinic_id = 2;
  CHECK(webhook_wants(only_confirmed, *confirmed));
}

TEST_CASE("a move is booking.rescheduled about its new slot with the old one under 'from', a waitlist offer is booking.held") {
  Engine engine;
  std::vector<JournalRecord> records;
  auto run = [&](const Command& command, TimeMs now) {
    std::vector<Event> events;
    REQUIRE(engine.execute(command, now, events) == Rejection::none);
    for (Event& e : events) {
      records.push_back(JournalRecord{records.size() + 1, now, 0, Actor::patient, std::move(e)});
    }
  };
  const TimeMs t0 = 1'924'992'000'000;  // 2031-01-01T00:00:00Z
  run(AddClinic{"Harbor", "UTC"}, t0);                                  // seq 1: clinic 2
  run(AddDoctor{1, "Dr. Ada", "GP"}, t0);                               // seq 2
  run(AddDoctor{2, "Dr. Bo", "GP"}, t0);                                // seq 3
  run(CreateSlots{1, {{t0 + 3'600'000, t0 + 5'400'000}}}, t0);          // seq 4: slot 1, clinic 1
  run(CreateSlots{2, {{t0 + 7'200'000, t0 + 9'000'000}}}, t0);          // seq 5: slot 2, clinic 2
  run(BookSlot{1, "Ann", 0, Token{}}, t0 + 1);                          // seq 6
  run(JoinWaitlist{1, t0, t0 + 86'400'000, "Wes", 0, Token{}, Token{}}, t0 + 2);  // seq 7
  run(RescheduleBooking{1, 2}, t0 + 3);  // seq 8; slot 1 offered to Wes: SlotHeld 9, WaitlistOffered 10
  REQUIRE(records.size() == 10);
  ReadStore reads(engine);
  reads.load(engine, records.size());

  std::vector<std::string> types;
  for (std::size_t i = 5; i < records.size(); ++i) {
    auto event = webhook_event_of(records[i], reads);
    types.push_back(event ? std::string(to_string(event->type)) : "-");
  }
  CHECK(types == std::vector<std::string>{"booking.held", "-", "booking.rescheduled", "booking.held", "-"});

  auto moved = webhook_event_of(records[7], reads);
  REQUIRE(moved);
  REQUIRE(moved->moved_from);
  CHECK(webhook_body(records[7], *moved, reads, true) ==
        R"({"id":"evt_8","type":"booking.rescheduled","seq":8,"occurredAt":"2031-01-01T00:00:00.003Z",)"
        R"("data":{"bookingId":1,"slotId":2,"doctorId":2,"clinicId":2,"status":"PENDING",)"
        R"("start":"2031-01-01T02:00:00.000Z","end":"2031-01-01T02:30:00.000Z",)"
        R"("from":{"slotId":1,"doctorId":1,"clinicId":1,"start":"2031-01-01T01:00:00.000Z","end":"2031-01-01T01:30:00.000Z"},)"
        R"("patientName":"Ann"}})");
  auto offer = webhook_event_of(records[8], reads);
  REQUIRE(offer);
  CHECK(webhook_body(records[8], *offer, reads, true).find(R"("bookingId":2,"slotId":1,)") != std::string::npos);
  CHECK(webhook_body(records[8], *offer, reads, true).find(R"("patientName":"Wes")") != std::string::npos);

  // A move between clinics concerns an endpoint of either clinic, and only if it asked.
  WebhookInfo hook;
  hook.events = webhook_event_bit(WebhookEventType::booking_rescheduled);
  hook.clinic_id = 1;
  CHECK(webhook_wants(hook, *moved));
  hook.clinic_id = 2;
  CHECK(webhook_wants(hook, *moved));
  hook.clinic_id = 3;
  CHECK_FALSE(webhook_wants(hook, *moved));
  hook.clinic_id = 0;
  hook.events = webhook_event_bit(WebhookEventType::booking_held);
  CHECK_FALSE(webhook_wants(hook, *moved));
  CHECK(webhook_wants(hook, *offer));
}

TEST_CASE("the shared cursor wins when it is further on or level (it carries the last leader's failing flag) and the node's own wins when it is further on") {
  const JournalCursor own{40, false};
  CHECK(merge_webhook_cursor(own, std::nullopt).next_seq == 40);
  CHECK(merge_webhook_cursor(own, JournalCursor{70, false}).next_seq == 70);
  CHECK(merge_webhook_cursor(own, JournalCursor{12, true}).next_seq == 40);
  CHECK_FALSE(merge_webhook_cursor(own, JournalCursor{12, true}).stopped);
  CHECK(merge_webhook_cursor(own, JournalCursor{40, true}).stopped);
  CHECK_FALSE(merge_webhook_cursor(JournalCursor{40, true}, JournalCursor{40, false}).stopped);
}

namespace {

// A loopback port that refuses connections: bound, never listening.
struct RefusingPort {
  int fd = -1;
  std::uint16_t port = 0;
  RefusingPort() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
  }
  ~RefusingPort() { ::close(fd); }
};

// Everything posted to the delivery thread before this call has run when it returns.
void drain_delivery_thread(WebhookDelivery& delivery) {
  std::promise<void> done;
  delivery.check_destination("http://127.0.0.1:1/", [&](std::optional<std::string>) { done.set_value(); });
  REQUIRE(done.get_future().wait_for(std::chrono::seconds(10)) == std::future_status::ready);
}

template <class Predicate>
bool eventually(Predicate predicate) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

}  // namespace

// A sequencer on a fresh journal in a temp dir.
std::unique_ptr<Sequencer> open_sequencer(const testing::TempDir& dir) {
  std::unique_ptr<Sequencer> sequencer;
  JournalStatus opened = Sequencer::open(dir.str(), SequencerConfig{}, sequencer);
  REQUIRE_MESSAGE(opened.ok, opened.message);
  return sequencer;
}

// Delivery to loopback, where one failed attempt is followed by a long wait.
WebhookDeliveryOptions one_attempt_then_wait() {
  WebhookDeliveryOptions options;
  options.allow_private = true;
  options.max_attempts = 1000;
  options.backoff_base_s = 600;
  options.backoff_max_s = 600;
  return options;
}

// Registers webhook 1 for slot.created, aimed at a port that refuses.
void register_slot_created_hook(Sequencer& sequencer, const RefusingPort& refusing) {
  RegisterWebhook hook;
  hook.url = "http://127.0.0.1:" + std::to_string(refusing.port) + "/hook";
  hook.events = webhook_event_bit(WebhookEventType::slot_created);
  REQUIRE(sequencer.execute(hook).rejection == Rejection::none);
}

std::uint64_t wakeups_of(const WebhookDelivery& delivery) {
  std::string metrics;
  delivery.render_metrics(metrics);
  const std::string name = "\nslotd_webhook_wakeups_total ";
  const auto at = metrics.find(name);
  REQUIRE(at != std::string::npos);
  return std::stoull(metrics.substr(at + name.size()));
}

TEST_CASE("without a webhook, durable batches do not wake the delivery thread, and the first registration does") {
  testing::TempDir dir;
  std::unique_ptr<Sequencer> sequencer = open_sequencer(dir);
  RefusingPort refusing;
  WebhookDelivery delivery(*sequencer, one_attempt_then_wait());
  sequencer->add_observer([&](const std::shared_ptr<const BatchResults>&) { delivery.notify_durable(); });
  sequencer->start();
  delivery.start();
  drain_delivery_thread(delivery);
  const std::uint64_t at_start = wakeups_of(delivery);
  CHECK(at_start >= 1);  // the start's own wake-up

  // Each execute is its own durable batch, each published to the observer.
  for (int i = 0; i < 50; ++i) {
    REQUIRE(sequencer->execute(AddDoctor{1, "Dr. Quiet", "GP"}).rejection == Rejection::none);
  }
  drain_delivery_thread(delivery);
  CHECK(wakeups_of(delivery) == at_start);

  // A registration changes the webhook list: that batch wakes the thread, which attempts
  // the next event for the new endpoint.
  register_slot_created_hook(*sequencer, refusing);
  CreateSlots create{1, {{1'925'000'000'000, 1'925'000'060'000}}};
  REQUIRE(sequencer->execute(std::move(create)).rejection == Rejection::none);
  REQUIRE(eventually([&] {
    auto status = delivery.status(1);
    return status && status->failed_attempts >= 1;
  }));
  CHECK(wakeups_of(delivery) > at_start);
  // With an endpoint, every durable batch wakes it.
  const std::uint64_t with_endpoint = wakeups_of(delivery);
  for (int i = 0; i < 3; ++i) {
    REQUIRE(sequencer->execute(AddDoctor{1, "Dr. Busy", "GP"}).rejection == Rejection::none);
    drain_delivery_thread(delivery);
  }
  CHECK(wakeups_of(delivery) >= with_endpoint + 3);
  delivery.stop();
  sequencer->stop();
}

TEST_CASE("a stored failing cursor shows in the status as soon as start returns, before the delivery thread has run") {
  testing::TempDir dir;
  std::unique_ptr<Sequencer> sequencer = open_sequencer(dir);
  RefusingPort refusing;
  sequencer->start();
  register_slot_created_hook(*sequencer, refusing);
  // As a restart finds it: the endpoint was marked failing at seq 1 before the stop.
  REQUIRE(sequencer->put_cursor(1, JournalCursor{1, true}).ok);

  for (int round = 0; round < 20; ++round) {
    WebhookDelivery delivery(*sequencer, one_attempt_then_wait());
    delivery.start();
    auto status = delivery.status(1);  // no wait: the first request after listening
    REQUIRE(status);
    CHECK(status->state == "failing");
    CHECK(status->next_seq == 1);
    CHECK(status->last_error.find("before the restart") != std::string::npos);
    delivery.stop();
  }
  sequencer->stop();
}

TEST_CASE("a node that may not deliver (a cluster follower) attempts nothing, and when it may it resumes from the shared cursor and stops again when it may not") {
  testing::TempDir dir;
  std::unique_ptr<Sequencer> sequencer = open_sequencer(dir);
  RefusingPort refusing;

  std::atomic<bool> leading{false};
  std::atomic<std::uint64_t> shared_next_seq{0};
  std::atomic<int> loads{0}, shares{0};
  WebhookDeliveryOptions options = one_attempt_then_wait();  // the state stays put
  options.sharing.may_deliver = [&] { return leading.load(); };
  options.sharing.load = [&](std::map<std::uint64_t, JournalCursor>& out, std::string&) {
    ++loads;
    out[1] = JournalCursor{shared_next_seq.load(), false};
    return true;
  };
  options.sharing.store = [&](std::uint64_t, const JournalCursor&) { ++shares; };
  WebhookDelivery delivery(*sequencer, options);
  sequencer->add_observer([&](const std::shared_ptr<const BatchResults>&) { delivery.notify_durable(); });
  sequencer->start();
  delivery.start();

  register_slot_created_hook(*sequencer, refusing);
  CommandResult doctor = sequencer->execute(AddDoctor{1, "Dr. Hook", "GP"});
  const Id doctor_id = std::get<DoctorAdded>(doctor.events.at(0)).doctor_id;
  CreateSlots create{doctor_id, {}};
  constexpr TimeMs kBase = 1'925'000'000'000;
  for (int i = 0; i < 10; ++i) create.spans.push_back({kBase + i * 60'000LL, kBase + (i + 1) * 60'000LL});
  CommandResult slots = sequencer->execute(std::move(create));
  REQUIRE(slots.rejection == Rejection::none);
  const std::uint64_t last_seq = sequencer->durable_seq();
  shared_next_seq = last_seq - 3;  // the last leader delivered all but the last 4 slots

  delivery.notify_durable();
  drain_delivery_thread(delivery);
  auto status = delivery.status(1);
  REQUIRE(status);
  CHECK(status->state == "standby");
  // After the registration: as this node last knew it.
  CHECK(status->next_seq == sequencer->reads().webhooks()->find(1)->registered_seq + 1);
  CHECK(status->last_attempt_at_ms == 0);
  CHECK(status->failed_attempts == 0);
  CHECK(loads == 0);
  std::string done_error;
  std::promise<void> redelivered;
  delivery.redeliver(1, std::nullopt, [&](std::string error) {
    done_error = std::move(error);
    redelivered.set_value();
  });
  REQUIRE(redelivered.get_future().wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK(done_error.find("not the cluster leader") != std::string::npos);

  // Now it leads: the first attempt is at the shared cursor (the last 4 slots), not at seq 2.
  leading = true;
  REQUIRE(eventually([&] { return delivery.status(1)->failed_attempts == 1; }));
  status = delivery.status(1);
  CHECK(loads == 1);
  CHECK(status->state == "retrying");
  CHECK(status->next_seq == last_seq - 3);
  std::optional<JournalCursor> stored;
  REQUIRE(sequencer->get_cursor(1, stored).ok);
  REQUIRE(stored);
  CHECK(stored->next_seq == last_seq - 3);  // and kept locally, for a restart
  CHECK(shares == 1);  // the merged cursor, written back once

  leading = false;
  REQUIRE(eventually([&] { return delivery.status(1)->state == "standby"; }));
  sequencer->stop();
  delivery.stop();
}
