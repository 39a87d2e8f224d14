// webhooks/signing — how a receiver knows a delivery came from slotd: an HMAC-SHA256
// (OpenSSL) of "<timestamp>.<body>" keyed with the endpoint's secret as shown at
// registration (64 hex characters, used as they are: the ASCII text is the key).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/engine.hpp"

namespace slotd {

// HMAC-SHA256(key, message) as 64 lowercase hex digits.
std::string hmac_sha256_hex(std::string_view key, std::string_view message);

// The secret as the API shows it once (api/replies.cpp writes it with the same append_hex)
// and as the signing key: 64 lowercase hex digits.
std::string webhook_secret_text(const WebhookSecret& secret);

// The X-Slotd-Signature header value: "sha256=" + HMAC-SHA256(secret text,
// "<timestamp_s>.<body>").
std::string webhook_signature(const WebhookSecret& secret, std::int64_t timestamp_s,
                              std::string_view body);

}  // namespace slotd
