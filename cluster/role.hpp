// cluster/role.hpp — what the API layer needs to know about cluster mode: whether this
// node may take writes now, where the leader is, and the replication lag. Written by the
// cluster node (cluster/node.hpp), read by request handlers on any thread; no NATS here,
// so api/ can include it without linking the client library.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace slotd {

class ClusterRole {
 public:
  bool leading() const { return leading_.load(std::memory_order_acquire); }
  // The leader's HTTP base URL ("http://127.0.0.1:8081"); empty while nobody holds the lease.
  std::string leader_url() const {
    std::lock_guard lock(mutex_);
    return leader_url_;
  }
  const std::string& node_id() const { return node_id_; }
  // Stream messages (one per batch) this node has not applied yet; 0 on the leader.
  std::uint64_t lag_batches() const { return lag_batches_.load(std::memory_order_relaxed); }
  std::uint64_t stream_seq() const { return stream_seq_.load(std::memory_order_relaxed); }
  // The oldest message the stream still holds (1 until --stream-keep-batches discards
  // some; 0 while the stream is empty), as of the last lease tick.
  std::uint64_t stream_first_seq() const { return stream_first_seq_.load(std::memory_order_relaxed); }
  std::uint64_t failovers() const { return failovers_.load(std::memory_order_relaxed); }
  // By webhook id: the cursor (next seq) this node last wrote to the shared bucket and
  // JetStream acknowledged (cluster/webhook_cursors.hpp).
  std::map<std::uint64_t, std::uint64_t> webhook_cursors_shared() const {
    std::lock_guard lock(mutex_);
    return webhook_cursors_shared_;
  }

  // For the cluster node only.
  explicit ClusterRole(std::string node_id) : node_id_(std::move(node_id)) {}
  void set_leading(bool leading) { leading_.store(leading, std::memory_order_release); }
  void set_leader_url(std::string url) {
    std::lock_guard lock(mutex_);
    leader_url_ = std::move(url);
  }
  void set_lag(std::uint64_t stream_seq, std::uint64_t stream_last_seq) {
    stream_seq_.store(stream_seq, std::memory_order_relaxed);
    lag_batches_.store(stream_last_seq > stream_seq ? stream_last_seq - stream_seq : 0,
                       std::memory_order_relaxed);
  }
  void set_stream_first_seq(std::uint64_t first) { stream_first_seq_.store(first, std::memory_order_relaxed); }
  void count_failover() { failovers_.fetch_add(1, std::memory_order_relaxed); }
  void set_webhook_cursor_shared(std::uint64_t webhook_id, std::uint64_t next_seq) {
    std::lock_guard lock(mutex_);
    webhook_cursors_shared_[webhook_id] = next_seq;
  }
  void forget_webhook_cursor_shared(std::uint64_t webhook_id) {
    std::lock_guard lock(mutex_);
    webhook_cursors_shared_.erase(webhook_id);
  }

 private:
  const std::string node_id_;
  std::atomic<bool> leading_{false};
  std::atomic<std::uint64_t> lag_batches_{0};
  std::atomic<std::uint64_t> stream_seq_{0};
  std::atomic<std::uint64_t> stream_first_seq_{0};
  std::atomic<std::uint64_t> failovers_{0};
  mutable std::mutex mutex_;
  std::string leader_url_;
  std::map<std::uint64_t, std::uint64_t> webhook_cursors_shared_;
};

}  // namespace slotd
