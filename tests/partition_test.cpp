// api/partition: the map file, ids outside the engine, and what a data dir is bound to.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "api/partition.hpp"

using namespace slotd;

namespace {

// set_partition_map is process-wide: each case puts the default back when it ends.
struct MapScope {
  explicit MapScope(PartitionMap map) { set_partition_map(std::move(map)); }
  ~MapScope() { set_partition_map(PartitionMap{}); }
};

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
