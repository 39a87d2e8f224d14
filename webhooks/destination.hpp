// webhooks/destination — where a webhook may be sent: the URL's form, and the addresses its
// host resolves to. Private, loopback, link-local, unspecified, multicast and reserved
// addresses (IPv4 and IPv6, including IPv4 inside IPv6) are refused unless private
// destinations are allowed, at registration and again before every delivery: the
// delivery connects only to addresses it has just checked, so a DNS answer that changes
// in between (rebinding) cannot reach an internal service. No Beast here.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace slotd {

struct WebhookUrl {
  bool tls = false;        // https
  std::string host;        // lower case; an IPv6 literal without its brackets
  bool host_is_ip = false; // an IPv4 or IPv6 literal (no DNS, no SNI)
  std::uint16_t port = 0;  // the URL's or the scheme's default
  std::string target;      // path and query as sent on the request line ("/" at least)
};

// Parses a webhook URL: http:// or https://, a host, no user name or password, no
// fragment, a port from 1 to 65535. On failure returns nullopt and says why in `problem`.
std::optional<WebhookUrl> parse_webhook_url(std::string_view url, std::string& problem);

// An IPv4 (4 bytes) or IPv6 (16 bytes) address in network order.
struct IpAddress {
  std::array<std::uint8_t, 16> bytes{};
  bool v6 = false;
  std::span<const std::uint8_t> view() const { return {bytes.data(), v6 ? 16u : 4u}; }
};

// Why an address may not receive webhooks ("loopback", "private", "link-local",
// "unspecified", "multicast", "reserved"), or nullptr for a public unicast address.
// IPv4-mapped, NAT64 and 6to4 IPv6 addresses are judged by the IPv4 address they carry.
const char* refused_address_kind(std::span<const std::uint8_t> address);

// The address as text (for messages; never a secret).
std::string to_string(const IpAddress& address);

// The addresses of `host` (blocking getaddrinfo; an IP literal needs no lookup). On
// failure returns false and says why in `error`.
bool resolve_host(const std::string& host, std::vector<IpAddress>& out, std::string& error);

// Why a set of resolved addresses is refused: empty, or any of them is not public (a
// mixed answer is refused whole), unless allow_private. nullopt = may be used.
std::optional<std::string> refused_destination(const std::string& host,
                                               const std::vector<IpAddress>& addresses,
                                               bool allow_private);

}  // namespace slotd
