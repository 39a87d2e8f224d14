// An in-process slotd for the fuzz targets that go through the Api: a real Sequencer and
// journal (a real RocksDB whose files live in memory, RocksDB's MemEnv), an Api with an
// admin token, a connection that waits for the one answer of each request, and the
// durable batches for the feed. Time is a clock the world moves by one second per input,
// so holds expire as inputs go by (TTL 120 inputs) without depending on the wall clock.
//
// State carries over between inputs (a later input meets what earlier ones created) and
// the world is rebuilt every kInputsPerWorld inputs so memory stays bounded; the engine's
// invariants are checked at each rebuild. Checks are FUZZ_CHECKs (tests/fuzz/fuzz_check.hpp).
#pragma once

#include <rocksdb/env.h>
#include <simdjson.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "api/api.hpp"
#include "api/errors.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace slotd::fuzz {

inline constexpr char kAdminToken[] = "fuzz-admin-token";
inline constexpr char kAdminAuthorization[] = "Bearer fuzz-admin-token";
inline constexpr TimeMs kStartMs = 1'925'337'600'000;  // 2031-01-05T00:00:00Z
inline constexpr int kInputsPerWorld = 20'000;

inline bool valid_json(std::string_view text) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  return !parser.parse(text.data(), text.size()).get(root);
}

// {"error":{"code":"…","message":"…"}} and nothing else.
inline bool error_shaped(std::string_view text) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::object root, error;
  std::string_view code, message;
  if (parser.parse(text.data(), text.size()).get_object().get(root) || root.size() != 1 ||
      root["error"].get_object().get(error) || error.size() != 2 ||
      error["code"].get_string().get(code) || error["message"].get_string().get(message)) {
    return false;
  }
  return !code.empty() && !message.empty();
}

// One request's connection: the answer comes through respond(), at once or from the
// journal thread once the command's batch is durable.
class WaitingConnection : public Responder, public CompletionTarget {
 public:
  explicit WaitingConnection(Api& api) : api_(api) {}

  void respond(HttpResponse&& r) override {
    std::lock_guard lock(mutex_);
    if (++answers_ == 1) response_ = std::move(r);
    cv_.notify_all();
  }
  CompletionTarget* completion_target() override { return this; }
  std::uint64_t completion_tag() override { return reinterpret_cast<std::uint64_t>(this); }
  void complete(std::shared_ptr<const BatchResults> batch, std::vector<std::uint32_t> indexes) override {
    for (std::uint32_t i : indexes) {
      FUZZ_CHECK(batch->outcomes[i].tag == completion_tag(), "a completion for another connection");
      respond(api_.answer_command(pending, *batch, i));
    }
  }

  HttpResponse wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return answers_ > 0; });
    FUZZ_CHECK(answers_ == 1, "%d answers to one request", answers_);
    return std::move(response_);
  }

  PendingCommand pending;

 private:
  Api& api_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int answers_ = 0;
  HttpResponse response_;
};

class FuzzWorld {
 public:
  // The world of this process, built on first use.
  static FuzzWorld& get() {
    static FuzzWorld* world = new FuzzWorld();  // never destroyed: threads outlive main
    return *world;
  }

  Api& api() { return *api_; }
  Sequencer& sequencer() { return *sequencer_; }

  // Sends one request through Api::handle and waits for its answer; checks what every
  // answer must be: one answer, no 5xx, JSON bodies that parse, errors of the one shape,
  // and a refused request that wrote nothing to the journal.
  HttpResponse call(HttpRequest request) {
    request.request_id = ++next_request_id_;
    if (request.identity.empty()) request.identity = "ip:127.0.0.1";
    const std::uint64_t seq_before = sequencer_->durable_seq();
    WaitingConnection connection(*api_);
    api_->handle(request, connection, connection.pending);
    HttpResponse r = connection.wait();
    const std::string_view body = r.body_view();
    FUZZ_CHECK(r.status >= 200 && r.status < 500, "status %u for %.*s %.*s: %.*s", r.status,
               static_cast<int>(request.method.size()), request.method.data(),
               static_cast<int>(request.target.size()), request.target.data(),
               static_cast<int>(body.size()), body.data());
    if (r.content_type == "application/json" && r.status != 304) {
      FUZZ_CHECK(valid_json(body), "not JSON: %.*s", static_cast<int>(body.size()), body.data());
    }
    if (r.status >= 400) {
      FUZZ_CHECK(error_shaped(body), "not an error body: %.*s", static_cast<int>(body.size()), body.data());
      bool wrote = false;
      JournalStatus read = sequencer_->read_journal(seq_before + 1, 0, [&](const JournalRecord& rec) {
        wrote |= rec.request_id == request.request_id;
        return true;
      });
      FUZZ_CHECK(read.ok, "journal read failed: %s", read.message.c_str());
      FUZZ_CHECK(!wrote, "a refused request (%u) wrote to the journal", r.status);
    }
    return r;
  }

