// An in-process slotd for the fuzz targets that go through the Api: a real Sequencer run
// without threads (Sequencer::run_queued) on a real RocksDB journal in a temp dir, an Api
// with an admin token, the built-in web UI and a webhook control that needs no network,
// and the durable batches for the feed. Time is a clock the world moves by one second per
// input, so holds expire as inputs go by (TTL 120 inputs), deterministically; each world
// starts at kStartMs, a day before its seeded slots.
//
// Checked on every request: exactly one answer, no 5xx, JSON bodies that parse (so valid
// UTF-8), errors of the one shape {"error":{"code","message"}}, a refused request (4xx) that
// wrote nothing to the journal, and no change of the engine's state hash without a journal
// record (so a refusal, or a read, changed nothing). After every input: the
// engine's invariants. At every rebuild (each kInputsPerWorld inputs, so memory stays
// bounded): a reopen of the journal replays to the same state hash. Checks are FUZZ_CHECKs.
#pragma once

#include <simdjson.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/api.hpp"
#include "api/errors.hpp"
#include "api/web_assets.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "webhooks/destination.hpp"

namespace slotd::fuzz {

inline constexpr char kAdminToken[] = "fuzz-admin-token";
inline constexpr char kAdminAuthorization[] = "Bearer fuzz-admin-token";
inline constexpr TimeMs kStartMs = 1'925'337'600'000;  // 2031-01-05T00:00:00Z
inline constexpr int kInputsPerWorld = 2'000;
inline constexpr std::size_t kMaxSlotsPerWorld = 20'000;  // rebuilt early past this

inline bool valid_json(std::string_view text) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  return !parser.parse(text.data(), text.size()).get(root);
}

// {"error":{"code":"…","message":"…"}} and nothing else, code and message not empty.
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

// One request's connection: the answer comes through respond(), at once, through a
// deferred answer, or as a completion while the world runs the sequencer.
class Connection : public Responder, public CompletionTarget {
 public:
  explicit Connection(Api& api) : api_(api) {}

  void respond(HttpResponse&& r) override {
    if (++answers_ == 1) response_ = std::move(r);
  }
  CompletionTarget* completion_target() override { return this; }
  std::uint64_t completion_tag() override { return reinterpret_cast<std::uint64_t>(this); }
  std::function<void(HttpResponse&&)> defer() override {
    return [this](HttpResponse&& r) { respond(std::move(r)); };
  }
  void complete(std::shared_ptr<const BatchResults> batch, std::vector<std::uint32_t> indexes) override {
    for (std::uint32_t i : indexes) {
      FUZZ_CHECK(batch->outcomes[i].tag == completion_tag(), "a completion for another connection");
      respond(api_.answer_command(pending, *batch, i));
    }
  }

  int answers() const { return answers_; }
  HttpResponse& response() { return response_; }

  PendingCommand pending;

 private:
  Api& api_;
  int answers_ = 0;
  HttpResponse response_;
};

// Webhook delivery without the network: destinations are judged by the URL's form and, for
// an IP literal, by its address (webhooks/destination); a host name is taken without DNS.
// Every registered webhook is "active" at its start.
class OfflineWebhooks : public WebhookControl {
 public:
  explicit OfflineWebhooks(const Sequencer& sequencer) : sequencer_(sequencer) {}

  std::optional<std::string> url_problem(std::string_view url) const override {
    std::string problem;
    if (!parse_webhook_url(url, problem)) return problem;
    return std::nullopt;
  }
  void check_destination(std::string url, std::function<void(std::optional<std::string>)> done) override {
    std::string problem;
    auto parsed = parse_webhook_url(url, problem);
    FUZZ_CHECK(parsed.has_value(), "a URL that url_problem passed does not parse: %s", problem.c_str());
    if (!parsed->host_is_ip) return done(std::nullopt);
    std::vector<IpAddress> addresses;
    std::string error;
    if (!resolve_host(parsed->host, addresses, error)) return done(error);
    done(refused_destination(parsed->host, addresses, /*allow_private=*/false));
  }
  std::optional<WebhookDeliveryStatus> status(Id webhook_id) const override {
    auto list = sequencer_.reads().webhooks();
    const WebhookInfo* w = list->find(webhook_id);
    if (!w || w->deleted) return std::nullopt;
    return WebhookDeliveryStatus{};
  }
  void redeliver(Id, std::optional<std::uint64_t>, std::function<void(std::string)> done) override {
    done({});
  }
  void render_metrics(std::string& out) const override { out += "slotd_fuzz_webhooks 0\n"; }

 private:
  const Sequencer& sequencer_;
};

