// api/partition — which partition this process is, and how ids look outside it.
//
// Clinics live in partitions; each partition has its own engine, sequencer and journal. One
// slotd process serves one partition or several (--partition 0,3,5: the first is its home).
// Inside a partition, ids stay dense
// (the engine's position + 1). Every id the API shows carries its partition in bits 40 and
// up: external = partition << 40 | local. Partition 0's ids are the engine's ids unchanged,
// so a single node without a partition map looks exactly as before. Partitions stop below
// 8192 so that every id stays below 2^53 (exact as a JSON number in JavaScript).
//
// The map (--partition-map FILE) names the owner of each partition: the base URL a client
// is sent to (421 wrong_node) when it names an id of a partition this node does not serve.
//
// Which partition an id belongs to outside is a property of the work at hand, not of the
// process: a thread acting for partition P (a request routed to it, its journal's webhooks,
// a feed subscribed to it) holds a PartitionScope(P), and external_id/local_id use it.
// Without a scope they use the home partition, which is all a one-partition process has.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/errors.hpp"
#include "engine/engine.hpp"

namespace slotd {

inline constexpr unsigned kPartitionShift = 40;
inline constexpr std::uint32_t kMaxPartitions = 8192;
inline constexpr Id kLocalIdMask = (Id{1} << kPartitionShift) - 1;

struct PartitionMap {
  std::uint32_t self = 0;              // this process's home partition (the first it serves)
  std::vector<std::uint32_t> served;  // every partition it serves, home first; empty = {self}
  std::vector<std::string> owners;     // by partition number; "" = not in the map

  // Lines "<partition> <base URL>" ('#' starts a comment). Each partition at most once;
  // URLs are http:// or https:// without a trailing slash. An error names the line.
  static std::optional<PartitionMap> parse(std::string_view text, std::uint32_t self,
                                           std::string& error);
  const std::string& owner(std::uint32_t partition) const;
  bool serves(std::uint32_t partition) const;
};

// Process-wide, set once at start-up before any thread runs (default: partition 0, no map).
void set_partition_map(PartitionMap map);
const PartitionMap& partition_map();

// The partition this thread acts for until the scope ends (scopes nest).
class PartitionScope {
 public:
  explicit PartitionScope(std::uint32_t partition);
  ~PartitionScope();
  PartitionScope(const PartitionScope&) = delete;
  PartitionScope& operator=(const PartitionScope&) = delete;

 private:
  std::int64_t previous_;
};
// The innermost scope's partition, else the home partition.
std::uint32_t current_partition();

inline std::uint32_t partition_of(Id external) {
  return static_cast<std::uint32_t>(external >> kPartitionShift);
}

// 421 wrong_node: `message`, and the owner the map names for `partition` (the caller has
// checked there is one).
ApiError wrong_node_error(std::uint32_t partition, std::string message);

// The id a client sees for an engine id of the current partition (0 stays 0: "none").
Id external_id(Id local);

// The engine id for an id a client sent: its local part when it is the current partition's;
// a 400 cross_partition when this process serves its partition but the request acts in
// another (one request changes one partition: nothing commits across two); 0 (an id no
// engine has, so "not found") when no partition map names its partition; a 421 wrong_node
// naming the owner when the map gives the partition to another node.
Result<Id> local_id(Id external);

// The partition a data dir holds, from DATA_DIR/partition ("<n>\n"; absent: 0, which is
// every data dir from before partitions). Ids in the journal are engine ids, so opening a
// data dir as another partition would renumber every id clients hold: slotd refuses.
std::optional<std::uint32_t> read_data_dir_partition(const std::string& data_dir,
                                                     std::string& error);
// Binds a data dir to `partition` (a partition other than 0, before its journal exists):
// written to a temp file, synced, renamed, directory synced.
bool write_data_dir_partition(const std::string& data_dir, std::uint32_t partition,
                              std::string& error);

}  // namespace slotd
