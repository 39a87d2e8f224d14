// journal/background_priority — RocksDB's flush and compaction threads under SCHED_IDLE,
// at normal priority while a journal's writes are stalled.
//
// Under SCHED_IDLE those threads run on CPU time no other thread wants, and a waking io or
// sequencer thread preempts them at once (JournalOptions::idle_background_threads). On a
// machine that slotd has to itself that is enough: when the memtables fill up, RocksDB
// stalls writes, the requests behind them wait, and the CPU goes idle. On a machine that
// other processes keep busy, an idle-class flush could wait for as long as they run.
//
// So every journal opened with idle background threads registers a watcher (a RocksDB
// EventListener). A pool thread takes SCHED_IDLE as it begins a flush or a compaction.
// When RocksDB reports that a journal's writes are delayed or stopped, every pool thread
// of the process, the running ones included, goes to normal priority. RocksDB's reports
// can arrive out of order (a "back to normal" before the stall it ends), so they are
// trusted only to raise: the journal's next append asks RocksDB whether writes are still
// delayed or stopped, and when no journal's are, the threads go back to SCHED_IDLE.
#pragma once

#include <cstdint>
#include <memory>

namespace rocksdb {
class DB;
class EventListener;
}  // namespace rocksdb

namespace slotd {

// A new watcher for one journal. It leaves the process-wide stall set (as if its journal's
// writes went on) when destroyed.
std::shared_ptr<rocksdb::EventListener> make_stall_watcher();

// Whether some journal's writes were reported stalled and the pool threads run at normal
// priority (one atomic load: the append path asks it every time).
bool background_priority_raised();

// After an append: when `db`'s writes are no longer delayed or stopped, `watcher`'s journal
// leaves the stall set, and the threads go back to SCHED_IDLE if it was the last.
void recheck_stall(const rocksdb::EventListener* watcher, rocksdb::DB& db);

// What the watcher does on a report, and what recheck_stall does when it finds the writes
// going (public for tests, which cannot make RocksDB stall on cue).
void background_stall_changed(const void* watcher, bool stalled);

// How many times the pool threads were raised to normal priority.
std::uint64_t background_priority_raises();

}  // namespace slotd
