#include "api/partition.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

namespace slotd {
namespace {

PartitionMap& the_map() {
  static PartitionMap map;
  return map;
}

// -1: no scope on this thread.
thread_local std::int64_t scoped_partition = -1;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// A base URL a Location header can carry: a scheme, a host, no path, nothing but visible ASCII.
bool valid_base_url(std::string_view url) {
  const std::string_view rest = after_http_scheme(url);
  if (rest.empty() || rest.size() > 200 || rest.find('/') != std::string_view::npos) return false;
  for (char c : rest) {
    if (c < 0x21 || c > 0x7e || c == '?' || c == '#' || c == '"' || c == '\\') return false;
  }
  return true;
}

}  // namespace

std::optional<PartitionMap> PartitionMap::parse(std::string_view text, std::uint32_t self,
                                                std::string& error) {
  PartitionMap map;
  map.self = self;
  map.served = {self};
  std::size_t line_number = 0;
  while (!text.empty()) {
    const auto newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
    ++line_number;
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    const auto space = line.find_first_of(" \t");
    const std::string_view number = line.substr(0, space);
    std::string_view url =
        space == std::string_view::npos ? std::string_view{} : trim(line.substr(space));
    std::uint32_t partition = 0;
    auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), partition);
    if (ec != std::errc{} || p != number.data() + number.size() || partition >= kMaxPartitions) {
      error = fmt::format("line {}: '{}' is not a partition number below {}", line_number, number,
                          kMaxPartitions);
      return std::nullopt;
    }
    while (url.ends_with('/')) url.remove_suffix(1);
    if (!valid_base_url(url)) {
      error = fmt::format("line {}: partition {} needs a base URL (http://host:port, no path)",
                          line_number, partition);
      return std::nullopt;
    }
    if (map.owners.size() <= partition) map.owners.resize(partition + 1);
    if (!map.owners[partition].empty()) {
      error = fmt::format("line {}: partition {} is named twice", line_number, partition);
      return std::nullopt;
    }
    map.owners[partition] = url;
  }
  if (self >= map.owners.size() || map.owners[self].empty()) {
    error = fmt::format("the map does not name this node's partition {}", self);
    return std::nullopt;
  }
  return map;
}

const std::string& PartitionMap::owner(std::uint32_t partition) const {
  static const std::string none;
  return partition < owners.size() ? owners[partition] : none;
}

bool PartitionMap::serves(std::uint32_t partition) const {
  if (served.empty()) return partition == self;
  return std::find(served.begin(), served.end(), partition) != served.end();
}

void set_partition_map(PartitionMap map) {
  the_map() = std::move(map);
}

const PartitionMap& partition_map() {
  return the_map();
}

PartitionScope::PartitionScope(std::uint32_t partition) : previous_(scoped_partition) {
  scoped_partition = partition;
}

PartitionScope::~PartitionScope() { scoped_partition = previous_; }

std::uint32_t current_partition() {
  return scoped_partition >= 0 ? static_cast<std::uint32_t>(scoped_partition) : the_map().self;
}

Id external_id(Id local) {
  return local == 0 ? 0 : (Id{current_partition()} << kPartitionShift) | local;
}

Result<Id> local_id(Id external) {
  const PartitionMap& map = the_map();
  const std::uint32_t partition = partition_of(external);
  if (partition == current_partition()) return external & kLocalIdMask;
  if (map.serves(partition)) {
    return ApiError{400, "cross_partition",
                    fmt::format("id {} is in partition {}, and this request acts in partition {}: "
                                "one request changes one partition",
                                external, partition, current_partition())};
  }
  if (map.owner(partition).empty()) return Id{0};
  return wrong_node_error(partition, fmt::format("id {} is in partition {}, which this node does "
                                                 "not serve; send the request to its owner",
                                                 external, partition));
}

ApiError wrong_node_error(std::uint32_t partition, std::string message) {
  ApiError e{421, "wrong_node", std::move(message)};
  e.owner = the_map().owner(partition);
  return e;
}

std::optional<std::uint32_t> read_data_dir_partition(const std::string& data_dir,
                                                     std::string& error) {
  const auto path = std::filesystem::path(data_dir) / "partition";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return 0;
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  std::uint32_t partition = 0;
  auto [p, err] = std::from_chars(s.data(), s.data() + s.size(), partition);
  if (!in || s.empty() || err != std::errc{} || p != s.data() + s.size() ||
      partition >= kMaxPartitions) {
    error = fmt::format("{} does not hold a partition number", path.string());
    return std::nullopt;
  }
  return partition;
}

bool write_data_dir_partition(const std::string& data_dir, std::uint32_t partition,
                              std::string& error) {
  const auto dir = std::filesystem::path(data_dir);
  const auto temp = dir / "partition.tmp";
  const std::string text = fmt::format("{}\n", partition);
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  if (fd >= 0) ok = ::close(fd) == 0 && ok;
  ok = ok && std::rename(temp.c_str(), (dir / "partition").c_str()) == 0;
  if (ok) {
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ok = dfd >= 0 && ::fsync(dfd) == 0;
    if (dfd >= 0) ::close(dfd);
  }
  if (!ok)
    error = fmt::format("cannot write {}: {}", (dir / "partition").string(), std::strerror(errno));
  return ok;
}

}  // namespace slotd
