// A RocksDB file system whose syncs fail on demand, for tests of a dying disk.
#pragma once

#include <rocksdb/file_system.h>

#include <atomic>
#include <memory>
#include <string>

namespace slotd::testing {

// A file system whose syncs fail on demand: the journal's fsync fails like a dying disk.
class FailingSyncFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FailingSyncFile(std::unique_ptr<rocksdb::FSWritableFile> file, std::shared_ptr<std::atomic<bool>> fail)
      : FSWritableFileOwnerWrapper(std::move(file)), fail_(std::move(fail)) {}
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    if (fail_->load()) return rocksdb::IOStatus::IOError("injected sync failure");
    return target()->Sync(o, d);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    if (fail_->load()) return rocksdb::IOStatus::IOError("injected fsync failure");
    return target()->Fsync(o, d);
  }

 private:
  std::shared_ptr<std::atomic<bool>> fail_;
};

class FailingSyncFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit FailingSyncFileSystem(std::shared_ptr<std::atomic<bool>> fail)
      : FileSystemWrapper(rocksdb::FileSystem::Default()), fail_(std::move(fail)) {}
  const char* Name() const override { return "FailingSyncFileSystem"; }
  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewWritableFile(name, options, result, dbg);
    if (s.ok()) *result = std::make_unique<FailingSyncFile>(std::move(*result), fail_);
    return s;
  }

 private:
  std::shared_ptr<std::atomic<bool>> fail_;
};

}  // namespace slotd::testing