  HttpResponse call(std::string_view method, std::string_view target, std::string_view body,
                    bool admin = true) {
    HttpRequest request;
    request.method = method;
    request.target = target;
    request.body = body;
    if (admin) request.authorization = kAdminAuthorization;
    return call(request);
  }

  // Durable batches with events, oldest first, since the last call (for the feed).
  std::vector<std::shared_ptr<const BatchResults>> take_batches() {
    std::lock_guard lock(batches_mutex_);
    std::vector<std::shared_ptr<const BatchResults>> out(batches_.begin(), batches_.end());
    batches_.clear();
    return out;
  }

  // Call after each input: moves time on, and rebuilds the world now and then.
  void end_input() {
    clock_ms_->fetch_add(1000);
    if (++inputs_ % kInputsPerWorld == 0) rebuild();
  }

 private:
  FuzzWorld() : clock_ms_(std::make_shared<std::atomic<TimeMs>>(kStartMs)) { build(); }

  void build() {
    env_.reset(rocksdb::NewMemEnv(rocksdb::Env::Default()));
    SequencerConfig config;
    config.journal_env = env_.get();
    config.clock = [clock = clock_ms_] { return clock->load(); };
    // Expiry runs when a batch is decided at least this long (fuzz time) after the last
    // one; the sequencer also wakes this often in real time, rarely enough not to matter.
    config.expiry_interval = std::chrono::milliseconds(60'000);
    config.on_journal_failure = [](const std::string& message) {
      FUZZ_CHECK(false, "journal failure: %s", message.c_str());
    };
    JournalStatus opened = Sequencer::open("/fuzz-world/" + std::to_string(++generation_), config, sequencer_);
    FUZZ_CHECK(opened.ok, "cannot open the sequencer: %s", opened.message.c_str());
    sequencer_->add_observer([this](const std::shared_ptr<const BatchResults>& batch) {
      std::lock_guard lock(batches_mutex_);
      batches_.push_back(batch);
      if (batches_.size() > 1024) batches_.pop_front();  // nobody is taking them
    });
    sequencer_->start();
    ApiOptions options;
    options.admin_token = kAdminToken;
    options.max_bulk_slots = 64;  // bounds how much one input can add
    api_ = std::make_unique<Api>(*sequencer_, options, stats_);

    // Something for ids in inputs to hit: clinic 2, doctors 1-2, slots 1-4, booking 1.
    seed("POST", "/clinics", R"({"name":"North","timeZone":"Europe/Berlin"})");
    seed("POST", "/doctors", R"({"name":"Dr. A","specialty":"GP"})");
    seed("POST", "/doctors", R"({"name":"Dr. B","specialty":"Skin","clinicId":2})");
    seed("POST", "/slots",
         R"({"doctorId":1,"slots":[{"start":"2031-01-06T08:00:00.000Z","end":"2031-01-06T08:30:00.000Z"},)"
         R"({"start":"2031-01-06T08:30:00.000Z","end":"2031-01-06T09:00:00.000Z"},)"
         R"({"start":"2031-01-06T09:00:00.000Z","end":"2031-01-06T09:30:00.000Z"}]})");
    seed("POST", "/slots", R"({"doctorId":2,"start":"2031-01-07T08:00:00Z","end":"2031-01-07T08:30:00+01:00"})");
    seed("POST", "/booking", R"({"slotId":1,"patientName":"Ann"})");
    take_batches();
  }

  void seed(std::string_view method, std::string_view target, std::string_view body) {
    HttpResponse r = call(method, target, body);
    FUZZ_CHECK(r.status == 201, "seeding %.*s failed: %u %s", static_cast<int>(target.size()),
               target.data(), r.status, r.body.c_str());
  }

  void rebuild() {
    sequencer_->stop();
    auto broken = sequencer_->engine().broken_invariant();
    FUZZ_CHECK(!broken, "engine invariant broken: %s", broken ? broken->c_str() : "");
    api_.reset();
    sequencer_.reset();
    env_.reset();
    {
      std::lock_guard lock(batches_mutex_);
      batches_.clear();
    }
    build();
  }

  std::shared_ptr<std::atomic<TimeMs>> clock_ms_;
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<Sequencer> sequencer_;
  ServerStats stats_;
  std::unique_ptr<Api> api_;
  std::uint64_t next_request_id_ = 0;
  std::uint64_t inputs_ = 0;
  std::uint64_t generation_ = 0;
  std::mutex batches_mutex_;
  std::deque<std::shared_ptr<const BatchResults>> batches_;
};

}  // namespace slotd::fuzz
