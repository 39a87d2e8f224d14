#include "sequencer/tail_reader.hpp"

#include <algorithm>

namespace slotd {

TailReader::TailReader(const Journal& journal, std::uint64_t from_seq,
                       std::size_t block_records, std::size_t max_blocks)
    : from_seq_(from_seq),
      block_records_(std::max<std::size_t>(block_records, 1)),
      max_blocks_(std::max<std::size_t>(max_blocks, 1)),
      thread_([this, &journal] { run(journal); }) {}

TailReader::~TailReader() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void TailReader::run(const Journal& journal) {
  // An emptied block handed back by the applier, or a new one.
  auto fresh_block = [&] {
    std::vector<JournalRecord> block;
    {
      std::lock_guard lock(mutex_);
      if (!spare_.empty()) {
        block = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    block.reserve(block_records_);
    return block;
  };
  std::vector<JournalRecord> block = fresh_block();
  // Hands a full block over; false when the reader is being stopped.
  auto hand_over = [&] {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return stopping_ || blocks_.size() < max_blocks_; });
    if (stopping_) return false;
    blocks_.push_back(std::move(block));
    changed_.notify_all();
    return true;
  };
  bool stopped = false;
  JournalStatus status = journal.read(from_seq_, 0, [&](JournalRecord& record) {
    block.push_back(std::move(record));
    if (block.size() < block_records_) return true;
    if (!hand_over()) {
      stopped = true;
      return false;
    }
    block = fresh_block();
    return true;
  });
  if (!stopped && !block.empty()) hand_over();
  std::lock_guard lock(mutex_);
  status_ = status;
  done_ = true;
  changed_.notify_all();
}

std::vector<JournalRecord> TailReader::next() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return done_ || !blocks_.empty(); });
  if (blocks_.empty()) return {};
  std::vector<JournalRecord> block = std::move(blocks_.front());
  blocks_.pop_front();
  changed_.notify_all();
  return block;
}

void TailReader::give_back(std::vector<JournalRecord> block) {
  block.clear();
  std::lock_guard lock(mutex_);
  if (spare_.size() < max_blocks_) spare_.push_back(std::move(block));
}

JournalStatus TailReader::status() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return done_; });
  return status_;
}

}  // namespace slotd
