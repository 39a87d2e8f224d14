// Api::handle on hostile input, without sockets: seeded mutations of valid requests — body,
// target, method and headers (admin and booking tokens, Idempotency-Key, If-None-Match, the
// caller's identity) — against a real sequencer and journal in a temp dir. Every request
// must get exactly one answer, every error body must be valid JSON of the error shape, and
// the engine's invariants must hold afterwards. Runs under ASan+UBSan in `make test`, which
// turns any out-of-bounds read into a failure.
#include <doctest/doctest.h>
#include <simdjson.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <future>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "api/api.hpp"
#include "api/partition.hpp"
#include "tests/test_support.hpp"

namespace fs = std::filesystem;
using namespace slotd;

namespace {

using testing::TempDir;

// One request's connection: answers come through respond(), now or from the sequencer.
class TestConnection : public Responder, public CompletionTarget {
 public:
  explicit TestConnection(Api& api) : api_(api) {}

  void respond(HttpResponse&& r) override {
    // A second answer to one request would be a bug: count them.
    if (answers_.fetch_add(1) == 0) promise_.set_value(std::move(r));
  }
  CompletionTarget* completion_target() override { return this; }
  std::uint64_t completion_tag() override { return reinterpret_cast<std::uint64_t>(this); }
  std::function<void(HttpResponse&&)> defer() override {
    return [this](HttpResponse&& r) { respond(std::move(r)); };
  }
  // On the journal thread, like the server's io threads would be told.
  void complete(std::shared_ptr<const BatchResults> batch, std::vector<std::uint32_t> indexes) override {
    for (std::uint32_t i : indexes) {
      reinterpret_cast<TestConnection*>(batch->outcomes[i].tag)->respond(api_.answer_command(pending, *batch, i));
    }
  }

  HttpResponse wait() { return promise_.get_future().get(); }
  int answers() const { return answers_.load(); }
  PendingCommand pending;

 private:
  Api& api_;
  std::promise<HttpResponse> promise_;
  std::atomic<int> answers_{0};
};

struct Request {
  std::string method = "GET";
  std::string target;
  std::string body;
  std::string authorization;
  std::string booking_token;
  std::string idempotency_key;
  std::string if_none_match;
  std::string identity = "ip:127.0.0.1";
};

// Sends one request through the Api and waits for its single answer.
HttpResponse call(Api& api, const Request& q) {
  HttpRequest request;
  request.method = q.method;
  request.target = q.target;
  request.body = q.body;
  request.authorization = q.authorization;
  request.booking_token = q.booking_token;
  request.idempotency_key = q.idempotency_key;
  request.if_none_match = q.if_none_match;
  request.identity = q.identity;
  TestConnection connection(api);
  api.handle(request, connection, connection.pending);
  HttpResponse r = connection.wait();
  CHECK(connection.answers() == 1);
  return r;
}

std::string mutate(std::string s, std::mt19937_64& rng) {
  static const std::string alphabet = "{}[]\":,0123456789-.eE+ntrufalsxyz\\/\x01\xff\xc3\x28 ";
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < edits; ++i) {
    switch (rng() % 5) {
      case 0:  // flip a byte
        if (!s.empty()) s[rng() % s.size()] = alphabet[rng() % alphabet.size()];
        break;
      case 1:  // insert a byte
        s.insert(s.begin() + static_cast<long>(s.empty() ? 0 : rng() % (s.size() + 1)),
                 alphabet[rng() % alphabet.size()]);
        break;
      case 2:  // cut the tail
        if (!s.empty()) s.resize(rng() % s.size());
        break;
      case 3:  // duplicate a slice
        if (!s.empty()) {
          std::size_t a = rng() % s.size();
          s.insert(a, s.substr(a, rng() % 16));
        }
        break;
      case 4:  // delete a byte
        if (!s.empty()) s.erase(rng() % s.size(), 1);
        break;
    }
  }
  return s;
}

bool is_error_body(const std::string& body) {
  return body.rfind(R"({"error":{"code":")", 0) == 0 && body.find(R"(,"message":")") != std::string::npos;
}

bool is_valid_json(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  return !parser.parse(body.data(), body.size()).get(root);
}

struct Seed {
  const char* method;
  const char* target;
  const char* body;
};

