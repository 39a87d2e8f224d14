#include "cluster/node.hpp"

#include <nats/nats.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "cluster/batch_codec.hpp"
#include "cluster/stream_position.hpp"
#include "sequencer/sequencer.hpp"

namespace slotd {
namespace {

std::string nats_error(natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0)) {
  const char* last = nats_GetLastError(nullptr);
  return fmt::format("{} (jetstream error {}){}{}", natsStatus_GetText(s), static_cast<int>(jerr),
                     last && *last ? ": " : "", last ? last : "");
}

// The records of one stream message (a batch_codec batch).
JournalStatus decode_message(natsMsg* msg, std::vector<JournalRecord>& records) {
  return decode_batch(
      std::string_view(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg))), records);
}

// The stream's first and last message seqs (both 0 while it is empty).
natsStatus stream_bounds(jsCtx* js, const std::string& stream, std::uint64_t& first, std::uint64_t& last,
                         jsErrCode& jerr) {
  jsStreamInfo* si = nullptr;
  jerr = static_cast<jsErrCode>(0);
  const natsStatus s = js_GetStreamInfo(&si, js, stream.c_str(), nullptr, &jerr);
  if (s != NATS_OK) return s;
  first = si->State.FirstSeq;
  last = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  return NATS_OK;
}

std::string random_epoch() {
  std::random_device device;
  return fmt::format("{:08x}{:08x}", device(), device());
}

}  // namespace

ClusterNode::ClusterNode(ClusterOptions options)
    : options_(std::move(options)),
      stream_("SLOTD_" + options_.partition),
      subject_("slotd." + options_.partition + ".batches"),
      key_(options_.partition),
      lease_value_(options_.node_id + " " + options_.advertise_url),
      epoch_(random_epoch()),
      role_(options_.node_id) {
  if (!options_.log) {
    options_.log = [](const std::string& line) {
      std::printf("slotd: cluster: %s\n", line.c_str());
      std::fflush(stdout);
    };
  }
}

ClusterNode::~ClusterNode() {
  stop();
  unsubscribe();
  webhook_cursors_.reset();  // before the JetStream context it uses
  if (kv_) kvStore_Destroy(kv_);
  if (js_) jsCtx_Destroy(js_);
  if (nc_) natsConnection_Destroy(nc_);
}

JournalStatus ClusterNode::connect(ClusterOptions options, std::unique_ptr<ClusterNode>& out) {
  std::unique_ptr<ClusterNode> node(new ClusterNode(std::move(options)));
  ClusterNode& n = *node;
  natsOptions* opts = nullptr;
  std::vector<const char*> urls;
  for (const std::string& u : n.options_.nats_urls) urls.push_back(u.c_str());
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetServers(opts, urls.data(), static_cast<int>(urls.size()));
  // Reconnect forever: a nats-server going away is routine in a cluster.
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, 100);
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, 2000);
  if (s == NATS_OK) s = natsConnection_Connect(&n.nc_, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) return JournalStatus::error("cannot connect to NATS: " + nats_error(s));
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 5000;
  s = natsConnection_JetStream(&n.js_, n.nc_, &jo);
  if (s != NATS_OK) return JournalStatus::error("no JetStream context: " + nats_error(s));

  // The stream: file storage, every batch kept (the journal of record) unless
  // --stream-keep-batches bounds it, dedup by message id for publishes retried after a timeout.
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  sc.Name = n.stream_.c_str();
  const char* subjects[] = {n.subject_.c_str()};
  sc.Subjects = subjects;
  sc.SubjectsLen = 1;
  sc.Storage = js_FileStorage;
  sc.Replicas = n.options_.replicas;
  sc.Duplicates = static_cast<int64_t>(120) * 1'000'000'000;  // ns
  const std::int64_t max_msgs =
      n.options_.keep_batches > 0 ? static_cast<std::int64_t>(n.options_.keep_batches) : -1;
  sc.MaxMsgs = max_msgs;
  sc.Discard = js_DiscardOld;
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  for (int attempt = 0;; ++attempt) {
    s = js_AddStream(&si, n.js_, &sc, nullptr, &jerr);
    if (s == NATS_OK || jerr == JSStreamNameExistErr) break;
    // A freshly started JetStream cluster has no meta leader for a moment.
    if (attempt >= 50) return JournalStatus::error("cannot create stream " + n.stream_ + ": " + nats_error(s, jerr));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (si) jsStreamInfo_Destroy(si);
  si = nullptr;
  // An existing stream keeps its own settings but this node's retention, so that every node
  // started with the same --stream-keep-batches agrees (JetStream then discards the oldest).
  if (jerr == JSStreamNameExistErr) {
    s = js_GetStreamInfo(&si, n.js_, n.stream_.c_str(), nullptr, &jerr);
    if (s == NATS_OK && si->Config->MaxMsgs != max_msgs) {
      si->Config->MaxMsgs = max_msgs;
      jsStreamInfo* updated = nullptr;
      s = js_UpdateStream(&updated, n.js_, si->Config, nullptr, &jerr);
      if (updated) jsStreamInfo_Destroy(updated);
    }
    if (si) jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
      return JournalStatus::error("cannot set the retention of stream " + n.stream_ + ": " + nats_error(s, jerr));
    }
  }

  kvConfig kc;
  kvConfig_Init(&kc);
  const std::string bucket = "slotd_leaders";
  kc.Bucket = bucket.c_str();
  kc.History = 1;
  kc.TTL = n.options_.lease_ttl.count() * 1'000'000;  // nanoseconds, as the stream's MaxAge
  kc.Replicas = n.options_.replicas;
  kc.StorageType = js_FileStorage;
  for (int attempt = 0;; ++attempt) {
    s = js_CreateKeyValue(&n.kv_, n.js_, &kc);
    const std::string create_error = s == NATS_OK ? "" : nats_error(s);
    if (s != NATS_OK) s = js_KeyValue(&n.kv_, n.js_, bucket.c_str());
    if (s == NATS_OK) break;
    if (attempt >= 50) return JournalStatus::error("cannot open the lease bucket: " + create_error);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  n.webhook_cursors_ = std::make_unique<SharedWebhookCursors>(n.js_, n.role_, n.options_.partition,
                                                               n.options_.replicas, n.options_.log);
  if (!n.webhook_cursors_->open_error().empty()) {
    return JournalStatus::error(n.webhook_cursors_->open_error());
  }
  out = std::move(node);
  return {};
}