class FuzzWorld {
 public:
  // The world of this process, built on first use, removed at exit.
  static FuzzWorld& get() {
    static FuzzWorld world;
    return world;
  }
  ~FuzzWorld() {
    tear_down();
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  Api& api() { return *api_; }
  Sequencer& sequencer() { return *sequencer_; }

  // Sends one request through Api::handle, runs the sequencer and checks the answer.
  HttpResponse call(HttpRequest request) {
    request.request_id = ++next_request_id_;
    if (request.identity.empty()) request.identity = "ip:127.0.0.1";
    // Expiry that is due runs first, so that what follows is this request's doing alone.
    FUZZ_CHECK(sequencer_->run_queued(), "the journal failed");
    const std::uint64_t seq_before = sequencer_->durable_seq();
    if (hash_seq_ != seq_before) {
      hash_ = sequencer_->engine().state_hash();
      hash_seq_ = seq_before;
    }

    Connection connection(*api_);
    api_->handle(request, connection, connection.pending);
    FUZZ_CHECK(sequencer_->run_queued(), "the journal failed");
    FUZZ_CHECK(connection.answers() == 1, "%d answers to %.*s %.*s", connection.answers(),
               static_cast<int>(request.method.size()), request.method.data(),
               static_cast<int>(request.target.size()), request.target.data());
    HttpResponse r = std::move(connection.response());

    const std::string_view body = r.body_view();
    FUZZ_CHECK(r.status >= 200 && r.status < 500, "status %u for %.*s %.*s: %.*s", r.status,
               static_cast<int>(request.method.size()), request.method.data(),
               static_cast<int>(request.target.size()), request.target.data(),
               static_cast<int>(body.size()), body.data());
    if (r.content_type == "application/json" && r.status != 304) {
      FUZZ_CHECK(valid_json(body), "not JSON: %.*s", static_cast<int>(body.size()), body.data());
    }
    FUZZ_CHECK(sequencer_->reads().as_of_seq() == sequencer_->durable_seq(),
               "readers see seq %llu, the journal holds %llu",
               static_cast<unsigned long long>(sequencer_->reads().as_of_seq()),
               static_cast<unsigned long long>(sequencer_->durable_seq()));
    if (r.status >= 400) {
      FUZZ_CHECK(error_shaped(body), "not an error body (%u): %.*s", r.status,
                 static_cast<int>(body.size()), body.data());
      FUZZ_CHECK(sequencer_->durable_seq() == seq_before, "a refused request (%u) wrote to the journal: %.*s",
                 r.status, static_cast<int>(body.size()), body.data());
    }
    // State changes only through journaled events: no record, no change.
    const std::uint64_t hash_after = sequencer_->engine().state_hash();
    if (sequencer_->durable_seq() == seq_before) {
      FUZZ_CHECK(hash_after == hash_, "%.*s %.*s (%u) changed the state without a journal record",
                 static_cast<int>(request.method.size()), request.method.data(),
                 static_cast<int>(request.target.size()), request.target.data(), r.status);
    }
    hash_ = hash_after;
    hash_seq_ = sequencer_->durable_seq();
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
    std::vector<std::shared_ptr<const BatchResults>> out;
    out.swap(batches_);
    return out;
  }

  // Call after each input: checks the engine, moves time on, rebuilds the world now and then.
  void end_input() {
    FUZZ_CHECK(sequencer_->run_queued(), "the journal failed");
    const auto broken = sequencer_->engine().broken_invariant();
    FUZZ_CHECK(!broken, "engine invariant broken: %s", broken ? broken->c_str() : "");
    clock_ms_ += 1000;
    if (++inputs_ % kInputsPerWorld == 0 || sequencer_->reads().slot_count() > kMaxSlotsPerWorld) {
      check_recovery();
      tear_down();
      std::error_code ec;
      std::filesystem::remove_all(data_dir(), ec);
      clock_ms_ = kStartMs;  // a new journal, so time may start again: the seeds stay in the future
      build();
    }
  }

 private:
  FuzzWorld() {
    // Under TMPDIR (ctest and long_run.sh point it into the build directory).
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/slotd_fuzz_XXXXXX";
    FUZZ_CHECK(::mkdtemp(pattern.data()) != nullptr, "cannot make a temp dir from %s", pattern.c_str());
    root_ = pattern;
    build();
  }

  std::string data_dir() const { return (root_ / std::to_string(generation_)).string(); }

  SequencerConfig config() {
    SequencerConfig config;
    config.clock = [this] { return clock_ms_; };
    config.expiry_interval = std::chrono::milliseconds(60'000);  // fuzz time: every 60 inputs
    config.snapshot_every = 0;  // snapshots fork; the snapshot loader has its own target
    config.log = [](const std::string&) {};
    config.on_journal_failure = [](const std::string& message) {
      FUZZ_CHECK(false, "journal failure: %s", message.c_str());
    };
    return config;
  }

  void build() {
    ++generation_;
    JournalStatus opened = Sequencer::open(data_dir(), config(), sequencer_);
    FUZZ_CHECK(opened.ok, "cannot open the sequencer: %s", opened.message.c_str());
    sequencer_->add_observer([this](const std::shared_ptr<const BatchResults>& batch) {
      batches_.push_back(batch);
      if (batches_.size() > 1024) batches_.erase(batches_.begin());  // nobody is taking them
    });
    webhooks_ = std::make_unique<OfflineWebhooks>(*sequencer_);
    ApiOptions options;
    options.admin_token = kAdminToken;
    options.max_bulk_slots = 64;  // bounds how much one input can add
    options.webhooks = webhooks_.get();
    options.web = [this](const HttpRequest& request) {
      std::string_view path = request.target.substr(0, request.target.find_first_of("?#"));
      return web_.lookup(path, request.if_none_match);
    };
    api_ = std::make_unique<Api>(*sequencer_, options, stats_);

    // Something for ids in inputs to hit: clinic 2, doctors 1-2, slots 1-4, booking 1,
    // webhook 1, waitlist entry 1.
    seed("POST", "/clinics", R"({"name":"North","timeZone":"Europe/Berlin"})");
    seed("POST", "/doctors", R"({"name":"Dr. A","specialty":"GP"})");
    seed("POST", "/doctors", R"({"name":"Dr. B","specialty":"Skin","clinicId":2})");
    seed("POST", "/slots",
         R"({"doctorId":1,"slots":[{"start":"2031-01-06T08:00:00.000Z","end":"2031-01-06T08:30:00.000Z"},)"
         R"({"start":"2031-01-06T08:30:00.000Z","end":"2031-01-06T09:00:00.000Z"},)"
         R"({"start":"2031-01-06T09:00:00.000Z","end":"2031-01-06T09:30:00.000Z"}]})");
    seed("POST", "/slots", R"({"doctorId":2,"start":"2031-01-07T08:00:00Z","end":"2031-01-07T09:30:00+01:00"})");
    seed("POST", "/booking", R"({"slotId":1,"patientName":"Ann"})");
    seed("POST", "/admin/webhooks", R"({"url":"https://hooks.example/slotd","events":["booking.confirmed"]})");
    seed("POST", "/waitlist",
         R"({"doctorId":1,"from":"2031-01-06T00:00:00Z","to":"2031-01-07T00:00:00Z","patientName":"Wes"})");
    batches_.clear();
  }

  void seed(std::string_view method, std::string_view target, std::string_view body) {
    HttpResponse r = call(method, target, body);
    FUZZ_CHECK(r.status == 201, "seeding %.*s failed: %u %s", static_cast<int>(target.size()),
               target.data(), r.status, r.body.c_str());
  }

  // Recovery rebuilds exactly the acknowledged state: reopening the journal replays to the
  // same hash and seq.
  void check_recovery() {
    FUZZ_CHECK(sequencer_->run_queued(), "the journal failed");
    const std::uint64_t hash = sequencer_->engine().state_hash();
    const std::uint64_t seq = sequencer_->durable_seq();
    tear_down();
    JournalStatus reopened = Sequencer::open(data_dir(), config(), sequencer_);
    FUZZ_CHECK(reopened.ok, "cannot reopen the journal: %s", reopened.message.c_str());
    FUZZ_CHECK(sequencer_->durable_seq() == seq, "replay stopped at %llu of %llu",
               static_cast<unsigned long long>(sequencer_->durable_seq()),
               static_cast<unsigned long long>(seq));
    FUZZ_CHECK(sequencer_->engine().state_hash() == hash, "replay gives another state hash");
  }

  void tear_down() {
    hash_seq_ = ~std::uint64_t{0};
    api_.reset();
    webhooks_.reset();
    sequencer_.reset();
    batches_.clear();
  }

  std::filesystem::path root_;
  TimeMs clock_ms_ = kStartMs;
  const WebAssets web_;
  std::unique_ptr<Sequencer> sequencer_;
  std::unique_ptr<OfflineWebhooks> webhooks_;
  ServerStats stats_;
  std::unique_ptr<Api> api_;
  std::vector<std::shared_ptr<const BatchResults>> batches_;
  std::uint64_t hash_ = 0;  // the engine's state hash at journal seq hash_seq_
  std::uint64_t hash_seq_ = ~std::uint64_t{0};
  std::uint64_t next_request_id_ = 0;
  std::uint64_t inputs_ = 0;
  std::uint64_t generation_ = 0;
};

}  // namespace slotd::fuzz
