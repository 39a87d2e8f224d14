// Which partition a request is for, in a process that serves several (api/partition.hpp).
//
// A request acts in one partition: the one of the id it names. Where that id sits depends on
// the route: in the path (/booking/:id), in a query (?clinicId=, ?doctorId=) or in
// the body (a POST's slotId, doctorId or clinicId). A request that names none goes to
// ?partition=N, else to the home partition (POST /clinics creates its clinic there). An id
// of a partition served elsewhere goes to the home partition, whose handler answers 421 or
// 404 as a one-partition node does. Nothing here fails on bad input: the handler that gets
// the request reports it.
#include <fmt/format.h>

#include "api/call.hpp"
#include "api/json_in.hpp"
#include "api/partition.hpp"

namespace slotd {
namespace {

// The body field that names the partition of a POST to a path without an id.
std::string_view body_key(std::string_view path_head) {
  if (path_head == "booking") return "slotId";
  if (path_head == "slots" || path_head == "waitlist") return "doctorId";
  if (path_head == "doctors") return "clinicId";
  return {};
}

std::optional<Id> body_id(std::string_view body, std::string_view key) {
  auto object = parse_body(body);
  if (!object || !has_field(*object, key)) return std::nullopt;
  auto id = id_field(*object, key);
  if (!id) return std::nullopt;
  return *id;
}

// The id that decides: the path's, a query's, or the body's.
std::optional<Id> deciding_id(const HttpRequest& request, const Target& target) {
  const std::size_t n = target.segment_count;
  if (n == 0) return std::nullopt;
  const std::string_view head = target.segments[0];
  // /slots/:id…, /booking/:id…, /waitlist/:id, /clinics/:id; /admin/webhooks/:id…
  if (head == "admin" && n >= 3 && target.segments[1] == "webhooks") {
    return id_from_text(target.segments[2]);
  }
  if (head != "admin" && n >= 2) return id_from_text(target.segments[1]);
  // (Not ?after=: a page of GET /admin/bookings over every partition ends in any of them.)
  for (std::string_view key : {"clinicId", "doctorId"}) {
    if (const std::string* value = target.param(key)) return id_from_text(*value);
  }
  if (request.method == "POST" && n == 1) {
    const std::string_view key = body_key(head);
    if (!key.empty()) return body_id(request.body, key);
  }
  if (request.method == "POST" && n == 2 && head == "admin" && target.segments[1] == "webhooks") {
    return body_id(request.body, "clinicId");
  }
  return std::nullopt;
}

}  // namespace

Result<Api*> Api::route(const HttpRequest& request) {
  Target target;
  if (!split_target(request.target, target)) return this;
  auto served = [this](std::uint32_t partition) -> Api* {
    if (partitions_.empty()) return partition == options_.partition ? this : nullptr;
    for (Api* api : partitions_) {
      if (api->partition() == partition) return api;
    }
    return nullptr;
  };
  if (auto id = deciding_id(request, target)) {
    Api* api = served(partition_of(*id));
    return api ? api : this;
  }
  if (const std::string* value = target.param("partition")) {
    auto number = id_from_text(*value);
    if (!number || *number >= kMaxPartitions) {
      return bad_query(fmt::format("partition must be a number below {}", kMaxPartitions));
    }
    const auto partition = static_cast<std::uint32_t>(*number);
    if (Api* api = served(partition)) return api;
    if (partition_map().owner(partition).empty()) {
      return ApiError{404, "not_found", fmt::format("no node serves partition {}", partition)};
    }
    return wrong_node_error(partition, fmt::format("partition {} is served by another node; send "
                                                   "the request to its owner",
                                                   partition));
  }
  return this;
}

}  // namespace slotd
