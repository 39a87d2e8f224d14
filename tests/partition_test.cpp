// api/partition: the map file, ids outside the engine, and what a data dir is bound to.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "api/config.hpp"
#include "api/partition.hpp"

extern char** environ;

using namespace slotd;

namespace {

// set_partition_map is process-wide: each case puts the default back when it ends.
struct MapScope {
  explicit MapScope(PartitionMap map) { set_partition_map(std::move(map)); }
  ~MapScope() { set_partition_map(PartitionMap{}); }
};

// parse_config reads SLOTD_* first: each case that parses flags runs without them, and puts
// them back when it ends.
struct NoSlotdEnvironment {
  std::vector<std::pair<std::string, std::string>> saved;
  NoSlotdEnvironment() {
    for (char** e = environ; *e; ++e) {
      const std::string entry = *e;
      const auto eq = entry.find('=');
      if (entry.starts_with("SLOTD_") && eq != std::string::npos) {
        saved.emplace_back(entry.substr(0, eq), entry.substr(eq + 1));
      }
    }
    for (const auto& [name, value] : saved) ::unsetenv(name.c_str());
  }
  ~NoSlotdEnvironment() {
    ::unsetenv("SLOTD_PARTITION");
    for (const auto& [name, value] : saved) ::setenv(name.c_str(), value.c_str(), 1);
  }
};

ConfigResult parse_flags(std::vector<std::string> args) {
  args.insert(args.begin(), "slotd");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return parse_config(static_cast<int>(args.size()), argv.data());
}

}  // namespace

TEST_CASE("a partition map names each partition's owner once, with a base URL") {
  std::string error;
  auto map = PartitionMap::parse(
      "# the clinics of the north\n0 http://10.0.0.1:8080/\n\n"
      "  2\thttps://b.example:8443  # the south\n",
      2, error);
  REQUIRE_MESSAGE(map, error);
  CHECK(map->self == 2);
  CHECK(map->owner(0) == "http://10.0.0.1:8080");  // the trailing slash is dropped
  CHECK(map->owner(1).empty());
  CHECK(map->owner(2) == "https://b.example:8443");
  CHECK(map->owner(9000).empty());

  struct Bad {
    const char* text;
    const char* error;
  };
  for (const Bad& bad :
       {Bad{"0 http://a:1\n0 http://b:2\n", "line 2: partition 0 is named twice"},
        Bad{"x http://a:1\n", "line 1: 'x' is not a partition number below 8192"},
        Bad{"8192 http://a:1\n", "line 1: '8192' is not a partition number below 8192"},
        Bad{"0 ftp://a:1\n", "line 1: partition 0 needs a base URL"},
        Bad{"0 http://a:1/api\n", "line 1: partition 0 needs a base URL"},
        Bad{"0\n", "line 1: partition 0 needs a base URL"},
        Bad{"0 http://a:1\n", "the map does not name this node's partition 2"}}) {
    CAPTURE(bad.text);
    error.clear();
    CHECK_FALSE(PartitionMap::parse(bad.text, 2, error));
    CHECK(error.starts_with(bad.error));
  }
}

