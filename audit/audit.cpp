#include "audit/audit.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "api/iso_time.hpp"
#include "api/json_out.hpp"
#include "journal/journal.hpp"
#include "snapshots/snapshot_store.hpp"

namespace slotd {
namespace {

namespace fs = std::filesystem;

struct Args {
  std::string tool;
  std::string data_dir;
  std::optional<std::uint64_t> from_seq, until_seq;
};

constexpr const char* kUsage =
    "       slotd replay --data-dir D [--until-seq N]   rebuild from the journal alone: last seq, counts, state hash (and the state as of N)\n"
    "       slotd verify --data-dir D                   gap-free journal, snapshots equal to a replay, invariants; exit 1 on the first problem\n"
    "       slotd export --data-dir D [--from-seq N] [--until-seq M]   journal records as JSON lines\n";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "slotd: %s\nusage:\n%s", message.c_str(), kUsage);
  return 2;
}

int fail(const Args& args, const std::string& message) {
  std::fprintf(stderr, "slotd %s: FAIL: %s\n", args.tool.c_str(), message.c_str());
  return 1;
}

std::optional<std::uint64_t> parse_seq(std::string_view v) {
  std::uint64_t x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc{} || p != v.data() + v.size()) return std::nullopt;
  return x;
}

// Parses flags after the tool name; returns an exit code on error or help.
std::optional<int> parse_args(int argc, char** argv, Args& args) {
  args.tool = argv[1];
  const char* env_dir = std::getenv("SLOTD_DATA_DIR");
  args.data_dir = env_dir && *env_dir ? env_dir : "./data";
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("usage:\n%s", kUsage);
      return 0;
    }
    std::string_view value;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return usage_error(fmt::format("{} needs a value", arg));
    }
    if (arg == "--data-dir") {
      args.data_dir = value;
    } else if (arg == "--until-seq" && args.tool != "verify") {
      if (!(args.until_seq = parse_seq(value))) return usage_error("--until-seq needs a seq");
    } else if (arg == "--from-seq" && args.tool == "export") {
      args.from_seq = parse_seq(value);
      if (!args.from_seq || *args.from_seq == 0) return usage_error("--from-seq needs a seq >= 1");
    } else {
      return usage_error(fmt::format("unknown flag {} for slotd {}", arg, args.tool));
    }
  }
  if (args.data_dir.empty()) return usage_error("--data-dir needs a directory");
  return std::nullopt;
}

// Buffered stdout: large outputs go out in pieces.
class Out {
 public:
  ~Out() { flush(); }
  std::string& buffer() {
    if (text_.size() > (1 << 20)) flush();
    return text_;
  }
  void flush() {
    std::fwrite(text_.data(), 1, text_.size(), stdout);
    std::fflush(stdout);
    text_.clear();
  }

 private:
  std::string text_;
};

void append_counts(std::string& out, const Engine& e) {
  fmt::format_to(std::back_inserter(out),
                 R"("clinics":{},"doctors":{},"slots":{{"total":{},"available":{},"held":{},"booked":{},"closed":{}}},)"
                 R"("bookings":{{"total":{},"pending":{},"confirmed":{},"failed":{},"cancelled":{}}},"rememberedKeys":{})",
                 e.clinic_count(), e.doctor_count(), e.slot_count(), e.count(SlotStatus::available),
                 e.count(SlotStatus::held), e.count(SlotStatus::booked), e.count(SlotStatus::closed),
                 e.booking_count(), e.count(BookingStatus::pending), e.count(BookingStatus::confirmed),
                 e.count(BookingStatus::failed), e.count(BookingStatus::cancelled), e.remembered_count());
}

