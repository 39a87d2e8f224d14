#include "webhooks/signing.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fmt/format.h>

#include "api/json_out.hpp"

namespace slotd {

std::string hmac_sha256_hex(std::string_view key, std::string_view message) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  // One-shot HMAC: cannot fail for SHA-256 with in-memory inputs short of allocation failure.
  const unsigned char* done =
      HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &length);
  if (!done || length != 32) return {};
  std::string out;
  append_hex(out, std::span<const std::uint8_t>(digest, length));
  return out;
}

std::string webhook_secret_text(const WebhookSecret& secret) {
  std::string out;
  append_hex(out, secret);
  return out;
}

std::string webhook_signature(const WebhookSecret& secret, std::int64_t timestamp_s,
                              std::string_view body) {
  std::string message = fmt::format("{}.", timestamp_s);
  message.append(body);
  return "sha256=" + hmac_sha256_hex(webhook_secret_text(secret), message);
}

}  // namespace slotd
