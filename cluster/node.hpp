// cluster/ — cluster mode: one partition's journal replicated through a NATS JetStream
// stream, leadership through a JetStream KV key with a TTL (cluster/README.md).
//
// Owns the NATS connection and one thread per node: as follower it consumes the stream
// and hands the leader's batches to the sequencer (Sequencer::submit_replicated); it
// watches the lease key and, when the key is free, takes it, catches up to the stream's
// last message and only then lets the sequencer decide and the API take writes. As leader
// it is the sequencer's replicate step: one message per group commit, published with the stream
// seq it expects to follow (the fence), on the journal thread. May include sequencer/,
// journal/ and nats.c; no Beast.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "cluster/role.hpp"
#include "cluster/webhook_cursors.hpp"
#include "journal/codec.hpp"

struct __natsConnection;
struct __jsCtx;
struct __kvStore;
struct __natsSubscription;

namespace slotd {

class Sequencer;

struct ClusterOptions {
  std::vector<std::string> nats_urls;  // nats://127.0.0.1:4222, ...
  std::string node_id;                 // unique in the cluster
  std::string advertise_url;           // this node's HTTP base URL, given to clients as the leader
  std::string partition = "p0";        // names the stream, its subject and the lease key
  int replicas = 3;                    // of the stream and of the lease bucket
  // The stream keeps the newest this many batches (JetStream's MaxMsgs, oldest discarded);
  // 0 = every batch. The same on every node: each sets it on the stream as it connects.
  std::uint64_t keep_batches = 0;
  std::chrono::milliseconds lease_ttl{3000};
  // How long one batch may wait for JetStream (retried with the same message id) before
  // the node gives up and exits: a batch whose fate is unknown must not be answered.
  std::chrono::milliseconds publish_timeout{10000};
  std::function<void(const std::string&)> log;
};

class ClusterNode {
 public:
  // Connects, and creates the stream and the lease bucket if they do not exist.
  [[nodiscard]] static JournalStatus connect(ClusterOptions options, std::unique_ptr<ClusterNode>& out);
  ~ClusterNode();
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;

  // The sequencer's replicate step (journal thread): ok once JetStream stored the batch.
  // An error starting with "fenced" means another node has appended since this one led.
  [[nodiscard]] JournalStatus publish(std::span<const JournalRecord> records);

  // Starts as a follower from what the sequencer has recovered locally.
  void start(Sequencer& sequencer);
  // Stops the thread; a leader gives its lease up so a follower need not wait for the TTL.
  void stop();

  const ClusterRole& role() const { return role_; }
  // Webhook delivery progress shared between the nodes (only the leader delivers).
  SharedWebhookCursors& webhook_cursors() { return *webhook_cursors_; }

 private:
  explicit ClusterNode(ClusterOptions options);
  void run();
  bool follow_once(std::chrono::milliseconds wait);
  void lease_tick();
  bool try_lead();
  void step_down(const std::string& why);
  bool subscribe();
  void unsubscribe();
  // Reads the stream's bounds: records the first message kept in role_ (for /healthz and
  // /metrics) and returns the last, or UINT64_MAX when they cannot be read.
  std::uint64_t refresh_stream_bounds();
  // Whether the stream still has message `stream_seq`; nothing when it cannot tell.
  std::optional<bool> stream_holds(std::uint64_t stream_seq);
  void resume_where_the_journal_ends();

  ClusterOptions options_;
  std::string stream_, subject_, key_, lease_value_, epoch_;
  ClusterRole role_;
  Sequencer* sequencer_ = nullptr;

  __natsConnection* nc_ = nullptr;
  __jsCtx* js_ = nullptr;
  __kvStore* kv_ = nullptr;
  __natsSubscription* sub_ = nullptr;
  std::unique_ptr<SharedWebhookCursors> webhook_cursors_;

  // Leader: the stream seq of the last batch message it published or caught up to (the
  // journal thread publishes, the node thread sets it before leading).
  std::atomic<std::uint64_t> last_stream_seq_{0};
  // Follower (node thread only): the last stream message applied, the last event seq
  // handed to the sequencer, and the last event seq the stream holds.
  std::uint64_t applied_stream_seq_ = 0;
  std::uint64_t submitted_seq_ = 0;
  std::uint64_t stream_event_seq_ = 0;
  std::uint64_t applied_at_last_tick_ = 0;  // for the quiet-consumer check
  // Gaps met in a row at the same stream seq (follow_once): the log names the 1st, 10th, 100th…
  std::uint64_t gap_retries_ = 0;
  std::uint64_t lease_revision_ = 0;
  std::chrono::steady_clock::time_point last_renewal_{};
  std::atomic<std::uint64_t> last_published_event_seq_{0};

  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace slotd