JournalStatus ClusterNode::publish(std::span<const JournalRecord> records) {
  if (!role_.leading()) {
    return JournalStatus::error("fenced: this node is not the leader (a write raced a step-down)");
  }
  std::string body;
  encode_batch(records, body);
  natsMsg* msg = nullptr;
  natsStatus s = natsMsg_Create(&msg, subject_.c_str(), nullptr, body.data(), static_cast<int>(body.size()));
  if (s != NATS_OK) return JournalStatus::error("cannot build the batch message: " + nats_error(s));
  const std::uint64_t expected = last_stream_seq_.load(std::memory_order_acquire);
  // Unique per process and batch: a retry is deduplicated, another node's batch never is.
  const std::string msg_id = fmt::format("{}-{}-{}", options_.node_id, epoch_, records.front().seq);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = msg_id.c_str();
  po.MaxWait = 2000;
  if (expected == 0) {
    po.ExpectNoMessage = true;  // the stream has one subject: "no message on it" = empty
  } else {
    po.ExpectLastSeq = expected;
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.publish_timeout;
  JournalStatus result;
  for (;;) {
    jsPubAck* ack = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    s = js_PublishMsg(&ack, js_, msg, &po, &jerr);
    if (s == NATS_OK) {
      const std::uint64_t got = ack->Sequence;
      jsPubAck_Destroy(ack);
      if (got != expected + 1) {
        result = JournalStatus::error(fmt::format("fenced: batch stored at stream seq {}, expected {}", got, expected + 1));
      } else {
        last_published_event_seq_.store(records.back().seq, std::memory_order_release);
        last_stream_seq_.store(got, std::memory_order_release);
        role_.set_lag(got, got);
      }
      break;
    }
    if (jerr == JSStreamWrongLastSequenceErr) {
      result = JournalStatus::error(fmt::format(
          "fenced: the stream moved past seq {} (another node leads): {}", expected, nats_error(s, jerr)));
      break;
    }
    // Timeouts and a stream changing its leader: retry the same message (same id).
    if (std::chrono::steady_clock::now() >= deadline) {
      result = JournalStatus::error("JetStream did not acknowledge a batch in time: " + nats_error(s, jerr));
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  natsMsg_Destroy(msg);
  return result;
}

void ClusterNode::start(Sequencer& sequencer) {
  sequencer_ = &sequencer;
  submitted_seq_ = sequencer.durable_seq();
  sequencer.set_deciding(false);
  thread_ = std::thread([this] { run(); });
}

void ClusterNode::stop() {
  if (stopping_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  // The last webhook cursors this leader stored, before it gives the lease up.
  if (webhook_cursors_) webhook_cursors_->stop();
  if (role_.leading() && kv_) {
    // Gives the lease up only if it is still ours (a delete is unconditional, so check).
    kvEntry* e = nullptr;
    if (kvStore_Get(&e, kv_, key_.c_str()) == NATS_OK) {
      if (kvEntry_Revision(e) == lease_revision_) (void)kvStore_Delete(kv_, key_.c_str());
      kvEntry_Destroy(e);
    }
  }
  role_.set_leading(false);
}

void ClusterNode::run() {
  resume_where_the_journal_ends();
  auto next_lease = std::chrono::steady_clock::now();
  const auto lease_every = options_.lease_ttl / 4;
  while (!stopping_.load()) {
    if (role_.leading()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } else if (!follow_once(std::chrono::milliseconds(50))) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (std::chrono::steady_clock::now() >= next_lease) {
      lease_tick();
      next_lease = std::chrono::steady_clock::now() + lease_every;
    }
  }
}

bool ClusterNode::subscribe() {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream_.c_str();
  so.Ordered = true;
  if (applied_stream_seq_ > 0) {
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = applied_stream_seq_ + 1;
  }
  // nats-server before 2.12 may place the ephemeral (R1) consumer of an R3 stream on a
  // server that is down (nats-server issue 5498): that create times out and a retry places
  // it again, so with one of three servers down about one try in three fails. A 2 s wait
  // instead of the context's 5 s makes the retries frequent: CI once saw a follower stay
  // behind for 20 s after a nats-server was killed.
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 2000;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_SubscribeSync(&sub_, js_, subject_.c_str(), &jo, &so, &jerr);
  if (s != NATS_OK) {
    sub_ = nullptr;
    options_.log("cannot subscribe to the stream (will retry): " + nats_error(s, jerr));
    return false;
  }
  return true;
}

void ClusterNode::unsubscribe() {
  if (!sub_) return;
  (void)natsSubscription_Unsubscribe(sub_);
  natsSubscription_Destroy(sub_);
  sub_ = nullptr;
}

// One stream message (or none within `wait`): decoded and handed to the sequencer.
bool ClusterNode::follow_once(std::chrono::milliseconds wait) {
  if (!sub_ && !subscribe()) return false;
  natsMsg* msg = nullptr;
  natsStatus s = natsSubscription_NextMsg(&msg, sub_, wait.count());
  if (s == NATS_TIMEOUT) return true;
  if (s != NATS_OK) {
    options_.log("stream consumer failed (resubscribing): " + nats_error(s));
    unsubscribe();
    return false;
  }
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
    // Not a stream message (nothing to apply). Were it one, the next message's gap check
    // below, or the lease tick's "no stream message since" check, brings it back.
    natsMsg_Destroy(msg);
    return true;
  }
  const std::uint64_t stream_seq = meta->Sequence.Stream;
  const std::uint64_t pending = meta->NumPending;
  jsMsgMetaData_Destroy(meta);
  std::vector<JournalRecord> records;
  JournalStatus decoded = decode_message(msg, records);
  natsMsg_Destroy(msg);
  if (!decoded) {
    // The stream is the journal of record: a message we cannot read stops the node.
    std::fprintf(stderr, "slotd: cluster: stream seq %llu: %s\n",
                 static_cast<unsigned long long>(stream_seq), decoded.message.c_str());
    std::_Exit(70);
  }
  if (stream_seq <= applied_stream_seq_) return true;  // redelivered
  const std::uint64_t last_event = records.empty() ? 0 : records.back().seq;
  // Records this node already holds (its local journal, after a restart) are skipped.
  std::erase_if(records, [&](const JournalRecord& r) { return r.seq <= submitted_seq_; });
  if (!records.empty() && records.front().seq != submitted_seq_ + 1) {
    const auto holds = [this](std::uint64_t seq) { return stream_holds(seq); };
    if (classify_stream_gap(applied_stream_seq_, stream_seq, holds) == StreamGap::follow_again) {
      ++gap_retries_;
      if (gap_retries_ == 1 || gap_retries_ == 10 || gap_retries_ % 100 == 0) {
        options_.log(fmt::format(
            "stream seq {} (from event {}) arrived after stream seq {} (to event {}), and the stream still "
            "holds seq {}: subscribing again from there (try {} at this seq)",
            stream_seq, records.front().seq, applied_stream_seq_, submitted_seq_, applied_stream_seq_ + 1,
            gap_retries_));
      }
      unsubscribe();
      return false;
    }
    std::fprintf(stderr,
                 "slotd: cluster: stream seq %llu starts at event %llu, this node is at %llu: the "
                 "stream no longer holds the events in between; start this node from a copy of "
                 "a stopped node's data dir\n",
                 static_cast<unsigned long long>(stream_seq),
                 static_cast<unsigned long long>(records.front().seq),
                 static_cast<unsigned long long>(submitted_seq_));
    std::_Exit(70);
  }
  gap_retries_ = 0;
  applied_stream_seq_ = stream_seq;
  if (last_event != 0) stream_event_seq_ = last_event;
  if (!records.empty()) {
    submitted_seq_ = records.back().seq;
    if (!sequencer_->submit_replicated(std::move(records))) return false;
  }
  role_.set_lag(stream_seq, stream_seq + pending);
  return true;
}

// A restart follows the stream from the message after the last one its local journal holds
// entirely (stream_position.hpp: a binary search, ~log2(messages) reads), not from the
// first message. On any read failure it falls back to the first message; records it
// already holds are skipped either way (follow_once).
void ClusterNode::resume_where_the_journal_ends() {
  if (submitted_seq_ == 0) return;
  std::uint64_t first = 0, last = 0;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (natsStatus s = stream_bounds(js_, stream_, first, last, jerr); s != NATS_OK) {
    options_.log("cannot read the stream's bounds (" + nats_error(s, jerr) +
                 "): following it from the first message");
    return;
  }
  const auto last_event_of = [this](std::uint64_t stream_seq) -> std::optional<std::uint64_t> {
    natsMsg* msg = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    if (js_GetMsg(&msg, js_, stream_.c_str(), stream_seq, nullptr, &err) != NATS_OK) return std::nullopt;
    std::vector<JournalRecord> records;
    const JournalStatus decoded = decode_message(msg, records);
    natsMsg_Destroy(msg);
    if (!decoded || records.empty()) return std::nullopt;
    return records.back().seq;
  };
  const std::optional<StreamPosition> found = find_stream_position(submitted_seq_, first, last, last_event_of);
  if (!found) {
    options_.log(fmt::format("the local journal ends at event {}: following the stream from its first message",
                             submitted_seq_));
    return;
  }
  applied_stream_seq_ = found->stream_seq;
  stream_event_seq_ = found->event_seq;
  options_.log(fmt::format(
      "the local journal ends at event {}: following the stream after seq {} (event seq {}, found in {} reads of {} messages)",
      submitted_seq_, found->stream_seq, found->event_seq, found->reads, last >= first ? last - first + 1 : 0));
}

std::optional<bool> ClusterNode::stream_holds(std::uint64_t stream_seq) {
  std::uint64_t first = 0, last = 0;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (stream_bounds(js_, stream_, first, last, jerr) != NATS_OK) return std::nullopt;
  if (stream_seq < first || stream_seq > last) return false;
  natsMsg* msg = nullptr;
  jerr = static_cast<jsErrCode>(0);
  const natsStatus s = js_GetMsg(&msg, js_, stream_.c_str(), stream_seq, nullptr, &jerr);
  if (s == NATS_OK) {
    natsMsg_Destroy(msg);
    return true;
  }
  if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) return false;  // deleted from the middle
  return std::nullopt;
}

std::uint64_t ClusterNode::refresh_stream_bounds() {
  std::uint64_t first = 0, last = 0;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (stream_bounds(js_, stream_, first, last, jerr) != NATS_OK) return UINT64_MAX;
  role_.set_stream_first_seq(first);
  return last;
}

void ClusterNode::lease_tick() {
  if (role_.leading()) {
    std::uint64_t revision = 0;
    natsStatus s = kvStore_UpdateString(&revision, kv_, key_.c_str(), lease_value_.c_str(), lease_revision_);
    if (s == NATS_OK) {
      lease_revision_ = revision;
      last_renewal_ = std::chrono::steady_clock::now();
      (void)refresh_stream_bounds();
      return;
    }
    // Renewal failed: a new owner or an unreachable NATS. Lead no longer than the lease
    // could still be ours; the fence stops anything published after that.
    kvEntry* e = nullptr;
    bool taken = false;
    if (kvStore_Get(&e, kv_, key_.c_str()) == NATS_OK) {
      taken = kvEntry_Revision(e) != lease_revision_;
      kvEntry_Destroy(e);
    }
    if (!taken && std::chrono::steady_clock::now() - last_renewal_ <= options_.lease_ttl / 2) return;
    step_down("lease lost: " + nats_error(s));
    // Falls through: learn the new leader's address now, for the 421 answers.
  }
  // A consumer whose nats-server went away can go quiet without an error: if the stream
  // has moved on and nothing arrived since the last tick, subscribe again from here.
  const std::uint64_t stream_last = refresh_stream_bounds();
  if (stream_last != UINT64_MAX) {
    role_.set_lag(applied_stream_seq_, stream_last);
    if (stream_last > applied_stream_seq_ && applied_stream_seq_ == applied_at_last_tick_ && sub_) {
      options_.log(fmt::format("no stream message since stream seq {} of {}: subscribing again",
                               applied_stream_seq_, stream_last));
      unsubscribe();
    }
    applied_at_last_tick_ = applied_stream_seq_;
  }
  kvEntry* e = nullptr;
  natsStatus s = kvStore_Get(&e, kv_, key_.c_str());
  if (s == NATS_OK) {
    std::string value = kvEntry_ValueString(e) ? kvEntry_ValueString(e) : "";
    kvEntry_Destroy(e);
    const auto space = value.find(' ');
    role_.set_leader_url(space == std::string::npos ? std::string() : value.substr(space + 1));
    return;
  }
  if (s != NATS_NOT_FOUND) return;
  role_.set_leader_url({});
  std::uint64_t revision = 0;
  if (kvStore_CreateString(&revision, kv_, key_.c_str(), lease_value_.c_str()) != NATS_OK) return;
  lease_revision_ = revision;
  last_renewal_ = std::chrono::steady_clock::now();
  if (!try_lead()) step_down("could not catch up with the stream");
}

// Holding the lease: catch up to the stream's last message, then lead.
bool ClusterNode::try_lead() {
  const auto started = std::chrono::steady_clock::now();
  const std::uint64_t last = refresh_stream_bounds();
  if (last == UINT64_MAX) return false;
  options_.log(fmt::format("took the lease; catching up to stream seq {} (at {})", last, applied_stream_seq_));
  while (applied_stream_seq_ < last) {
    if (stopping_.load() || std::chrono::steady_clock::now() - started > options_.lease_ttl / 2) return false;
    (void)follow_once(std::chrono::milliseconds(20));
  }
  if (last > 0 && stream_event_seq_ != submitted_seq_) {
    options_.log(fmt::format("refusing to lead: the stream ends at event {}, this node holds {}",
                             stream_event_seq_, submitted_seq_));
    return false;
  }
  // Everything handed over must be applied before this node decides anything new.
  while (sequencer_->durable_seq() < submitted_seq_) {
    if (stopping_.load()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  unsubscribe();
  last_stream_seq_.store(last, std::memory_order_release);
  role_.set_lag(last, last);
  role_.set_leader_url(options_.advertise_url);
  sequencer_->set_deciding(true);
  role_.set_leading(true);
  role_.count_failover();
  options_.log(fmt::format("leading from stream seq {}, event seq {} ({} ms to catch up)", last, submitted_seq_,
                           std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - started)
                               .count()));
  return true;
}

void ClusterNode::step_down(const std::string& why) {
  options_.log("stepping down: " + why);
  role_.set_leading(false);
  sequencer_->set_deciding(false);
  role_.set_leader_url({});
  // A publish that began before the line above may still succeed: wait until every batch
  // handed to the journal stage is durable (published) or has stopped the process (a
  // refused publish exits 75), so that where this node follows from is final. Without
  // this the node could receive its own last batch back from the stream as a follower.
  const auto deadline = std::chrono::steady_clock::now() + options_.publish_timeout + std::chrono::seconds(1);
  while (sequencer_->durable_seq() < sequencer_->decided_seq() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Follow from what this node published or applied; the sequencer's in-flight batches
  // are fenced (publish refuses once not leading).
  const std::uint64_t last = last_stream_seq_.load(std::memory_order_acquire);
  if (last > applied_stream_seq_) {
    applied_stream_seq_ = last;
    stream_event_seq_ = last_published_event_seq_.load(std::memory_order_acquire);
  }
  submitted_seq_ = std::max({submitted_seq_, sequencer_->durable_seq(),
                             last_published_event_seq_.load(std::memory_order_acquire)});
}

}  // namespace slotd
