// api/identity — who a request comes from, for hold caps, rate limits, feed connection
// caps and the scope of Idempotency-Keys.
//
// The identity is the peer's address (for IPv6: its /64, which one host can fill with
// addresses of its own). Only when the peer is a trusted proxy (a CIDR in
// --trusted-proxies; none by default) does slotd believe what it forwards: X-Client-Key
// if set, else the rightmost X-Forwarded-For address that is not itself a trusted proxy.
// A client cannot pick its own identity by sending those headers directly.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace slotd {

// Forwarded values longer than this are cut: an identity is at most this many bytes
// plus a short prefix (state stores only its 8-byte digest).
inline constexpr std::size_t kMaxForwardedIdentity = 128;

class TrustedProxies {
 public:
  // "10.0.0.0/8,192.168.1.7,::1/128"; an empty string trusts nobody. nullopt + error on
  // a malformed entry.
  static std::optional<TrustedProxies> parse(std::string_view csv, std::string& error);
  bool empty() const { return ranges_.empty(); }
  bool contains(std::string_view address) const;

 private:
  struct Range {
    std::array<std::uint8_t, 16> bytes{};  // IPv4 as IPv4-mapped IPv6
    unsigned prefix_bits = 0;               // of the 128
  };
  std::vector<Range> ranges_;
};

// "ip:<IPv4 address>" or "ip:<IPv6 /64 prefix>/64" for an address (anything else that a
// proxy forwards: "ip:<text>", cut to kMaxForwardedIdentity).
std::string address_identity(std::string_view address);

// The peer's address identity or, from a trusted proxy, "key:<X-Client-Key>" / the
// address identity of the forwarded client.
std::string client_identity(std::string_view peer, std::string_view forwarded_for,
                            std::string_view client_key, const TrustedProxies& proxies);

}  // namespace slotd
