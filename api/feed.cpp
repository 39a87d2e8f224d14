#include "api/feed.hpp"

#include <algorithm>
#include <iterator>

#include <fmt/format.h>
#include <simdjson.h>

#include "api/json_out.hpp"
#include "api/partition.hpp"

namespace slotd {
namespace {

constexpr std::size_t kMaxSubscribedDoctors = 10'000;
constexpr std::size_t kMaxControlMessages = 64;

simdjson::dom::parser& feed_parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

}  // namespace

bool Subscription::matches(Id doctor_id, Id doctor_clinic_id) const {
  if (clinic_id) return *clinic_id == doctor_clinic_id;
  return std::binary_search(doctor_ids.begin(), doctor_ids.end(), doctor_id);
}

void append_change_json(std::string& out, const SlotChange& c, const ReadStore& reads) {
  auto it = std::back_inserter(out);
  auto slot = reads.slot(c.slot_id);
  if (!slot) return;  // cannot happen for a published change
  slot->status = c.slot_status;  // the status right after this event
  const std::string_view event = kEventNames[c.event_type];
  if (c.booking_id == 0) {
    fmt::format_to(it, R"({{"type":"slot","seq":{},"event":"{}","slot":)", c.seq, event);
  } else {
    fmt::format_to(
        it,
        R"({{"type":"booking","seq":{},"event":"{}","booking":{{"id":{},"slotId":{},"status":"{}"}},"slot":)",
        c.seq, event, external_id(c.booking_id), external_id(c.booking_slot_id),
        to_string(c.booking_status));
  }
  append_slot_json(out, *slot);
  out += '}';
}

std::shared_ptr<const RenderedBatch> render_batch(std::span<const SlotChange> changes,
                                                  const ReadStore& reads) {
  auto batch = std::make_shared<RenderedBatch>();
  batch->partition = current_partition();
  batch->bytes.reserve(changes.size() * 200);
  batch->messages.reserve(changes.size());
  for (const SlotChange& c : changes) {
    const auto offset = static_cast<std::uint32_t>(batch->bytes.size());
    append_change_json(batch->bytes, c, reads);
    batch->messages.push_back(RenderedBatch::Message{
        c.seq, c.doctor_id, c.clinic_id, offset,
        static_cast<std::uint32_t>(batch->bytes.size() - offset)});
  }
  return batch;
}

FeedSession::FeedSession(const Sequencer& sequencer, FeedLimits limits,
                         std::span<const FeedSource> partitions)
    : sequencer_(&sequencer), partitions_(partitions), partition_(current_partition()),
      limits_(limits) {}

void FeedSession::queue_error(std::string_view code, std::string_view message) {
  std::string out = R"({"type":"error","code":)";
  append_json_string(out, code);
  out += R"(,"message":)";
  append_json_string(out, message);
  out += '}';
  control_.push_back(std::move(out));
}

// {"op":"subscribe","doctorIds":[…]|"clinicId":N,"fromSeq":N?}
void FeedSession::on_message(std::string_view text) {
  if (control_.size() >= kMaxControlMessages) {
    slow_ = true;  // a client that only talks and never reads
    return;
  }
  simdjson::dom::object obj;
  std::string_view op;
  if (feed_parser().parse(text.data(), text.size()).get_object().get(obj) ||
      obj["op"].get_string().get(op)) {
    return queue_error("invalid_message",
                       R"(send {"op":"subscribe","doctorIds":[…]} or {"op":"subscribe","clinicId":N})");
  }
  if (op != "subscribe") return queue_error("invalid_message", "the only op is subscribe");
  if (subscribed_) return queue_error("already_subscribed", "a connection subscribes once");
  Subscription subscription;
  simdjson::dom::element e;
  // Several partitions here: the first id names the one to follow (a retry starts over from
  // home); every id is read in its scope.
  if (!partitions_.empty()) {
    sequencer_ = partitions_.front().sequencer;
    partition_ = partitions_.front().partition;
  }
  bool first = true;
  // Ids of a partition another node owns: the client subscribes there.
  auto local = [this, &first](std::uint64_t id) -> std::optional<Id> {
    if (first) {
      first = false;
      for (const FeedSource& source : partitions_) {
        if (source.partition == partition_of(id)) {
          sequencer_ = source.sequencer;
          partition_ = source.partition;
        }
      }
    }
    const PartitionScope scope(partition_);
    auto l = local_id(id);
    if (l) return *l;
    const ApiError& e = l.error();
    queue_error(e.code, e.owner.empty() ? e.message : e.message + ": " + e.owner);
    return std::nullopt;
  };
  if (!obj["clinicId"].get(e)) {
    std::uint64_t id;
    if (e.get_uint64().get(id)) return queue_error("invalid_message", "clinicId must be an integer id");
    auto clinic = local(id);
    if (!clinic) return;
    subscription.clinic_id = *clinic;
  } else if (!obj["doctorIds"].get(e)) {
    simdjson::dom::array ids;
    if (e.get_array().get(ids) || ids.size() > kMaxSubscribedDoctors) {
      return queue_error("invalid_message", "doctorIds must be an array of at most 10000 ids");
    }
    for (simdjson::dom::element item : ids) {
      std::uint64_t id;
      if (item.get_uint64().get(id)) return queue_error("invalid_message", "doctorIds must be an array of ids");
      auto doctor = local(id);
      if (!doctor) return;
      subscription.doctor_ids.push_back(*doctor);
    }
    std::sort(subscription.doctor_ids.begin(), subscription.doctor_ids.end());
    subscription.doctor_ids.erase(
        std::unique(subscription.doctor_ids.begin(), subscription.doctor_ids.end()),
        subscription.doctor_ids.end());
  } else {
    return queue_error("invalid_message", "subscribe needs doctorIds or clinicId");
  }
  std::optional<std::uint64_t> from_seq;
  if (!obj["fromSeq"].get(e)) {
    std::uint64_t v;
    if (e.get_uint64().get(v)) return queue_error("invalid_message", "fromSeq must be an integer");
    from_seq = v;
  }
  start(std::move(subscription), from_seq);
}

std::vector<Id> FeedSession::subscribed_doctors() const {
  auto catalog = sequencer_->reads().catalog();
  std::vector<Id> out;
  if (subscription_.clinic_id) {
    for (const DoctorInfo& d : catalog->doctors) {
      if (d.clinic_id == *subscription_.clinic_id) out.push_back(d.id);
    }
  } else {
    for (Id id : subscription_.doctor_ids) {
      if (catalog->doctor(id)) out.push_back(id);
    }
  }
  return out;
}

void FeedSession::start(Subscription subscription, std::optional<std::uint64_t> from_seq) {
  subscribed_ = true;
  subscription_ = std::move(subscription);
  // Never beyond what readers can see: a record the read side has not published yet may
  // name a slot it does not know.
  const std::uint64_t published = sequencer_->reads().as_of_seq();
  if (from_seq) {
    if (*from_seq >= 1 && *from_seq <= published + 1 &&
        published + 1 - *from_seq <= limits_.max_catch_up) {
      mode_ = Mode::catch_up;
      next_seq_ = *from_seq;
      start_round();
      return;
    }
    control_.push_back(
        R"({"type":"resync_required","reason":"fromSeq is not within the retained journal; here is a fresh snapshot"})");
  }
  mode_ = Mode::snapshot;
  snapshot_seq_ = published;
  doctors_ = subscribed_doctors();
}

// A round reads the journal up to what is published now. Live batches that arrive
// meanwhile are held (they may be newer); if too many arrive, they are dropped and the
// next round reads them from the journal instead.
void FeedSession::start_round() {
  held_.clear();
  held_bytes_ = 0;
  held_dropped_ = false;
  round_target_ = sequencer_->reads().as_of_seq();
}

void FeedSession::on_batch(std::shared_ptr<const RenderedBatch> batch) {
  if (!subscribed_ || batch->messages.empty() || batch->partition != partition_) return;
  if (mode_ == Mode::live) return queue_live(batch, last_sent_seq_);
  if (held_dropped_) return;
  held_bytes_ += batch->bytes.size();
  if (held_bytes_ > limits_.max_queue_bytes) {
    held_.clear();
    held_bytes_ = 0;
    held_dropped_ = true;
    return;
  }
  held_.push_back(std::move(batch));
}

void FeedSession::queue_live(const std::shared_ptr<const RenderedBatch>& batch,
                             std::uint64_t after_seq) {
  std::vector<std::uint32_t>& wanted = wanted_;
  wanted.clear();
  std::size_t wanted_bytes = 0;
  for (std::uint32_t i = 0; i < batch->messages.size(); ++i) {
    const auto& m = batch->messages[i];
    if (m.seq <= after_seq) continue;  // already in the snapshot or the catch-up
    last_sent_seq_ = std::max(last_sent_seq_, m.seq);
    if (!subscription_.matches(m.doctor_id, m.clinic_id)) continue;
    wanted.push_back(i);
    wanted_bytes += m.length;
  }
  if (wanted.empty()) return;
  // A queued message keeps its whole batch alive. When this subscription wants little of a
  // batch, it keeps a copy of its part instead: a client that stops reading then holds what
  // queued_bytes_ counts, not every batch that had one of its events.
  Queued queued{batch, {}, 0, 0};
  if (wanted_bytes * 2 < batch->bytes.size()) {
    auto own = std::make_shared<RenderedBatch>();
    own->bytes.reserve(wanted_bytes);
    own->messages.reserve(wanted.size());
    for (std::uint32_t& i : wanted) {
      RenderedBatch::Message m = batch->messages[i];
      const auto offset = static_cast<std::uint32_t>(own->bytes.size());
      own->bytes.append(batch->text(m));
      m.offset = offset;
      own->messages.push_back(m);
    }
    queued.end = static_cast<std::uint32_t>(own->messages.size());
    queued.batch = std::move(own);
  } else if (wanted.back() - wanted.front() + 1 == wanted.size()) {
    queued.next = wanted.front();
    queued.end = wanted.back() + 1;
  } else {
    queued.picks = wanted;
    queued.end = static_cast<std::uint32_t>(wanted.size());
  }
  live_.push_back(std::move(queued));
  queued_bytes_ += wanted_bytes;
  if (queued_bytes_ > limits_.max_queue_bytes) slow_ = true;
}

void FeedSession::go_live() {
  mode_ = Mode::live;
  last_sent_seq_ = round_target_;
  for (const auto& batch : held_) queue_live(batch, last_sent_seq_);
  held_.clear();
  held_bytes_ = 0;
}

std::optional<Frame> FeedSession::snapshot_frame() {
  const ReadStore& reads = sequencer_->reads();
  page_.clear();
  if (!snapshot_started_) {
    snapshot_started_ = true;
    fmt::format_to(std::back_inserter(page_), R"({{"type":"snapshot","asOfSeq":{},"slots":[)",
                   snapshot_seq_);
  }
  std::size_t in_page = 0;
  while (in_page < limits_.page_slots && doctor_index_ < doctors_.size()) {
    if (!slot_ids_) {
      const DoctorView* view = reads.doctor(doctors_[doctor_index_]);
      slot_ids_ = view ? view->slot_ids() : std::make_shared<const std::vector<std::uint32_t>>();
      slot_index_ = 0;
    }
    for (; slot_index_ < slot_ids_->size() && in_page < limits_.page_slots; ++slot_index_, ++in_page) {
      if (!first_slot_) page_ += ',';
      first_slot_ = false;
      append_slot_json(page_, *reads.slot((*slot_ids_)[slot_index_]));
    }
    if (slot_index_ == slot_ids_->size()) {
      slot_ids_.reset();
      ++doctor_index_;
    }
  }
  const bool done = doctor_index_ == doctors_.size();
  if (done) {
    page_ += "]}";
    // What happened since the snapshot began comes next, from the journal.
    mode_ = Mode::catch_up;
    next_seq_ = snapshot_seq_ + 1;
    doctors_.clear();
    start_round();
  }
  return Frame{page_, done};
}

std::optional<Frame> FeedSession::catch_up_frame() {
  for (;;) {
    if (next_seq_ > round_target_) {
      if (held_dropped_) {
        start_round();
        continue;
      }
      go_live();
      return std::nullopt;  // the caller asks again, now live
    }
    // One record at a time, rendered into page_, until one matches the subscription.
    const ReadStore& reads = sequencer_->reads();
    std::vector<SlotChange> found;
    const std::uint64_t limit = std::min<std::uint64_t>(limits_.page_events, round_target_ - next_seq_ + 1);
    std::uint64_t read_up_to = next_seq_ - 1;
    JournalStatus st = sequencer_->read_journal(next_seq_, limit, [&](const JournalRecord& r) {
      read_up_to = r.seq;
      for (const SlotChange& c : reads.slot_changes_of(r)) {
        if (subscription_.matches(c.doctor_id, c.clinic_id)) found.push_back(c);
      }
      return true;
    });
    if (!st || read_up_to < next_seq_) {
      // The journal cannot give what it promised: let the client start over.
      slow_ = true;
      return std::nullopt;
    }
    next_seq_ = read_up_to + 1;
    if (found.empty()) continue;
    auto page = render_batch(found, reads);
    // Catch-up messages go through the live queue's mechanics but are not "live": they
    // are bounded by page_events per step, and the next step waits until they are sent.
    for (const auto& m : page->messages) queued_bytes_ += m.length;
    const auto count = static_cast<std::uint32_t>(page->messages.size());
    live_.push_back(Queued{std::move(page), {}, 0, count});
    return std::nullopt;  // the caller drains live_ first
  }
}

std::optional<Frame> FeedSession::next_frame() {
  const PartitionScope scope(partition_);  // snapshot and catch-up pages show its ids
  writing_.reset();
  if (slow_) return std::nullopt;
  const bool in_fragmented_message = mode_ == Mode::snapshot && snapshot_started_;
  if (!control_.empty() && !in_fragmented_message) {
    page_ = std::move(control_.front());
    control_.pop_front();
    return Frame{page_, true};
  }
  for (int attempts = 0; attempts < 3; ++attempts) {
    if (!live_.empty()) {
      Queued& q = live_.front();
      const RenderedBatch* batch = q.batch.get();
      const auto& m = batch->messages[q.picks.empty() ? q.next : q.picks[q.next]];
      queued_bytes_ -= m.length;
      if (++q.next == q.end) {  // its last message: the batch now lives as long as the frame
        writing_ = std::move(q.batch);
        live_.pop_front();
      }
      return Frame{batch->text(m), true};
    }
    if (mode_ == Mode::snapshot) return snapshot_frame();
    if (mode_ != Mode::catch_up) return std::nullopt;
    if (auto frame = catch_up_frame()) return frame;
    if (slow_) return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace slotd
