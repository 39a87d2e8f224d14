// Api::handle on hostile input, without sockets: seeded mutations of valid requests (bodies,
// targets, headers) against a real sequencer and journal in a temp dir. Every request must
// get exactly one well-formed answer, and the engine's invariants must hold afterwards.
// Runs under ASan+UBSan in `make test`, which turns any out-of-bounds read into a failure.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <random>
#include <string>
#include <vector>

#include "api/api.hpp"
#include "tests/test_support.hpp"

namespace fs = std::filesystem;
using namespace slotd;

namespace {

using testing::TempDir;

// Sends one request through the Api and waits for its single answer.
HttpResponse call(Api& api, std::string method, std::string target, std::string body,
                  std::string authorization = {}, std::string booking_token = {}) {
  auto answered = std::make_shared<std::atomic<int>>(0);
  auto promise = std::make_shared<std::promise<HttpResponse>>();
  auto future = promise->get_future();
  HttpRequest request;
  request.method = std::move(method);
  request.target = std::move(target);
  request.body = std::move(body);
  request.authorization = std::move(authorization);
  request.booking_token = std::move(booking_token);
  request.client_key = "fuzz";
  request.post_to_io = [](std::function<void()> fn) { fn(); };
  api.handle(std::move(request), [answered, promise](HttpResponse&& r) {
    // A second answer to one request would be a bug: count them.
    if (answered->fetch_add(1) == 0) promise->set_value(std::move(r));
  });
  HttpResponse r = future.get();
  CHECK(answered->load() == 1);
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

}  // namespace

TEST_CASE("every mutated request gets exactly one answer, errors are well-formed, invariants hold") {
  TempDir dir;
  std::unique_ptr<Sequencer> sequencer;
  JournalStatus opened = Sequencer::open(dir.str(), SequencerConfig{}, sequencer);
  REQUIRE_MESSAGE(opened.ok, opened.message);
  sequencer->start();
  ServerStats stats;
  Api api(*sequencer, ApiOptions{"admin-secret", 10'000}, stats);
  const std::string admin = "Bearer admin-secret";

  // A little real state so that mutated ids hit existing objects too.
  REQUIRE(call(api, "POST", "/doctors", R"({"name":"Dr. A","specialty":"GP"})", admin).status == 201);
  REQUIRE(call(api, "POST", "/slots",
               R"({"doctorId":1,"slots":[{"start":"2031-01-06T08:00:00.000Z","end":"2031-01-06T08:30:00.000Z"},{"start":"2031-01-06T08:30:00.000Z","end":"2031-01-06T09:00:00.000Z"}]})",
               admin)
              .status == 201);

  struct Seed {
    const char* method;
    const char* target;
    const char* body;
  };
  const Seed seeds[] = {
      {"POST", "/doctors", R"({"name":"Dr. B","specialty":"Skin","clinicId":1})"},
      {"POST", "/clinics", R"({"name":"North"})"},
      {"POST", "/slots", R"({"doctorId":1,"start":"2031-01-07T08:00:00.000Z","end":"2031-01-07T08:30:00.000Z"})"},
      {"POST", "/slots", R"({"doctorId":"1","slots":[{"start":"2031-02-01T08:00:00Z","end":"2031-02-01T08:30:00+01:00"}]})"},
      {"POST", "/booking", R"({"slotId":1,"patientName":"Ann"})"},
      {"POST", "/booking", R"({"slotId":"2","patientName":"Bob"})"},
      {"POST", "/booking/1/confirm", ""},
      {"POST", "/booking/1/cancel", ""},
      {"GET", "/booking/1?token=00112233445566778899aabbccddeeff", ""},
      {"GET", "/slots/1?from=2031-01-06T08:00:00.000Z&to=2031-01-07T00:00:00.000Z&status=HELD", ""},
      {"GET", "/doctors?clinicId=1", ""},
      {"DELETE", "/slots/2", ""},
      {"GET", "/metrics", ""},
  };

  std::mt19937_64 rng(20261125);
  int answered = 0;
  for (int i = 0; i < 20000; ++i) {
    const Seed& seed = seeds[rng() % std::size(seeds)];
    std::string target = seed.target;
    std::string body = seed.body;
    switch (rng() % 3) {
      case 0: body = mutate(body, rng); break;
      case 1: target = mutate(target, rng); break;
      default:
        body = mutate(body, rng);
        target = mutate(target, rng);
    }
    const bool as_admin = rng() % 2 == 0;
    HttpResponse r = call(api, seed.method, target, body, as_admin ? admin : "",
                          rng() % 4 == 0 ? mutate("00112233445566778899aabbccddeeff", rng) : "");
    ++answered;
    CHECK(r.status >= 200);
    CHECK(r.status < 600);
    CHECK(r.status != 500);
    if (r.status >= 400) CHECK_MESSAGE(is_error_body(r.body), seed.method, " ", target, " ", body, " → ", r.body);
  }
  CHECK(answered == 20000);
  sequencer->stop();
  std::string broken = sequencer->reads().read([](const Engine& e, std::uint64_t) { return e.check_invariants(); });
  CHECK(broken.empty());
}
