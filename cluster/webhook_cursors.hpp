// cluster/webhook_cursors.hpp — webhook delivery progress shared through a JetStream KV
// bucket, so a node that takes the lead resumes each endpoint where the last leader stopped
// (cluster/README.md, "Webhooks"). The leader queues each cursor it stores; one thread of
// its own writes them, at most one write per endpoint every 100 ms and always the last value,
// so a slow NATS never holds up the delivery thread or the lease renewals.
#pragma once

#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "cluster/role.hpp"
#include "journal/journal.hpp"

struct __jsCtx;
struct __kvStore;

namespace slotd {

// The value of one key: "<next seq> <stopped 0|1>", text so `nats kv get` shows it.
inline std::string encode_shared_cursor(const JournalCursor& cursor) {
  return std::to_string(cursor.next_seq) + (cursor.stopped ? " 1" : " 0");
}

inline std::optional<JournalCursor> decode_shared_cursor(std::string_view value) {
  const auto space = value.find(' ');
  if (space == std::string_view::npos || value.size() != space + 2) return std::nullopt;
  JournalCursor cursor;
  auto [end, ec] = std::from_chars(value.data(), value.data() + space, cursor.next_seq);
  if (ec != std::errc() || end != value.data() + space || cursor.next_seq == 0) return std::nullopt;
  if (value[space + 1] != '0' && value[space + 1] != '1') return std::nullopt;
  cursor.stopped = value[space + 1] == '1';
  return cursor;
}

class SharedWebhookCursors {
 public:
  static constexpr const char* kBucket = "slotd_webhook_cursors";
  static constexpr std::chrono::milliseconds kWriteEvery{100};

  // Opens (or creates: history 1, file storage, `replicas`) the bucket; keys are
  // "<partition>.<webhook id>". Writes happen only while `role` says this node leads.
  SharedWebhookCursors(__jsCtx* js, ClusterRole& role, std::string partition, int replicas,
                       std::function<void(const std::string&)> log);
  ~SharedWebhookCursors();
  SharedWebhookCursors(const SharedWebhookCursors&) = delete;
  SharedWebhookCursors& operator=(const SharedWebhookCursors&) = delete;

  // "" when the bucket is open, else why not (then load fails and store does nothing).
  const std::string& open_error() const { return open_error_; }

  // Every shared cursor of this partition (blocking: a few round trips).
  bool load(std::map<std::uint64_t, JournalCursor>& out, std::string& error);
  // Queue the cursor (or the endpoint's deletion) for the writer thread; never blocks on NATS.
  void store(std::uint64_t webhook_id, const JournalCursor& cursor);
  void forget(std::uint64_t webhook_id);
  // Writes what is queued (while leading) and ends the writer thread.
  void stop();

 private:
  void run();
  bool write(std::uint64_t webhook_id, const std::optional<JournalCursor>& cursor);
  std::string key_of(std::uint64_t webhook_id) const;

  ClusterRole& role_;  // leading? and, for /metrics, what was written
  const std::string partition_;
  std::function<void(const std::string&)> log_;
  __kvStore* kv_ = nullptr;
  std::string open_error_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::uint64_t, std::optional<JournalCursor>> pending_;  // nullopt: delete the key
  bool stopping_ = false;
  bool failing_ = false;  // writer thread: the last write failed (logged once per streak)
  std::thread thread_;
};

}  // namespace slotd