// `count` requests, each a seed with one to three parts mutated, through api.handle: one
// well-formed answer each; `check` sees every request and its answer.
void run_mutations(Api& api, std::span<const Seed> seeds, int count, std::uint64_t rng_seed,
                   const std::function<void(const Request&, const HttpResponse&)>& check = {}) {
  const std::string admin = "Bearer admin-secret";
  const char* const methods[] = {"GET", "POST", "DELETE", "PATCH", "PUT", "HEAD", "get", ""};
  std::mt19937_64 rng(rng_seed);
  int answered = 0;
  for (int i = 0; i < count; ++i) {
    const Seed& seed = seeds[rng() % seeds.size()];
    Request q{seed.method, seed.target, seed.body};
    // Mutate one to three parts of the request.
    for (int parts = 1 + static_cast<int>(rng() % 3); parts > 0; --parts) {
      switch (rng() % 8) {
        case 0:
        case 1: q.body = mutate(q.body, rng); break;
        case 2:
        case 3: q.target = mutate(q.target, rng); break;
        case 4: q.method = methods[rng() % std::size(methods)]; break;
        case 5: q.booking_token = mutate("00112233445566778899aabbccddeeff", rng); break;
        case 6: q.idempotency_key = mutate("3f1c2a9e-7b4d-4e55-9a0b-000000000001", rng); break;
        default:
          q.identity = mutate(q.identity, rng);
          q.if_none_match = mutate("\"s1.1.1\"", rng);
      }
    }
    const int auth = static_cast<int>(rng() % 4);
    q.authorization = auth == 0 ? admin : auth == 1 ? mutate(admin, rng) : "";
    HttpResponse r = call(api, q);
    ++answered;
    CHECK(r.status >= 200);
    CHECK(r.status < 600);
    CHECK(r.status != 500);
    if (r.status >= 400) {
      CHECK_MESSAGE(is_error_body(r.body), q.method, " ", q.target, " ", q.body, " → ", r.body);
      CHECK_MESSAGE(is_valid_json(r.body), q.method, " ", q.target, " ", q.body, " → ", r.body);
    }
    if (check) check(q, r);
  }
  CHECK(answered == count);
}

}  // namespace

TEST_CASE("every request with a mutated body, target, method or header gets exactly one well-formed answer, and invariants hold") {
  TempDir dir;
  std::unique_ptr<Sequencer> sequencer;
  JournalStatus opened = Sequencer::open(dir.str(), SequencerConfig{}, sequencer);
  REQUIRE_MESSAGE(opened.ok, opened.message);
  sequencer->start();
  ServerStats stats;
  ApiOptions options;
  options.admin_token = "admin-secret";
  Api api(*sequencer, options, stats);
  const std::string admin = "Bearer admin-secret";

  // A little real state so that mutated ids hit existing objects too.
  REQUIRE(call(api, {"POST", "/doctors", R"({"name":"Dr. A","specialty":"GP"})", admin}).status == 201);
  REQUIRE(call(api, {"POST", "/slots",
                     R"({"doctorId":1,"slots":[{"start":"2031-01-06T08:00:00.000Z","end":"2031-01-06T08:30:00.000Z"},{"start":"2031-01-06T08:30:00.000Z","end":"2031-01-06T09:00:00.000Z"}]})",
                     admin})
              .status == 201);

  const Seed seeds[] = {
      {"POST", "/doctors", R"({"name":"Dr. B","specialty":"Skin","clinicId":1})"},
      {"POST", "/clinics", R"({"name":"North","timeZone":"Europe/Berlin"})"},
      {"PATCH", "/clinics/1", R"({"name":"Main","timeZone":"Asia/Tokyo"})"},
      {"POST", "/slots", R"({"doctorId":1,"start":"2031-01-07T08:00:00.000Z","end":"2031-01-07T08:30:00.000Z"})"},
      {"POST", "/slots", R"({"doctorId":"1","slots":[{"start":"2031-02-01T08:00:00Z","end":"2031-02-01T08:30:00+01:00"}]})"},
      {"POST", "/booking", R"({"slotId":1,"patientName":"Ann"})"},
      {"POST", "/booking", R"({"slotId":"2","patientName":"Bob"})"},
      {"POST", "/booking/1/confirm", ""},
      {"POST", "/booking/1/cancel", ""},
      {"GET", "/booking/1?token=00112233445566778899aabbccddeeff", ""},
      {"GET", "/slots/1?from=2031-01-06T08:00:00.000Z&to=2031-01-07T00:00:00.000Z&status=HELD", ""},
      {"GET", "/slots/1", ""},
      {"GET", "/doctors?clinicId=1", ""},
      {"GET", "/clinics", ""},
      {"DELETE", "/slots/2", ""},
      {"GET", "/admin/stats", ""},
      {"GET", "/admin/bookings?status=PENDING&limit=5", ""},
      {"GET", "/events?fromSeq=1&limit=10", ""},
      {"GET", "/metrics", ""},
  };
  run_mutations(api, seeds, 20000, 20261125);
  sequencer->stop();
  CHECK(sequencer->engine().broken_invariant() == std::nullopt);
}

