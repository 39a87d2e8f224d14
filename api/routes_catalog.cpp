// Clinics, doctors and slots: the catalog a patient browses and an admin builds.
#include <algorithm>
#include <iterator>

#include <fmt/format.h>

#include "api/call.hpp"
#include "api/iso_time.hpp"
#include "api/json_in.hpp"
#include "api/json_out.hpp"
#include "api/partition.hpp"
#include "api/time_zones.hpp"

namespace slotd {
namespace {

std::string catalog_etag(const Call& call, const Catalog& catalog, char what) {
  return fmt::format("\"{}{:x}.{}\"", what, call.api.epoch(), catalog.version);
}

// The rendered body of a catalog list, made once per catalog version by the first reader.
template <class Render>
std::shared_ptr<const std::string> cached(AtomicShared<const std::string>& slot,
                                          Render&& render) {
  auto body = slot.load();
  if (!body) {
    body = std::make_shared<const std::string>(render());
    slot.store(body);
  }
  return body;
}

// The whole list of a catalog, in the current partition's ids.
std::shared_ptr<const std::string> doctors_body(const Catalog& catalog) {
  return cached(catalog.doctors_json, [&] {
    std::string out = "[";
    for (const DoctorInfo& d : catalog.doctors) {
      if (out.size() > 1) out += ',';
      append_doctor_json(out, d);
    }
    out += ']';
    return out;
  });
}

std::shared_ptr<const std::string> clinics_body(const Catalog& catalog) {
  return cached(catalog.clinics_json, [&] {
    std::string out = "[";
    for (const ClinicInfo& c : catalog.clinics) {
      if (out.size() > 1) out += ',';
      append_clinic_json(out, c);
    }
    out += ']';
    return out;
  });
}

// A list of every partition this process serves, home first: each partition's own cached
// body, rendered in its ids, joined once per change of any of them (the ETag names every
// partition's catalog version).
void respond_merged(Call& call, char what,
                    std::shared_ptr<const std::string> (*body_of)(const Catalog&)) {
  const std::span<Api* const> parts = call.merged_partitions();
  std::vector<std::shared_ptr<const Catalog>> catalogs;
  std::string etag = fmt::format("\"{}{:x}", what, call.api.epoch());
  for (Api* api : parts) {
    catalogs.push_back(api->sequencer().reads().catalog());
    fmt::format_to(std::back_inserter(etag), ".{}", catalogs.back()->version);
  }
  etag += '"';
  AtomicShared<const Api::MergedList>& slot = call.api.merged_list(what);
  auto merged = slot.load();
  if (!merged || merged->etag != etag) {
    std::string body = "[";
    for (std::size_t i = 0; i < catalogs.size(); ++i) {
      const PartitionScope scope(parts[i]->partition());
      auto part = body_of(*catalogs[i]);
      if (part->size() <= 2) continue;
      if (body.size() > 1) body += ',';
      body.append(*part, 1, part->size() - 2);
    }
    body += ']';
    merged = std::make_shared<const Api::MergedList>(
        Api::MergedList{etag, std::make_shared<const std::string>(std::move(body))});
    slot.store(merged);
  }
  call.respond(etag_reply(call, std::move(etag), merged->body));
}

std::optional<SlotStatus> slot_status_from(std::string_view s) {
  for (auto st : {SlotStatus::available, SlotStatus::held, SlotStatus::booked, SlotStatus::closed}) {
    std::string_view name = to_string(st);
    if (s.size() == name.size() &&
        std::equal(s.begin(), s.end(), name.begin(), [](char a, char b) {
          return std::toupper(static_cast<unsigned char>(a)) == b;
        })) {
      return st;
    }
  }
  return std::nullopt;
}

}  // namespace

void get_doctors(Call& call) {
  auto catalog = call.reads().catalog();
  if (const std::string* p = call.target.param("clinicId")) {
    auto external = id_from_text(*p);
    if (!external) return call.fail(bad_query("clinicId must be an integer id"));
    auto clinic_id = local_id(*external);
    if (!clinic_id) return call.fail(clinic_id.error());
    std::string body = "[";
    for (const DoctorInfo& d : catalog->doctors) {
      if (d.clinic_id != *clinic_id) continue;
      if (body.size() > 1) body += ',';
      append_doctor_json(body, d);
    }
    body += ']';
    return call.respond(json_reply(200, std::move(body)));
  }
  if (!call.merged_partitions().empty()) return respond_merged(call, 'd', doctors_body);
  call.respond(etag_reply(call, catalog_etag(call, *catalog, 'd'), doctors_body(*catalog)));
}

void get_clinics(Call& call) {
  if (!call.merged_partitions().empty()) return respond_merged(call, 'c', clinics_body);
  auto catalog = call.reads().catalog();
  call.respond(etag_reply(call, catalog_etag(call, *catalog, 'c'), clinics_body(*catalog)));
}

void post_doctors(Call& call) {
  auto obj = parse_body(call.request.body);
  if (!obj) return call.fail(obj.error());
  auto name = name_field(*obj, "name");
  if (!name) return call.fail(name.error());
  auto specialty = name_field(*obj, "specialty", /*allow_empty=*/true);
  if (!specialty) return call.fail(specialty.error());
  Id clinic_id = 1;  // clinic 1 always exists
  if (has_field(*obj, "clinicId")) {
    auto id = entity_id_field(*obj, "clinicId");
    if (!id) return call.fail(id.error());
    clinic_id = *id;
  }
  call.submit(AddDoctor{clinic_id, std::move(*name), std::move(*specialty)}, Actor::admin,
              ReplyKind::doctor_created);
}

namespace {

Result<std::string> time_zone_field(JsonObject obj) {
  auto zone = string_field(obj, "timeZone");
  if (!zone) return zone.error();
  if (!valid_time_zone(*zone)) {
    return ApiError{400, "invalid_field",
                    "field 'timeZone' must be an IANA time zone name like Europe/Berlin"};
  }
  return std::string(*zone);
}

}  // namespace

void post_clinics(Call& call) {
  auto obj = parse_body(call.request.body);
  if (!obj) return call.fail(obj.error());
  auto name = name_field(*obj, "name");
  if (!name) return call.fail(name.error());
  std::string zone = call.api.options().default_time_zone;
  if (has_field(*obj, "timeZone")) {
    auto z = time_zone_field(*obj);
    if (!z) return call.fail(z.error());
    zone = std::move(*z);
  }
  call.submit(AddClinic{std::move(*name), std::move(zone)}, Actor::admin,
              ReplyKind::clinic_created);
}

void patch_clinic(Call& call) {
  auto obj = parse_body(call.request.body);
  if (!obj) return call.fail(obj.error());
  UpdateClinic command{call.id, {}, {}};
  if (has_field(*obj, "name")) {
    auto name = name_field(*obj, "name");
    if (!name) return call.fail(name.error());
    command.name = std::move(*name);
  }
  if (has_field(*obj, "timeZone")) {
    auto z = time_zone_field(*obj);
    if (!z) return call.fail(z.error());
    command.time_zone = std::move(*z);
  }
  if (command.name.empty() && command.time_zone.empty()) {
    return call.fail(ApiError{400, "missing_field", "send 'name', 'timeZone' or both"});
  }
  call.submit(std::move(command), Actor::admin, ReplyKind::clinic_updated);
}

namespace {

Result<SlotSpan> span_of(JsonObject obj) {
  auto start = instant_field(obj, "start");
  if (!start) return start.error();
  auto end = instant_field(obj, "end");
  if (!end) return end.error();
  return SlotSpan{*start, *end};
}

}  // namespace

// One slot {"doctorId","start","end"} or many {"doctorId","slots":[…]}, all or nothing.
void post_slots(Call& call) {
  auto obj = parse_body(call.request.body);
  if (!obj) return call.fail(obj.error());
  auto doctor_id = entity_id_field(*obj, "doctorId");
  if (!doctor_id) return call.fail(doctor_id.error());
  CreateSlots command{*doctor_id, {}};
  simdjson::dom::element slots_element;
  const bool bulk = !(*obj)["slots"].get(slots_element);
  if (bulk) {
    simdjson::dom::array array;
    if (slots_element.get_array().get(array)) {
      return call.fail(ApiError{400, "invalid_field", "field 'slots' must be an array of {\"start\",\"end\"}"});
    }
    const std::uint32_t max = call.api.options().max_bulk_slots;
    if (array.size() > max) {
      return call.fail(ApiError{413, "too_many_slots", fmt::format("at most {} slots per request", max)});
    }
    command.spans.reserve(array.size());
    for (simdjson::dom::element item : array) {
      JsonObject span_object;
      if (item.get_object().get(span_object)) {
        return call.fail(ApiError{400, "invalid_field", "each of 'slots' must be an object {\"start\",\"end\"}"});
      }
      auto span = span_of(span_object);
      if (!span) return call.fail(span.error());
      command.spans.push_back(*span);
    }
  } else {
    auto span = span_of(*obj);
    if (!span) return call.fail(span.error());
    command.spans.push_back(*span);
  }
  call.submit(std::move(command), Actor::admin, bulk ? ReplyKind::slots_created : ReplyKind::slot_created);
}

void delete_slot(Call& call) { call.submit(CloseSlot{call.id}, Actor::admin, ReplyKind::slot_closed); }

// A doctor's slots ordered by start; `from <= start < to`. The unfiltered list is rendered
// once per version of the doctor's view and shared by every reader of that version.
void get_slots(Call& call) {
  TimeMs from = std::numeric_limits<TimeMs>::min();
  TimeMs to = std::numeric_limits<TimeMs>::max();
  std::optional<SlotStatus> status;
  if (const std::string* p = call.target.param("from")) {
    auto ms = instant_from_text(*p);
    if (!ms) return call.fail(bad_query("from must be an ISO-8601 instant like 2031-01-06T08:00:00.000Z"));
    from = *ms;
  }
  if (const std::string* p = call.target.param("to")) {
    auto ms = instant_from_text(*p);
    if (!ms) return call.fail(bad_query("to must be an ISO-8601 instant like 2031-01-06T08:00:00.000Z"));
    to = *ms;
  }
  if (const std::string* p = call.target.param("status")) {
    status = slot_status_from(*p);
    if (!status) return call.fail(bad_query("status must be AVAILABLE, HELD, BOOKED or CLOSED"));
  }
  const ReadStore& reads = call.reads();
  const DoctorView* view = reads.doctor(call.id);
  if (!view) return call.respond(json_reply(200, "[]"));
  const bool filtered = status || call.target.param("from") || call.target.param("to");
  const std::uint64_t version = view->version();
  auto etag = fmt::format("\"s{:x}.{}.{}\"", call.api.epoch(), call.id, version);
  if (!filtered) {
    if (auto cached_body = view->cached(); cached_body && cached_body->version == version) {
      std::shared_ptr<const std::string> body(cached_body, &cached_body->body);
      return call.respond(etag_reply(call, std::move(etag), std::move(body)));
    }
  }
  auto ids = view->slot_ids();
  auto begin = ids->begin();
  if (from != std::numeric_limits<TimeMs>::min()) {
    begin = std::lower_bound(ids->begin(), ids->end(), from, [&](std::uint32_t id, TimeMs t) {
      return reads.slot(id)->start_ms < t;
    });
  }
  std::string body;
  body.reserve(static_cast<std::size_t>(ids->end() - begin) * 96 + 2);
  body += '[';
  for (auto it = begin; it != ids->end(); ++it) {
    const SlotView s = *reads.slot(*it);
    if (s.start_ms >= to) break;
    if (status && s.status != *status) continue;
    if (body.size() > 1) body += ',';
    append_slot_json(body, s);
  }
  body += ']';
  if (filtered) return call.respond(json_reply(200, std::move(body)));
  auto cached_body = std::make_shared<const CachedBody>(CachedBody{version, std::move(body)});
  // Cache only a body that shows one version: nothing changed while it was rendered.
  if (view->version() == version) view->cache(cached_body);
  std::shared_ptr<const std::string> shared(cached_body, &cached_body->body);
  call.respond(etag_reply(call, std::move(etag), std::move(shared)));
}

}  // namespace slotd
