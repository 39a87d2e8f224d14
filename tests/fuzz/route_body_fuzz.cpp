// JSON bodies for each route that reads one, through Api::handle against a real sequencer
// (tests/fuzz/fuzz_world.hpp). The first byte picks the route and who is asking (admin or
// not, with or without an Idempotency-Key); the rest is the body.
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>

#include "tests/fuzz/fuzz_world.hpp"

using namespace slotd;

namespace {

struct BodyRoute {
  std::string_view method;
  std::string_view target;
};

// Every route that reads a JSON body (api/router.cpp), twice for those with an :id.
constexpr BodyRoute kBodyRoutes[] = {
    {"POST", "/doctors"},        {"POST", "/clinics"},
    {"PATCH", "/clinics/1"},     {"PATCH", "/clinics/2"},
    {"POST", "/slots"},          {"POST", "/booking"},
    {"POST", "/admin/webhooks"}, {"POST", "/admin/webhooks/1/redeliver"},
    {"POST", "/waitlist"},       {"POST", "/booking/1/reschedule"},
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  fuzz::FuzzWorld& world = fuzz::FuzzWorld::get();
  const std::uint8_t pick = data[0];
  const BodyRoute& route = kBodyRoutes[pick % std::size(kBodyRoutes)];
  HttpRequest request;
  request.method = route.method;
  request.target = route.target;
  request.body = std::string_view(reinterpret_cast<const char*>(data + 1), size - 1);
  // Bit 7 off: the admin (most routes need it); bit 6 on: an Idempotency-Key.
  if ((pick & 0x80) == 0) request.authorization = fuzz::kAdminAuthorization;
  if (pick & 0x40) request.idempotency_key = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
  world.call(request);
  world.end_input();
  return 0;
}