TEST_CASE("on a process serving partitions 0 and 3, mutated requests get one well-formed answer, and a refused one changes neither partition") {
  // Partition 3 is served here too; partition 5 is another node's (421), 7 nobody's.
  std::string error;
  auto map = PartitionMap::parse("0 http://127.0.0.1:1\n3 http://127.0.0.1:1\n5 http://127.0.0.1:2\n", 0, error);
  REQUIRE_MESSAGE(map, error);
  map->served = {0, 3};
  set_partition_map(*map);
  struct RestoreMap {
    ~RestoreMap() { set_partition_map(PartitionMap{}); }
  } restore;
  TempDir dir0, dir3;
  std::unique_ptr<Sequencer> home, three;
  SequencerConfig config;
  config.engine.hold_ttl_ms = 24LL * 3600 * 1000;  // no expiry moves a seq during the run
  REQUIRE(Sequencer::open(dir0.str(), config, home).ok);
  REQUIRE(Sequencer::open(dir3.str(), config, three).ok);
  home->start();
  three->start();
  ServerStats stats;
  ApiOptions options;
  options.admin_token = "admin-secret";
  Api api(*home, options, stats);
  options.partition = 3;
  Api api3(*three, options, stats);
  api.serve_partitions({&api, &api3});
  const std::string admin = "Bearer admin-secret";

  // Partition 3's ids: 3 << 40 | n = 3298534883328 + n.
  REQUIRE(call(api, {"POST", "/doctors", R"({"name":"Dr. A","specialty":"GP"})", admin}).status == 201);
  REQUIRE(call(api, {"POST", "/doctors", R"({"name":"Dr. C","specialty":"GP","clinicId":3298534883329})", admin}).status == 201);
  for (const char* doctor : {"1", "3298534883329"}) {
    const std::string body = std::string(R"({"doctorId":)") + doctor +
        R"(,"slots":[{"start":"2031-01-06T08:00:00.000Z","end":"2031-01-06T08:30:00.000Z"},{"start":"2031-01-06T08:30:00.000Z","end":"2031-01-06T09:00:00.000Z"}]})";
    REQUIRE(call(api, {"POST", "/slots", body, admin}).status == 201);
  }
  // Each partition: a doctor and two slots, three events; nothing went to the other one.
  REQUIRE(home->durable_seq() == 3);
  REQUIRE(three->durable_seq() == 3);

  const Seed seeds[] = {
      {"POST", "/clinics?partition=3", R"({"name":"Third","timeZone":"UTC"})"},
      {"POST", "/doctors", R"({"name":"Dr. D","specialty":"Skin","clinicId":3298534883329})"},
      {"POST", "/slots", R"({"doctorId":3298534883329,"start":"2031-01-07T08:00:00.000Z","end":"2031-01-07T08:30:00.000Z"})"},
      {"POST", "/booking", R"({"slotId":3298534883329,"patientName":"Ann"})"},
      {"POST", "/booking", R"({"slotId":5497558138881,"patientName":"Elsewhere"})"},
      {"POST", "/booking/3298534883329/confirm", ""},
      {"POST", "/booking/3298534883329/reschedule", R"({"slotId":2})"},
      {"GET", "/slots/3298534883329?status=HELD", ""},
      {"GET", "/doctors", ""},
      {"GET", "/doctors?clinicId=3298534883329", ""},
      {"GET", "/clinics?partition=3", ""},
      {"GET", "/admin/stats", ""},
      {"GET", "/admin/bookings?limit=2&after=3298534883330", ""},
      {"GET", "/admin/bookings?clinicId=1&doctorId=3298534883329", ""},
      {"GET", "/events?partition=3&fromSeq=1", ""},
      {"GET", "/events?partition=5", ""},
      {"GET", "/metrics?partition=7", ""},
      {"GET", "/healthz", ""},
  };
  std::uint64_t seq0 = 3, seq3 = 3;
  run_mutations(api, seeds, 20000, 20261204, [&](const Request& q, const HttpResponse& r) {
    // A refusal is answered before anything reaches a sequencer, or refused by it: no seq moves.
    if (r.status >= 400) {
      CHECK_MESSAGE(home->durable_seq() == seq0, q.method, " ", q.target, " ", q.body, " → ", r.body);
      CHECK_MESSAGE(three->durable_seq() == seq3, q.method, " ", q.target, " ", q.body, " → ", r.body);
    }
    seq0 = home->durable_seq();
    seq3 = three->durable_seq();
  });
  // Writes reached both partitions (the mutations keep many requests valid).
  CHECK(three->durable_seq() > 3);
  CHECK(home->durable_seq() > 3);
  home->stop();
  three->stop();
  CHECK(home->engine().broken_invariant() == std::nullopt);
  CHECK(three->engine().broken_invariant() == std::nullopt);
}
