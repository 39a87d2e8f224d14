// Snapshots with a real sequencer and RocksDB journal in a temp dir: fork-based snapshots
// while commands run, recovery from snapshot + journal tail, skipping every kind of bad
// snapshot with a log line, retention, and no snapshot before its seq is durable; and the
// huge-page chunks that keep the snapshot's fork() short.
#include <doctest/doctest.h>
#include <sched.h>
#include <sys/mman.h>
#include <xxhash.h>

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "journal/journal.hpp"
#include "sequencer/sequencer.hpp"
#include "snapshots/huge_page_chunks.hpp"
#include "tests/failing_sync_fs.hpp"
#include "tests/test_support.hpp"

namespace fs = std::filesystem;
using namespace slotd;
using testing::FailingSyncFileSystem;
using testing::TempDir;

namespace {

constexpr TimeMs kBase = 1'925'000'000'000;

struct Log {
  std::shared_ptr<std::vector<std::string>> lines = std::make_shared<std::vector<std::string>>();
  std::shared_ptr<std::mutex> mutex = std::make_shared<std::mutex>();
  std::function<void(const std::string&)> fn() const {
    return [lines = lines, mutex = mutex](const std::string& line) {
      std::lock_guard lock(*mutex);
      lines->push_back(line);
    };
  }
  bool has(const std::string& a, const std::string& b = {}) const {
    std::lock_guard lock(*mutex);
    for (const std::string& l : *lines) {
      if (l.find(a) != std::string::npos && l.find(b) != std::string::npos) return true;
    }
    return false;
  }
  std::string all() const {
    std::lock_guard lock(*mutex);
    std::string out;
    for (const std::string& l : *lines) out += l + "\n";
    return out;
  }
};

std::unique_ptr<Sequencer> open_sequencer(const fs::path& dir, SequencerConfig config = {}) {
  std::unique_ptr<Sequencer> seq;
  JournalStatus st = Sequencer::open(dir.string(), std::move(config), seq);
  REQUIRE_MESSAGE(st.ok, st.message);
  return seq;
}

SequencerConfig quiet(const Log& log, std::uint64_t every = 0) {
  SequencerConfig config;
  config.snapshot_every = every;
  config.log = log.fn();
  return config;
}

// Runs a mixed workload of `rounds` x (one slot, a booking, a confirm or cancel).
void workload(Sequencer& seq, int rounds, int salt) {
  CommandResult doctor = seq.execute(AddDoctor{1, "Dr. Snap", "GP"});
  REQUIRE(doctor.rejection == Rejection::none);
  const Id doctor_id = std::get<DoctorAdded>(doctor.events.at(0)).doctor_id;
  for (int i = 0; i < rounds; ++i) {
    const TimeMs start = kBase + (static_cast<TimeMs>(salt) * 100'000 + i) * 60'000;
    CommandResult slot = seq.execute(CreateSlots{doctor_id, {{start, start + 60'000}}});
    REQUIRE(slot.rejection == Rejection::none);
    const Id slot_id = std::get<SlotCreated>(slot.events.at(0)).slot_id;
    CommandResult held = seq.execute(BookSlot{slot_id, "Pat", 0, Token{1}, {testing::key("k" + std::to_string(salt * 1000 + i)), 5}});
    REQUIRE(held.rejection == Rejection::none);
    const Id booking = std::get<SlotHeld>(held.events.at(0)).booking_id;
    if (i % 3 == 0) REQUIRE(seq.execute(CancelBooking{booking}).rejection == Rejection::none);
    else REQUIRE(seq.execute(ConfirmBooking{booking}).rejection == Rejection::none);
  }
}

// Bounded wait (not a timing assertion): the background snapshot thread finishes. Its
// counters move just before it stops being busy, and a snapshot due while it is busy is not
// started, so the wait also lasts until it is no longer busy.
void wait_idle(const Sequencer& seq, std::uint64_t written_at_least) {
  for (int i = 0; i < 3000; ++i) {
    if (seq.snapshot_stats().written.load() + seq.snapshot_stats().failed.load() >= written_at_least &&
        !seq.snapshot_in_flight()) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL("no snapshot finished within 30 s");
}

// The engine hash after replaying the journal alone up to `until`.
std::uint64_t replay_hash(const fs::path& dir, std::uint64_t until) {
  Engine engine;
  std::unique_ptr<Journal> journal;
  JournalStatus st = Journal::open((dir / "journal").string(), journal);
  REQUIRE_MESSAGE(st.ok, st.message);
  st = journal->read(1, until, [&](const JournalRecord& r) {
    engine.apply(r.event);
    return true;
  });
  REQUIRE_MESSAGE(st.ok, st.message);
  return engine.state_hash();
}

std::vector<std::uint64_t> snapshot_seqs(const fs::path& dir) {
  std::vector<std::uint64_t> seqs;
  REQUIRE(SnapshotStore((dir / "snapshots").string()).list(seqs).ok);
  return seqs;
}

// Three snapshots (final ones at three restarts) and journal after the last.
struct Made {
  std::vector<std::uint64_t> seqs;  // oldest first
  std::uint64_t last_seq = 0, hash = 0;
};
Made make_three_snapshots(const fs::path& dir) {
  Made m;
  Log log;
  for (int round = 0; round < 4; ++round) {
    auto seq = open_sequencer(dir, quiet(log));
    seq->start();
    workload(*seq, 20, round);
    seq->stop();
    if (round < 3) {
      REQUIRE(seq->write_final_snapshot().ok);
      m.seqs.push_back(seq->durable_seq());
    }
    m.last_seq = seq->durable_seq();
    m.hash = seq->engine().state_hash();
  }
  return m;
}

void flip_byte(const fs::path& file, std::size_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5a));
}

std::string read_all(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_all(const fs::path& file, const std::string& bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << bytes;
}

}  // namespace

TEST_CASE("snapshots taken by fork while commands run hash equal to a journal replay to their seq, and restart = newest snapshot + tail") {
  TempDir dir;
  Log log;
  std::uint64_t live_hash = 0, last_seq = 0;
  {
    auto seq = open_sequencer(dir.path(), quiet(log, /*every=*/50));
    seq->start();
    workload(*seq, 60, 0);
    wait_idle(*seq, 2);
    workload(*seq, 20, 1);
    seq->stop();
    live_hash = seq->engine().state_hash();
    last_seq = seq->durable_seq();
    CHECK(seq->snapshot_stats().written.load() >= 2);
    CHECK(seq->snapshot_stats().failed.load() == 0);
    CHECK(seq->snapshot_stats().max_fork_ns.load() > 0);
  }
  INFO(log.all());
  const std::vector<std::uint64_t> seqs = snapshot_seqs(dir.path());
  REQUIRE(!seqs.empty());
  CHECK(seqs.size() <= 3);  // --snapshots-kept
  for (std::uint64_t s : seqs) {
    Engine restored;
    SnapshotHeader header;
    SnapshotStatus loaded = SnapshotStore((dir.path() / "snapshots").string()).load(s, restored, header);
    REQUIRE_MESSAGE(loaded.ok, loaded.message);
    CHECK(header.state_hash == replay_hash(dir.path(), s));
    CHECK(log.has(fmt::format("snapshot at seq {}, state hash {:016x}", s, header.state_hash)));
  }
  auto reopened = open_sequencer(dir.path(), quiet(log));
  CHECK(reopened->recovery().snapshot_seq == seqs.front());
  CHECK(reopened->recovery().replayed_events == last_seq - seqs.front());
  CHECK(reopened->engine().state_hash() == live_hash);
  CHECK(reopened->durable_seq() == last_seq);
  // Idempotency-Keys came back from the snapshot: a retry is answered, not redone.
  reopened->start();
  CommandResult retry = reopened->execute(BookSlot{1, "Pat", 0, Token{1}, {testing::key("k0"), 5}});
  CHECK(retry.rejection == Rejection::duplicate_request);
  CHECK(retry.replayed.booking_id == 1);
  reopened->stop();
  const std::uint64_t after_retry = reopened->engine().state_hash();
  reopened.reset();
  fs::remove_all(dir.path() / "snapshots");
  auto replayed = open_sequencer(dir.path(), quiet(log));
  CHECK(replayed->recovery().snapshot_seq == 0);
  CHECK(replayed->engine().state_hash() == after_retry);
}

TEST_CASE("a graceful stop writes a final snapshot, and the next start replays nothing") {
  TempDir dir;
  Log log;
  std::uint64_t hash = 0, last = 0;
  {
    auto seq = open_sequencer(dir.path(), quiet(log));
    seq->start();
    workload(*seq, 10, 0);
    seq->stop();
    REQUIRE(seq->write_final_snapshot().ok);
    hash = seq->engine().state_hash();
    last = seq->durable_seq();
    CHECK(log.has(fmt::format("snapshot at seq {}, state hash {:016x}", last, hash)));
  }
  auto again = open_sequencer(dir.path(), quiet(log));
  CHECK(again->recovery().snapshot_seq == last);
  CHECK(again->recovery().replayed_events == 0);
  CHECK(again->engine().state_hash() == hash);
}

TEST_CASE("a periodic snapshot that stop() gives up does not stand in for the final snapshot") {
  // The periodic snapshot of the last batch is started before that batch's reply goes out;
  // stop() right after the reply cancels it mid-write. The final snapshot must still be
  // written at the last seq (CI once saw "given up (stopping)" and no final snapshot).
  TempDir dir;
  Log log;
  std::uint64_t hash = 0, last = 0;
  {
    auto seq = open_sequencer(dir.path(), quiet(log, 1));
    seq->start();
    CommandResult doctor = seq->execute(AddDoctor{1, "Dr. Big", "GP"});
    REQUIRE(doctor.rejection == Rejection::none);
    const Id doctor_id = std::get<DoctorAdded>(doctor.events.at(0)).doctor_id;
    // Big enough that the snapshot child is still writing when stop() comes.
    std::vector<SlotSpan> spans;
    for (int i = 0; i < 10'000; ++i) {
      const TimeMs start = kBase + static_cast<TimeMs>(i) * 60'000;
      spans.push_back({start, start + 60'000});
    }
    for (int round = 0; round < 20; ++round) {
      REQUIRE(seq->execute(CreateSlots{doctor_id, spans}).rejection == Rejection::none);
      for (SlotSpan& span : spans) {
        span.start_ms += 10'000LL * 60'000;
        span.end_ms += 10'000LL * 60'000;
      }
    }
    // The last batch is small (its reply comes after a short sync) and starts a snapshot of
    // its own (none may still be running), which takes far longer than that sync.
    for (int i = 0; i < 3000 && seq->snapshot_in_flight(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(!seq->snapshot_in_flight());
    REQUIRE(seq->execute(AddDoctor{1, "Dr. Last", "GP"}).rejection == Rejection::none);
    seq->stop();
    REQUIRE(seq->write_final_snapshot().ok);
    hash = seq->engine().state_hash();
    last = seq->durable_seq();
    CHECK(log.has(fmt::format("snapshot at seq {}, state hash {:016x}", last, hash)));
  }
  const std::vector<std::uint64_t> on_disk = snapshot_seqs(dir.path());
  CHECK(std::find(on_disk.begin(), on_disk.end(), last) != on_disk.end());
  auto again = open_sequencer(dir.path(), quiet(log));
  CHECK(again->recovery().snapshot_seq == last);
  CHECK(again->recovery().replayed_events == 0);
  CHECK(again->engine().state_hash() == hash);
}

TEST_CASE("a corrupt, truncated, unknown-version, wrong-hash or beyond-the-journal snapshot is skipped with a log line naming it, and the next older one is used") {
  // Made once: doctest runs the test case again for each SUBCASE.
  static TempDir origin;
  static const Made m = make_three_snapshots(origin.path() / "data");
  REQUIRE(m.seqs.size() == 3);
  struct Case {
    const char* what;
    std::function<fs::path(const fs::path& newest, const fs::path& dir)> damage;
    const char* reason;
  };
  const std::vector<Case> cases = {
      {"a flipped byte in the engine state",
       [](const fs::path& f, const fs::path&) { flip_byte(f, fs::file_size(f) / 2); return f; },
       "checksum mismatch"},
      {"a file cut in half",
       [](const fs::path& f, const fs::path&) { fs::resize_file(f, fs::file_size(f) / 2); return f; },
       "truncated"},
      {"an empty file", [](const fs::path& f, const fs::path&) { fs::resize_file(f, 0); return f; },
       "truncated"},
      {"an unknown format version",
       [](const fs::path& f, const fs::path&) {
         std::string b = read_all(f);
         b[8] = 7;
         write_all(f, b);
         return f;
       },
       "unknown format version 7"},
      {"a state hash that does not match the state (checksum recomputed)",
       [](const fs::path& f, const fs::path&) {
         std::string b = read_all(f);
         b[24] ^= 1;
         const std::uint64_t sum = XXH3_64bits(b.data(), b.size() - 8);
         for (int i = 0; i < 8; ++i) b[b.size() - 8 + i] = static_cast<char>(sum >> (8 * i));
         write_all(f, b);
         return f;
       },
       "state hash mismatch"},
      {"a snapshot beyond the journal's last seq",
       [](const fs::path& f, const fs::path& dir) {
         const fs::path beyond = SnapshotStore((dir / "snapshots").string()).path_of(1'000'000);
         fs::copy_file(f, beyond);
         return beyond;
       },
       "beyond the journal's last seq"},
  };
  for (const Case& c : cases) {
    SUBCASE(c.what) {
      TempDir work;
      const fs::path dir = work.path() / "data";
      fs::copy(origin.path() / "data", dir, fs::copy_options::recursive);
      const fs::path newest = SnapshotStore((dir / "snapshots").string()).path_of(m.seqs[2]);
      const fs::path damaged = c.damage(newest, dir);
      Log log;
      auto seq = open_sequencer(dir, quiet(log));
      INFO(log.all());
      CHECK(log.has("skipping snapshot " + damaged.string(), c.reason));
      const std::uint64_t want = damaged == newest ? m.seqs[1] : m.seqs[2];
      CHECK(seq->recovery().snapshot_seq == want);
      CHECK(seq->engine().state_hash() == m.hash);
      CHECK(seq->durable_seq() == m.last_seq);
    }
  }
  SUBCASE("every snapshot bad: the whole journal is replayed") {
    TempDir work;
    const fs::path dir = work.path() / "data";
    fs::copy(origin.path() / "data", dir, fs::copy_options::recursive);
    for (std::uint64_t s : m.seqs) flip_byte(SnapshotStore((dir / "snapshots").string()).path_of(s), 60);
    Log log;
    auto seq = open_sequencer(dir, quiet(log));
    CHECK(seq->recovery().snapshot_seq == 0);
    CHECK(seq->engine().state_hash() == m.hash);
  }
  SUBCASE("a temp file of a newer snapshot is never loaded and is removed at start-up") {
    TempDir work;
    const fs::path dir = work.path() / "data";
    fs::copy(origin.path() / "data", dir, fs::copy_options::recursive);
    SnapshotStore store((dir / "snapshots").string());
    fs::copy_file(store.path_of(m.seqs[2]), store.temp_path_of(m.last_seq));
    Log log;
    auto seq = open_sequencer(dir, quiet(log));
    CHECK(seq->recovery().snapshot_seq == m.seqs[2]);
    CHECK_FALSE(fs::exists(store.temp_path_of(m.last_seq)));
  }
}

TEST_CASE("only the newest --snapshots-kept snapshots stay on disk") {
  TempDir dir;
  Log log;
  SequencerConfig config = quiet(log);
  config.snapshots_kept = 2;
  std::vector<std::uint64_t> taken;
  for (int round = 0; round < 4; ++round) {
    auto seq = open_sequencer(dir.path(), config);
    seq->start();
    workload(*seq, 3, round);
    seq->stop();
    REQUIRE(seq->write_final_snapshot().ok);
    taken.push_back(seq->durable_seq());
  }
  CHECK(snapshot_seqs(dir.path()) == std::vector<std::uint64_t>{taken[3], taken[2]});
}

TEST_CASE("a snapshot whose seq never becomes durable (the journal sync failed) is never published") {
  TempDir dir;
  Log log;
  auto fail = std::make_shared<std::atomic<bool>>(false);
  auto env = rocksdb::NewCompositeEnv(std::make_shared<FailingSyncFileSystem>(fail));
  std::promise<void> failed;
  std::atomic<int> failures{0};
  SequencerConfig config = quiet(log, /*every=*/1);
  config.journal_env = env.get();
  config.on_journal_failure = [&](const std::string&) {
    if (failures.fetch_add(1) == 0) failed.set_value();
  };
  auto seq = open_sequencer(dir.path(), config);
  seq->start();
  CommandResult doctor = seq->execute(AddDoctor{1, "Dr. Snap", "GP"});
  REQUIRE(doctor.rejection == Rejection::none);
  wait_idle(*seq, 1);
  const std::uint64_t durable = seq->durable_seq();
  const std::uint64_t failed_before = seq->snapshot_stats().failed.load();
  fail->store(true);
  REQUIRE(seq->submit(Submission{AddDoctor{1, "Dr. Lost", "GP"}}));
  REQUIRE(failed.get_future().wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  wait_idle(*seq, seq->snapshot_stats().written.load() + failed_before + 1);
  INFO(log.all());
  CHECK(log.has(fmt::format("snapshot at seq {} failed", durable + 1), "never became durable"));
  for (std::uint64_t s : snapshot_seqs(dir.path())) CHECK(s <= durable);
  fail->store(false);
  seq->stop();
}

namespace {

// The VmFlags line of the mapping that holds `address` (from /proc/self/smaps).
std::string vm_flags_of(const void* address) {
  const auto a = reinterpret_cast<std::uintptr_t>(address);
  std::ifstream smaps("/proc/self/smaps");
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long long from = 0, to = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx ", &from, &to) == 2 && line.find(':') > line.find(' ')) {
      inside = a >= from && a < to;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return {};
}

std::atomic<int> g_counted_chunks{0};
const ChunkSource kCountingChunks{
    [](std::size_t bytes) {
      ++g_counted_chunks;
      return kHeapChunks.allocate(bytes);
    },
    [](void* chunk, std::size_t bytes) {
      --g_counted_chunks;
      kHeapChunks.release(chunk, bytes);
    },
};

}  // namespace

TEST_CASE("a big chunk from the huge-page source starts on a 2 MiB boundary, is advised for huge pages and holds what was written") {
  constexpr std::size_t kBytes = (std::size_t{11} << 20) / 4;  // 2.75 MiB: not a multiple
  void* chunk = huge_page_chunks().allocate(kBytes);
  REQUIRE(chunk != nullptr);
  // The spare of this size is prepared after this allocation; once it is, no mapping is
  // made while this chunk is released, so its range must be gone afterwards.
  for (int i = 0; i < 2000 && !spare_chunk_ready(kBytes); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(spare_chunk_ready(kBytes));
  CHECK(reinterpret_cast<std::uintptr_t>(chunk) % (std::size_t{2} << 20) == 0);
  // MADV_HUGEPAGE sets the mapping's "hg" flag whatever the system's THP setting.
  const std::string flags = vm_flags_of(chunk);
  CHECK_MESSAGE(flags.find(" hg") != std::string::npos, flags);
  auto* bytes = static_cast<unsigned char*>(chunk);
  for (std::size_t i = 0; i < kBytes; i += 4096) bytes[i] = static_cast<unsigned char>(i / 4096);
  bytes[kBytes - 1] = 0xAB;
  bool kept = bytes[kBytes - 1] == 0xAB;
  for (std::size_t i = 0; i < kBytes; i += 4096) kept = kept && bytes[i] == static_cast<unsigned char>(i / 4096);
  CHECK(kept);
  huge_page_chunks().release(chunk, kBytes);
  CHECK(vm_flags_of(chunk).empty());  // unmapped

  // A small chunk comes from the heap (it could not fill a huge page).
  void* small = huge_page_chunks().allocate(4096);
  CHECK(vm_flags_of(small).find(" hg") == std::string::npos);
  huge_page_chunks().release(small, 4096);
}

TEST_CASE("a big chunk of a size asked for before comes ready: faulted in off the caller's thread under SCHED_IDLE, zeroed, aligned") {
  constexpr std::size_t kBytes = (std::size_t{13} << 20) / 4;  // 3.25 MiB: no engine chunk has it
  constexpr std::size_t kPage = 4096;
  void* first = huge_page_chunks().allocate(kBytes);  // mapped on the spot: none was ready
  REQUIRE(first != nullptr);
  const auto resident_pages = [](void* chunk) {
    std::vector<unsigned char> in_core(kBytes / kPage);
    REQUIRE(::mincore(chunk, kBytes, in_core.data()) == 0);
    return static_cast<std::size_t>(std::count_if(in_core.begin(), in_core.end(),
                                                  [](unsigned char c) { return c & 1; }));
  };
  CHECK(resident_pages(first) == 0);  // untouched: nothing faulted in yet
  // The spare thread prepares the next chunk of this size.
  for (int i = 0; i < 2000 && !spare_chunk_ready(kBytes); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(spare_chunk_ready(kBytes));
  void* second = huge_page_chunks().allocate(kBytes);
  REQUIRE(second != nullptr);
  CHECK(second != first);
  CHECK(reinterpret_cast<std::uintptr_t>(second) % (std::size_t{2} << 20) == 0);
  CHECK(resident_pages(second) == kBytes / kPage);  // every page already there
  const auto* bytes = static_cast<const unsigned char*>(second);
  CHECK(std::all_of(bytes, bytes + kBytes, [](unsigned char b) { return b == 0; }));
  CHECK(vm_flags_of(second).find(" hg") != std::string::npos);
  // The thread that prepares spares has a name of its own (not that of the thread whose
  // allocation started it, such as the sequencer's slotd-decide), and runs under
  // SCHED_IDLE: faulting in a chunk must not hold a core that a waking journal or io
  // thread wants.
  bool named = false;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name != "slotd-chunks") continue;
    named = true;
    CHECK(::sched_getscheduler(std::stoi(task.path().filename().string())) == SCHED_IDLE);
  }
  CHECK(named);
  // Taking it asked for the next one.
  for (int i = 0; i < 2000 && !spare_chunk_ready(kBytes); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(spare_chunk_ready(kBytes));
  huge_page_chunks().release(first, kBytes);
  huge_page_chunks().release(second, kBytes);
}

TEST_CASE("containers release their chunks to the source they came from, even after another source is installed") {
  const ChunkSource& before = current_chunk_source();
  install_chunk_source(kCountingChunks);
  {
    ChunkedVector<Slot> slots;
    StringArena names;
    install_chunk_source(before);  // later containers use the other one; these keep theirs
    for (std::size_t i = 0; i < ChunkedVector<Slot>::kChunkSize + 1; ++i) slots.emplace_back().doctor_id = static_cast<std::uint32_t>(i);
    const StrRef ref = names.add("Ada Lovelace");
    CHECK(g_counted_chunks.load() == 3);  // two slot chunks, one name chunk
    CHECK(slots[ChunkedVector<Slot>::kChunkSize].doctor_id == ChunkedVector<Slot>::kChunkSize);
    CHECK(names.view(ref) == "Ada Lovelace");
    ChunkedVector<Slot> moved = std::move(slots);
    CHECK(moved[7].doctor_id == 7);
  }
  CHECK(g_counted_chunks.load() == 0);
  CHECK(&current_chunk_source() == &before);
}
