// Power loss, simulated under RocksDB: a file system that remembers how much of each file
// was synced, and at the "power cut" freezes (later writes, renames and deletes go
// nowhere) and then truncates every file to what was synced. Everything the journal
// acknowledged must come back; a disk that lies about syncing must lose some of it (which
// proves the harness can see a loss).
#include <doctest/doctest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <random>

#include "journal/journal.hpp"
#include "tests/test_support.hpp"

namespace {

using namespace slotd;

struct PowerState {
  std::mutex mutex;
  bool frozen = false;
  bool syncs_lie = false;  // a disk that acknowledges syncs of the write-ahead log it never did
  std::map<std::string, std::uint64_t> written, synced;  // by file name
};

class PowerLossFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  PowerLossFile(std::unique_ptr<rocksdb::FSWritableFile> file, std::string name,
                std::shared_ptr<PowerState> state)
      : FSWritableFileOwnerWrapper(std::move(file)), name_(std::move(name)), state_(std::move(state)) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* d) override {
    std::lock_guard lock(state_->mutex);
    if (state_->frozen) return rocksdb::IOStatus::OK();  // the power is already off
    state_->written[name_] += data.size();
    return target()->Append(data, o, d);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo&, rocksdb::IODebugContext* d) override {
    return Append(data, o, d);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    return synced(target()->Sync(o, d));
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    return synced(target()->Fsync(o, d));
  }

 private:
  rocksdb::IOStatus synced(rocksdb::IOStatus s) {
    std::lock_guard lock(state_->mutex);
    const bool wal = name_.ends_with(".log");
    if (s.ok() && !state_->frozen && !(state_->syncs_lie && wal)) {
      state_->synced[name_] = state_->written[name_];
    }
    return s;
  }
  std::string name_;
  std::shared_ptr<PowerState> state_;
};

class PowerLossFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit PowerLossFileSystem(std::shared_ptr<PowerState> state)
      : FileSystemWrapper(rocksdb::FileSystem::Default()), state_(std::move(state)) {}
  const char* Name() const override { return "PowerLossFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewWritableFile(name, options, result, dbg);
    if (!s.ok()) return s;
    std::lock_guard lock(state_->mutex);
    state_->written[name] = 0;
    state_->synced[name] = 0;
    *result = std::make_unique<PowerLossFile>(std::move(*result), name, state_);
    return s;
  }
  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to,
                               const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    std::lock_guard lock(state_->mutex);
    if (state_->frozen) return rocksdb::IOStatus::OK();
    auto move_entry = [&](std::map<std::string, std::uint64_t>& m) {
      if (auto it = m.find(from); it != m.end()) {
        m[to] = it->second;
        m.erase(it);
      }
    };
    move_entry(state_->written);
    move_entry(state_->synced);
    return target()->RenameFile(from, to, o, d);
  }
  rocksdb::IOStatus DeleteFile(const std::string& name, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* d) override {
    std::lock_guard lock(state_->mutex);
    if (state_->frozen) return rocksdb::IOStatus::OK();
    state_->written.erase(name);
    state_->synced.erase(name);
    return target()->DeleteFile(name, o, d);
  }

 private:
  std::shared_ptr<PowerState> state_;
};

// Writes batches, cuts the power after a random acknowledged batch, brings the journal
// back and returns {last acknowledged seq, last recovered seq}.
std::pair<std::uint64_t, std::uint64_t> write_then_cut_power(const std::string& dir, bool syncs_lie,
                                                             std::uint64_t seed) {
  auto state = std::make_shared<PowerState>();
  state->syncs_lie = syncs_lie;
  auto env = rocksdb::NewCompositeEnv(std::make_shared<PowerLossFileSystem>(state));
  std::mt19937_64 rng(seed);
  std::uint64_t acknowledged = 0;
  {
    std::unique_ptr<Journal> journal;
    JournalStatus opened = Journal::open(dir, journal, env.get());
    REQUIRE_MESSAGE(opened.ok, opened.message);
    const int batches = 20 + static_cast<int>(rng() % 40);
    for (int b = 0; b < batches; ++b) {
      std::vector<JournalRecord> records(1 + rng() % 64);
      for (auto& r : records) {
        r.seq = ++acknowledged;
        r.at_ms = static_cast<TimeMs>(r.seq);
        r.event = SlotCreated{r.seq, 1, static_cast<TimeMs>(r.seq) * 1000, static_cast<TimeMs>(r.seq) * 1000 + 500};
      }
      JournalStatus appended = journal->append(records);
      REQUIRE_MESSAGE(appended.ok, appended.message);
    }
    {
      std::lock_guard lock(state->mutex);
      state->frozen = true;  // the power cut: nothing after this reaches the disk
    }
  }  // closing writes (memtable flush, manifest) go nowhere
  for (const auto& [name, synced] : state->synced) {
    std::error_code ec;
    if (std::filesystem::exists(name, ec)) std::filesystem::resize_file(name, synced, ec);
  }
  std::unique_ptr<Journal> recovered;
  JournalStatus reopened = Journal::open(dir, recovered);
  REQUIRE_MESSAGE(reopened.ok, reopened.message);
  std::uint64_t expected = 1;
  JournalStatus read = recovered->read(1, 0, [&](const JournalRecord& r) {
    CHECK(r.seq == expected);
    CHECK(std::get<SlotCreated>(r.event).slot_id == r.seq);
    ++expected;
    return true;
  });
  CHECK_MESSAGE(read.ok, read.message);
  return {acknowledged, recovered->last_seq()};
}

}  // namespace

TEST_CASE("after a power cut every acknowledged journal record comes back, in order, without gaps") {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    testing::TempDir dir("slotd_power_loss");
    auto [acknowledged, recovered] = write_then_cut_power(dir.str(), /*syncs_lie=*/false, seed);
    INFO("seed " << seed);
    CHECK(recovered == acknowledged);
  }
}

TEST_CASE("the power-cut harness does lose what a lying disk never synced") {
  testing::TempDir dir("slotd_power_loss_lying");
  auto [acknowledged, recovered] = write_then_cut_power(dir.str(), /*syncs_lie=*/true, 7);
  CHECK(recovered < acknowledged);
}