TEST_CASE("ids outside carry the partition and come back to the engine's ids") {
  SUBCASE("partition 0 without a map: the engine's ids unchanged, others not found") {
    CHECK(external_id(7) == 7);
    CHECK(external_id(0) == 0);
    CHECK(*local_id(7) == 7);
    auto foreign = local_id((Id{3} << 40) | 7);
    REQUIRE(foreign);
    CHECK(*foreign == 0);  // no engine id is 0: "not found", as any unknown id
  }
  SUBCASE("partition 3 of a map: its own ids, and a 421 naming the owner of another's") {
    std::string error;
    auto map = PartitionMap::parse("1 http://127.0.0.1:9001\n3 http://127.0.0.1:9003\n", 3, error);
    REQUIRE(map);
    MapScope scope(*map);
    CHECK(external_id(7) == (Id{3} << 40 | 7));
    CHECK(external_id(0) == 0);
    CHECK(*local_id(Id{3} << 40 | 7) == 7);
    auto elsewhere = local_id(Id{1} << 40 | 7);
    REQUIRE_FALSE(elsewhere);
    CHECK(elsewhere.error().status == 421);
    CHECK(elsewhere.error().code == "wrong_node");
    CHECK(elsewhere.error().owner == "http://127.0.0.1:9001");
    // Partition 0 is not in this map: its ids (the small ones) are not found here.
    CHECK(*local_id(7) == 0);
    const HttpResponse r = error_response(elsewhere.error());
    CHECK(r.body.find(R"("code":"wrong_node")") != std::string::npos);
    CHECK(r.body.ends_with(R"(,"owner":"http://127.0.0.1:9001"}})"));
  }
  CHECK(partition_of(Id{8191} << 40 | 1) == 8191);
  CHECK((Id{8191} << 40 | kLocalIdMask) < (Id{1} << 53));  // exact as a JSON number
}

TEST_CASE("a data dir remembers the partition it was bound to") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("slotd-partition-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string error;
  CHECK(*read_data_dir_partition(dir.string(), error) == 0);  // nothing written: partition 0
  REQUIRE(write_data_dir_partition(dir.string(), 42, error));
  CHECK(*read_data_dir_partition(dir.string(), error) == 42);
  CHECK_FALSE(std::filesystem::exists(dir / "partition.tmp"));
  std::ofstream(dir / "partition") << "forty-two\n";
  CHECK_FALSE(read_data_dir_partition(dir.string(), error));
  CHECK(error.find("does not hold a partition number") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("ids carry the partition of the innermost scope, and the home partition without one") {
  PartitionMap home;
  home.self = 2;
  home.served = {2, 5, 6};
  MapScope map(home);
  CHECK(current_partition() == 2);
  CHECK(external_id(7) == (Id{2} << 40 | 7));
  {
    const PartitionScope outer(5);
    CHECK(current_partition() == 5);
    CHECK(external_id(7) == (Id{5} << 40 | 7));
    CHECK(*local_id(Id{5} << 40 | 7) == 7);
    {
      const PartitionScope inner(6);
      CHECK(external_id(7) == (Id{6} << 40 | 7));
      CHECK(*local_id(Id{6} << 40 | 7) == 7);
    }
    CHECK(current_partition() == 5);  // the inner scope ended: the outer one again
    CHECK(external_id(7) == (Id{5} << 40 | 7));
    CHECK(external_id(0) == 0);
  }
  CHECK(current_partition() == 2);
  CHECK(external_id(7) == (Id{2} << 40 | 7));
  CHECK(*local_id(Id{2} << 40 | 7) == 7);

  // A scope belongs to its thread: another thread still acts for the home partition.
  const PartitionScope here(5);
  Id elsewhere = 0;
  std::thread([&] { elsewhere = external_id(7); }).join();
  CHECK(elsewhere == (Id{2} << 40 | 7));
  CHECK(external_id(7) == (Id{5} << 40 | 7));
}

TEST_CASE(
    "an id of another partition this process serves is a 400 cross_partition, of one it does not a "
    "421") {
  std::string error;
  auto map = PartitionMap::parse("0 http://127.0.0.1:9000\n1 http://127.0.0.1:9001\n", 0, error);
  REQUIRE_MESSAGE(map, error);
  map->served = {0, 3};
  MapScope scope(*map);

  // Acting for the home partition (no scope): partition 3's ids are served here, but not by
  // this request.
  auto other = local_id(Id{3} << 40 | 7);
  REQUIRE_FALSE(other);
  CHECK(other.error().status == 400);
  CHECK(other.error().code == "cross_partition");
  CHECK(other.error().owner.empty());
  CHECK(other.error().message.find("partition 3") != std::string::npos);

  {
    const PartitionScope in_3(3);
    CHECK(*local_id(Id{3} << 40 | 7) == 7);
    auto home = local_id(7);  // partition 0's id, from a request acting in partition 3
    REQUIRE_FALSE(home);
    CHECK(home.error().status == 400);
    CHECK(home.error().code == "cross_partition");

    // Partition 1 is in the map but served by another node: sent there, as before.
    auto elsewhere = local_id(Id{1} << 40 | 7);
    REQUIRE_FALSE(elsewhere);
    CHECK(elsewhere.error().status == 421);
    CHECK(elsewhere.error().code == "wrong_node");
    CHECK(elsewhere.error().owner == "http://127.0.0.1:9001");

    // Neither served nor in the map: not found.
    auto unknown = local_id(Id{4} << 40 | 7);
    REQUIRE(unknown);
    CHECK(*unknown == 0);
  }
  CHECK(*local_id(7) == 7);
}

TEST_CASE("a map serves only its home partition unless it lists the partitions it serves") {
  PartitionMap map;
  map.self = 4;
  CHECK(map.served.empty());
  CHECK(map.serves(4));
  CHECK_FALSE(map.serves(0));
  CHECK_FALSE(map.serves(5));
  {
    // So another partition's id is not a cross_partition error here: it is not found.
    MapScope scope(map);
    CHECK(*local_id(Id{4} << 40 | 7) == 7);
    CHECK(*local_id(Id{5} << 40 | 7) == 0);
    CHECK(*local_id(7) == 0);
  }
  map.served = {4, 7};
  CHECK(map.serves(4));
  CHECK(map.serves(7));
  CHECK_FALSE(map.serves(5));

  std::string error;
  auto parsed = PartitionMap::parse("4 http://127.0.0.1:9004\n", 4, error);
  REQUIRE_MESSAGE(parsed, error);
  CHECK(parsed->served == std::vector<std::uint32_t>{4});
}

TEST_CASE("--partition takes one partition or a list of distinct ones, the first being the home") {
  NoSlotdEnvironment environment;
  {
    auto r = parse_flags({});
    REQUIRE_MESSAGE(r.config, r.error);
    CHECK(r.config->partition == 0);
    CHECK(r.config->partitions == std::vector<std::uint32_t>{0});
  }
  {
    auto r = parse_flags({"--partition", "3,5,8"});
    REQUIRE_MESSAGE(r.config, r.error);
    CHECK(r.config->partition == 3);
    CHECK(r.config->partitions == std::vector<std::uint32_t>{3, 5, 8});
  }
  {
    auto r = parse_flags({"--partition=8,0"});
    REQUIRE_MESSAGE(r.config, r.error);
    CHECK(r.config->partition == 8);
    CHECK(r.config->partitions == std::vector<std::uint32_t>{8, 0});
  }
  {
    auto r = parse_flags({"--partition", "3"});
    REQUIRE_MESSAGE(r.config, r.error);
    CHECK(r.config->partition == 3);
    CHECK(r.config->partitions == std::vector<std::uint32_t>{3});
  }
  {
    auto r = parse_flags({"--partition", "8191"});
    REQUIRE_MESSAGE(r.config, r.error);
    CHECK(r.config->partitions == std::vector<std::uint32_t>{8191});
  }
  for (const char* bad : {"3,3", "3,5,3", "8192", "3,8192", "3,", ",3", "3,,5", "", "x", "3,x",
                          "-1", "3 ,5", "3, 5"}) {
    CAPTURE(bad);
    auto r = parse_flags({"--partition", bad});
    CHECK_FALSE(r.config);
    CHECK(r.error == "invalid value '" + std::string(bad) + "' for --partition");
  }

  // SLOTD_PARTITION is read the same way, and a flag wins over it.
  REQUIRE(::setenv("SLOTD_PARTITION", "0,3", 1) == 0);
  {
    auto r = parse_flags({});
    REQUIRE_MESSAGE(r.config, r.error);
    CHECK(r.config->partition == 0);
    CHECK(r.config->partitions == std::vector<std::uint32_t>{0, 3});
  }
  {
    auto r = parse_flags({"--partition", "5"});
    REQUIRE_MESSAGE(r.config, r.error);
    CHECK(r.config->partition == 5);
    CHECK(r.config->partitions == std::vector<std::uint32_t>{5});
  }
  REQUIRE(::setenv("SLOTD_PARTITION", "3,3", 1) == 0);
  {
    auto r = parse_flags({});
    CHECK_FALSE(r.config);
    CHECK(r.error == "invalid value '3,3' in SLOTD_PARTITION");
  }
}
