// api/auth — who may do what: the admin bearer token, booking tokens (the capability to
// see patient data and to confirm or cancel), and random secrets.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "engine/engine.hpp"

namespace slotd {

// True when `authorization` is "Bearer <admin_token>" (scheme case-insensitive), compared
// in constant time. An empty admin token matches nothing.
bool is_admin(std::string_view authorization, std::string_view admin_token);

// Tokens are written as 32 lowercase hex digits; only that exact spelling is accepted.
std::optional<Token> token_from_hex(std::string_view hex);
bool token_matches(const std::optional<Token>& presented, const Token& actual);
Token random_token();
WebhookSecret random_webhook_secret();
std::string random_hex(std::size_t bytes);

// Compares secrets in time independent of where they differ.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace slotd