// The state as of the replay's seq: everything but tokens and client digests.
void append_state(Out& o, const Engine& e) {
  std::string* out = &o.buffer();
  *out += R"(,"state":{"clinics":[)";
  for (std::size_t i = 0; i < e.clinics().size(); ++i) {
    if (i) *out += ',';
    fmt::format_to(std::back_inserter(*out), R"({{"id":{},"name":)", external_id(i + 1));
    append_json_string(*out, e.clinics()[i].name);
    *out += R"(,"timeZone":)";
    append_json_string(*out, e.clinics()[i].time_zone);
    *out += '}';
  }
  *out += R"(],"doctors":[)";
  for (std::size_t i = 0; i < e.doctors().size(); ++i) {
    const Doctor& d = e.doctors()[i];
    if (i) *out += ',';
    fmt::format_to(std::back_inserter(*out), R"({{"id":{},"clinicId":{},"name":)",
                   external_id(i + 1), external_id(d.clinic_id));
    append_json_string(*out, d.name);
    *out += R"(,"specialty":)";
    append_json_string(*out, d.specialty);
    *out += '}';
  }
  *out += R"(],"slots":[)";
  for (std::size_t i = 0; i < e.slots().size(); ++i) {
    out = &o.buffer();
    const Slot& s = e.slots()[i];
    if (i) *out += ',';
    fmt::format_to(std::back_inserter(*out), R"({{"id":{},"doctorId":{},"start":")",
                   external_id(i + 1), external_id(s.doctor_id));
    append_iso8601(*out, s.start_ms);
    *out += R"(","end":")";
    append_iso8601(*out, s.end_ms);
    fmt::format_to(std::back_inserter(*out), R"(","status":"{}","bookingId":)", to_string(s.status));
    *out += s.booking_id ? std::to_string(external_id(s.booking_id)) : "null";
    *out += '}';
  }
  *out += R"(],"bookings":[)";
  for (std::size_t i = 0; i < e.bookings().size(); ++i) {
    out = &o.buffer();
    const Booking& b = e.bookings()[i];
    if (i) *out += ',';
    fmt::format_to(std::back_inserter(*out),
                   R"({{"id":{},"slotId":{},"heldSlotId":{},"status":"{}","patientName":)",
                   external_id(i + 1), external_id(b.slot_id), external_id(b.held_slot_id),
                   to_string(b.status));
    append_json_string(*out, e.patient_name(b));
    *out += R"(,"createdAt":)";
    append_iso8601_or_null(*out, b.created_at_ms);
    *out += R"(,"expiresAt":)";
    append_iso8601_or_null(*out, b.expires_at_ms);
    *out += R"(,"confirmedAt":)";
    append_iso8601_or_null(*out, b.confirmed_at_ms);
    *out += R"(,"endedAt":)";
    append_iso8601_or_null(*out, b.ended_at_ms);
    fmt::format_to(std::back_inserter(*out), R"(,"heldSeq":{}}})", b.held_seq);
  }
  o.buffer() += "]}";
}

JournalStatus open_journal(const Args& args, std::unique_ptr<Journal>& journal) {
  return Journal::open_read_only((fs::path(args.data_dir) / "journal").string(), journal);
}

int run_replay(const Args& args) {
  std::unique_ptr<Journal> journal;
  if (JournalStatus st = open_journal(args, journal); !st) return fail(args, st.message);
  const std::uint64_t last = journal->last_seq();
  const std::uint64_t until = std::min(args.until_seq.value_or(last), last);
  Engine engine;
  std::uint64_t applied = 0;
  if (until > 0) {
    JournalStatus st = journal->read(1, until, [&](const JournalRecord& r) {
      engine.apply(r.event);
      applied = r.seq;
      return true;
    });
    if (!st) return fail(args, st.message);
  }
  Out out;
  fmt::format_to(std::back_inserter(out.buffer()), R"({{"lastSeq":{},"journalLastSeq":{},"stateHash":"{:016x}",)",
                 applied, last, engine.state_hash());
  append_counts(out.buffer(), engine);
  if (args.until_seq) append_state(out, engine);
  out.buffer() += "}\n";
  return 0;
}

// verify: a journal event that apply refuses aborts the engine (a bug or a forged
// journal); this names its seq before the process ends.
std::atomic<std::uint64_t> g_applying_seq{0};

void on_abort(int) {
  char text[96] = "slotd verify: FAIL: the event at seq ";
  std::size_t n = std::strlen(text);
  char digits[24];
  std::size_t d = 0;
  std::uint64_t seq = g_applying_seq.load();
  do {
    digits[d++] = static_cast<char>('0' + seq % 10);
    seq /= 10;
  } while (seq > 0);
  while (d > 0) text[n++] = digits[--d];
  const char tail[] = " cannot be applied (the line above says why)\n";
  std::memcpy(text + n, tail, sizeof tail - 1);
  n += sizeof tail - 1;
  (void)!::write(2, text, n);
  ::_exit(1);
}

