#include "cluster/webhook_cursors.hpp"

#include <nats/nats.h>

#include <fmt/format.h>

namespace slotd {
namespace {

std::string nats_text(natsStatus s) {
  const char* last = nats_GetLastError(nullptr);
  return fmt::format("{}{}{}", natsStatus_GetText(s), last && *last ? ": " : "", last ? last : "");
}

}  // namespace

SharedWebhookCursors::SharedWebhookCursors(jsCtx* js, ClusterRole& role, std::string partition,
                                           int replicas, std::function<void(const std::string&)> log)
    : role_(role), partition_(std::move(partition)), log_(std::move(log)) {
  kvConfig kc;
  kvConfig_Init(&kc);
  kc.Bucket = kBucket;
  kc.History = 1;
  kc.Replicas = replicas;
  kc.StorageType = js_FileStorage;
  natsStatus s = NATS_OK;
  for (int attempt = 0;; ++attempt) {
    s = js_CreateKeyValue(&kv_, js, &kc);
    if (s != NATS_OK) s = js_KeyValue(&kv_, js, kBucket);
    if (s == NATS_OK) break;
    kv_ = nullptr;
    if (attempt >= 25) {
      open_error_ = fmt::format("cannot open the KV bucket {}: {}", kBucket, nats_text(s));
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  thread_ = std::thread([this] { run(); });
}

SharedWebhookCursors::~SharedWebhookCursors() {
  stop();
  if (kv_) kvStore_Destroy(kv_);
}

std::string SharedWebhookCursors::key_of(std::uint64_t webhook_id) const {
  return fmt::format("{}.{}", partition_, webhook_id);
}

bool SharedWebhookCursors::load(std::map<std::uint64_t, JournalCursor>& out, std::string& error) {
  out.clear();
  if (!kv_) {
    error = open_error_;
    return false;
  }
  kvKeysList keys{};
  kvWatchOptions wo;
  kvWatchOptions_Init(&wo);
  wo.Timeout = 5000;
  natsStatus s = kvStore_Keys(&keys, kv_, &wo);
  if (s == NATS_NOT_FOUND) return true;  // an empty bucket
  if (s != NATS_OK) {
    error = "listing the keys of " + std::string(kBucket) + ": " + nats_text(s);
    return false;
  }
  const std::string prefix = partition_ + ".";
  bool ok = true;
  for (int i = 0; i < keys.Count && ok; ++i) {
    std::string_view key = keys.Keys[i];
    if (!key.starts_with(prefix)) continue;
    std::uint64_t webhook_id = 0;
    std::string_view id_text = key.substr(prefix.size());
    auto [end, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), webhook_id);
    if (ec != std::errc() || end != id_text.data() + id_text.size()) continue;
    kvEntry* e = nullptr;
    s = kvStore_Get(&e, kv_, keys.Keys[i]);
    if (s == NATS_NOT_FOUND) continue;  // deleted since the listing
    if (s != NATS_OK) {
      error = fmt::format("reading {}: {}", key, nats_text(s));
      ok = false;
      break;
    }
    const char* value = kvEntry_ValueString(e);
    auto cursor = decode_shared_cursor(value ? value : "");
    kvEntry_Destroy(e);
    if (cursor) {
      out[webhook_id] = *cursor;
    } else {
      log_(fmt::format("ignoring the unreadable shared webhook cursor {}", key));
    }
  }
  kvKeysList_Destroy(&keys);
  return ok;
}

void SharedWebhookCursors::store(std::uint64_t webhook_id, const JournalCursor& cursor) {
  {
    std::lock_guard lock(mutex_);
    pending_[webhook_id] = cursor;
  }
  wake_.notify_one();
}

void SharedWebhookCursors::forget(std::uint64_t webhook_id) {
  {
    std::lock_guard lock(mutex_);
    pending_[webhook_id] = std::nullopt;
  }
  wake_.notify_one();
}

void SharedWebhookCursors::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

bool SharedWebhookCursors::write(std::uint64_t webhook_id, const std::optional<JournalCursor>& cursor) {
  // A node that stepped down has no say any more: the new leader's values must stand.
  if (!kv_ || !role_.leading()) return true;
  const std::string key = key_of(webhook_id);
  natsStatus s = NATS_OK;
  if (cursor) {
    std::uint64_t revision = 0;
    s = kvStore_PutString(&revision, kv_, key.c_str(), encode_shared_cursor(*cursor).c_str());
  } else {
    s = kvStore_Delete(kv_, key.c_str());
  }
  if (s == NATS_OK) {
    if (cursor) {
      role_.set_webhook_cursor_shared(webhook_id, cursor->next_seq);
    } else {
      role_.forget_webhook_cursor_shared(webhook_id);
    }
    if (failing_) log_("sharing webhook cursors works again");
    failing_ = false;
    return true;
  }
  if (!failing_) log_(fmt::format("cannot share the webhook cursor {} (will retry): {}", key, nats_text(s)));
  failing_ = true;
  return false;
}

void SharedWebhookCursors::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
    const bool last_round = stopping_;
    auto batch = std::move(pending_);
    pending_.clear();
    lock.unlock();
    // After a failed write the rest wait for the next round (each write may block for the
    // JetStream timeout): an unreachable NATS costs one timeout per round, also at stop.
    bool failed = false;
    for (auto& [webhook_id, cursor] : batch) {
      if (!failed && write(webhook_id, cursor)) continue;
      failed = true;
      std::lock_guard relock(mutex_);
      pending_.try_emplace(webhook_id, cursor);  // unless a newer value came in meanwhile
    }
    lock.lock();
    if (last_round) return;
    // At most one write per endpoint per period; the latest value waits in pending_.
    wake_.wait_for(lock, kWriteEvery, [&] { return stopping_; });
  }
}

}  // namespace slotd
