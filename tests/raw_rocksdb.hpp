// A raw RocksDB on a closed journal's directory, with every column family it has (the
// records and the entity index), to damage it behind the journal's back in tests.
#pragma once

#include <doctest/doctest.h>
#include <rocksdb/db.h>

#include <string>
#include <vector>

namespace slotd::testing {

class RawDb {
 public:
  explicit RawDb(const std::string& dir, rocksdb::Options options = {}) {
    options.create_if_missing = true;
    std::vector<std::string> names;
    if (!rocksdb::DB::ListColumnFamilies(options, dir, &names).ok()) {
      names = {rocksdb::kDefaultColumnFamilyName};
    }
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const std::string& name : names) families.push_back({name, rocksdb::ColumnFamilyOptions(options)});
    const rocksdb::Status status = rocksdb::DB::Open(options, dir, families, &handles_, &db_);
    INFO(status.ToString());
    REQUIRE(status.ok());
  }
  ~RawDb() {
    for (rocksdb::ColumnFamilyHandle* h : handles_) (void)db_->DestroyColumnFamilyHandle(h);
    delete db_;
  }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;
  rocksdb::DB* operator->() const { return db_; }

 private:
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

}  // namespace slotd::testing