int run_verify(const Args& args) {
  // Snapshots first: one is published only once its seq is durable, so every snapshot
  // listed now is within the journal opened next.
  SnapshotStore store((fs::path(args.data_dir) / "snapshots").string());
  std::vector<std::uint64_t> snapshots;
  if (SnapshotStatus s = store.list(snapshots); !s) return fail(args, s.message);
  std::sort(snapshots.begin(), snapshots.end());
  std::unique_ptr<Journal> journal;
  if (JournalStatus st = open_journal(args, journal); !st) return fail(args, st.message);
  const std::uint64_t last = journal->last_seq();
  for (std::uint64_t s : snapshots) {
    if (s > last) {
      return fail(args, fmt::format("snapshot {} is beyond the journal's last seq {}", store.path_of(s), last));
    }
  }
  ::signal(SIGABRT, on_abort);
  Engine engine;
  std::size_t next_snapshot = 0;
  std::size_t matched = 0, removed = 0;
  std::string problem;
  auto check_snapshot = [&](std::uint64_t seq) {
    Engine restored;
    SnapshotHeader header;
    SnapshotStatus loaded = store.load(seq, restored, header);
    if (!loaded) {
      std::error_code ec;
      if (!fs::exists(store.path_of(seq), ec)) {
        ++removed;  // retention of a running slotd removed it meanwhile
        return true;
      }
      problem = fmt::format("snapshot {}: {}", store.path_of(seq), loaded.message);
      return false;
    }
    if (header.state_hash != engine.state_hash()) {
      problem = fmt::format("snapshot {}: state hash {:016x}, but the journal replays to {:016x} at seq {}",
                            store.path_of(seq), header.state_hash, engine.state_hash(), seq);
      return false;
    }
    ++matched;
    return true;
  };
  JournalStatus st = journal->read(1, last, [&](const JournalRecord& r) {
    g_applying_seq.store(r.seq);
    engine.apply(r.event);
    while (next_snapshot < snapshots.size() && snapshots[next_snapshot] == r.seq) {
      if (!check_snapshot(snapshots[next_snapshot++])) return false;
    }
    return true;
  });
  ::signal(SIGABRT, SIG_DFL);
  if (!problem.empty()) return fail(args, problem);
  if (!st) return fail(args, st.message);
  if (engine.applied_events() != last) {
    return fail(args, fmt::format("the replay stopped at seq {} before the last seq {}", engine.applied_events(), last));
  }
  if (auto broken = engine.broken_invariant()) {
    return fail(args, fmt::format("after seq {} the state breaks an invariant: {}", last, *broken));
  }
  std::printf("slotd verify: ok: journal seqs 1..%llu gap-free; %zu snapshot(s) equal to a replay to their seq%s; "
              "invariants hold; state hash %016llx\n",
              static_cast<unsigned long long>(last), matched,
              removed ? fmt::format(" ({} removed by retention while verifying)", removed).c_str() : "",
              static_cast<unsigned long long>(engine.state_hash()));
  return 0;
}

int run_export(const Args& args) {
  std::unique_ptr<Journal> journal;
  if (JournalStatus st = open_journal(args, journal); !st) return fail(args, st.message);
  const std::uint64_t from = args.from_seq.value_or(1);
  const std::uint64_t until = std::min(args.until_seq.value_or(journal->last_seq()), journal->last_seq());
  if (until < from) return 0;
  Out out;
  JournalStatus st = journal->read(from, until - from + 1, [&](const JournalRecord& r) {
    std::string& b = out.buffer();
    append_event_json(b, r);
    b += '\n';
    return true;
  });
  out.flush();
  if (!st) return fail(args, st.message);
  return 0;
}

}  // namespace

bool is_audit_command(std::string_view arg) {
  return arg == "replay" || arg == "verify" || arg == "export";
}

const char* audit_usage() { return kUsage; }

int run_audit_command(int argc, char** argv) {
  Args args;
  if (auto code = parse_args(argc, argv, args)) return *code;
  std::error_code ec;
  if (!fs::is_directory(args.data_dir, ec)) return fail(args, fmt::format("no data dir at {}", args.data_dir));
  // Ids are shown as the API shows them: with the data dir's partition.
  std::string error;
  auto partition = read_data_dir_partition(args.data_dir, error);
  if (!partition) return fail(args, error);
  set_partition_map(PartitionMap{*partition, {}});
  if (args.tool == "replay") return run_replay(args);
  if (args.tool == "verify") return run_verify(args);
  return run_export(args);
}

}  // namespace slotd
