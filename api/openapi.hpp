// api/openapi — the OpenAPI 3.1 document of every route (api/openapi.json, embedded at
// build time). tests/ check that it and the route table list the same routes.
#pragma once

#include <string_view>

namespace slotd {

std::string_view openapi_document();

}  // namespace slotd
