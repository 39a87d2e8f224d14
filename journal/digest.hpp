// journal/digest — the fixed-size digests slotd stores instead of client-sent strings.
//
// A caller's identity becomes a 64-bit ClientId and an Idempotency-Key, scoped to its
// caller, a 128-bit KeyDigest: state and journal hold 8 or 16 bytes whatever the client
// sent. SipHash-2-4 with a fixed key: the values are journaled, so they must be the same
// in every build and on every machine (never change the key).
#pragma once

#include <string_view>

#include "engine/engine.hpp"

namespace slotd {

// 0 is "no client"; an empty identity maps to 0, every other to a non-zero value.
ClientId client_digest(std::string_view identity);

// Never all zero (all zero means "no key") for a non-empty key; empty key → all zero.
KeyDigest key_digest(std::string_view scope, std::string_view key);

}  // namespace slotd
