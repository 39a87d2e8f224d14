// cluster/stream_position — where a restarted node resumes in the partition's stream.
//
// The stream's messages hold consecutive events in stream order (message k+1's first event
// follows message k's last), so "every event of this message is in the local journal" is
// true for a prefix of the stream and false after it. A binary search over stream seqs
// finds the end of that prefix in about log2(messages) reads, instead of reading the stream
// from its first message. No position is stored anywhere: the local journal's last seq is
// the only input, so the answer can never be stale.
#pragma once

#include <cstdint>
#include <optional>

namespace slotd {

struct StreamPosition {
  std::uint64_t stream_seq = 0;  // the last message whose events are all held locally
  std::uint64_t event_seq = 0;   // that message's last event
  unsigned reads = 0;            // messages read to find it
};

// `last_event_of(stream_seq)` reads one message and returns its last event's seq, or
// nothing when it cannot be read. Stream seqs first..last (first >= 1) are searched.
// Returns nothing when a read fails or no message is entirely held locally (the caller
// then follows from the first message, as without a search).
template <typename LastEventOf>
std::optional<StreamPosition> find_stream_position(std::uint64_t local_last_event,
                                                   std::uint64_t first, std::uint64_t last,
                                                   LastEventOf&& last_event_of) {
  if (local_last_event == 0 || first == 0 || last < first) return std::nullopt;
  StreamPosition found;
  unsigned reads = 0;
  std::uint64_t lo = first, hi = last;
  while (lo <= hi) {
    const std::uint64_t mid = lo + (hi - lo) / 2;
    const std::optional<std::uint64_t> event = last_event_of(mid);
    ++reads;
    if (!event) return std::nullopt;
    if (*event <= local_last_event) {
      found.stream_seq = mid;
      found.event_seq = *event;
      lo = mid + 1;
    } else {
      if (mid == first) break;
      hi = mid - 1;
    }
  }
  if (found.stream_seq == 0) return std::nullopt;
  found.reads = reads;
  return found;
}

// A stream message arrived whose first new event does not continue the local journal.
// Either the consumer skipped messages that the stream still holds, and following again
// from the message after the last applied one closes the gap; or the stream no longer holds
// the events in between (--stream-keep-batches discarded them, or the stream was replaced),
// and this node cannot catch up from it. CI once saw the first: a live follower, well
// within the stream's retention, got a message whose events skipped one of its journal's.
enum class StreamGap { follow_again, events_gone };

// `holds(stream_seq)` says whether the stream still has that message, or nothing when it
// cannot tell (a read failed): then the node follows again, and the next pass decides.
template <typename Holds>
StreamGap classify_stream_gap(std::uint64_t last_applied, std::uint64_t arrived, Holds&& holds) {
  // The very next message: no message was skipped, the stream itself lacks the events.
  if (arrived <= last_applied + 1) return StreamGap::events_gone;
  const std::optional<bool> held = holds(last_applied + 1);
  return held.value_or(true) ? StreamGap::follow_again : StreamGap::events_gone;
}

}  // namespace slotd
