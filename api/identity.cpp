#include "api/identity.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace slotd {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// IPv4 becomes IPv4-mapped IPv6 (::ffff:a.b.c.d), so one comparison covers both.
std::optional<std::array<std::uint8_t, 16>> parse_address(std::string_view text) {
  std::string s(trim(text));
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  std::array<std::uint8_t, 16> out{};
  in_addr v4{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    out[10] = out[11] = 0xff;
    std::memcpy(out.data() + 12, &v4, 4);
    return out;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(out.data(), &v6, 16);
    return out;
  }
  return std::nullopt;
}

bool is_v4_mapped(const std::array<std::uint8_t, 16>& a) {
  for (int i = 0; i < 10; ++i) {
    if (a[i]) return false;
  }
  return a[10] == 0xff && a[11] == 0xff;
}

}  // namespace

// One host of IPv6 usually has a whole /64 to pick addresses from: counting each address
// as a client would let it rotate past every per-client cap, so its /64 is the client.
std::string address_identity(std::string_view address) {
  auto a = parse_address(address);
  if (!a) return "ip:" + std::string(address.substr(0, kMaxForwardedIdentity));
  char text[INET6_ADDRSTRLEN] = {};
  if (is_v4_mapped(*a)) {
    inet_ntop(AF_INET, a->data() + 12, text, sizeof text);
    return "ip:" + std::string(text);
  }
  std::fill(a->begin() + 8, a->end(), std::uint8_t{0});
  inet_ntop(AF_INET6, a->data(), text, sizeof text);
  return "ip:" + std::string(text) + "/64";
}

std::optional<TrustedProxies> TrustedProxies::parse(std::string_view csv, std::string& error) {
  TrustedProxies proxies;
  while (!csv.empty()) {
    auto comma = csv.find(',');
    std::string_view item = trim(csv.substr(0, comma));
    csv = comma == std::string_view::npos ? std::string_view{} : csv.substr(comma + 1);
    if (item.empty()) continue;
    auto slash = item.find('/');
    auto address = parse_address(item.substr(0, slash));
    if (!address) {
      error = "not an IP address or CIDR: " + std::string(item);
      return std::nullopt;
    }
    Range range{*address, 128};
    const bool v4 = is_v4_mapped(*address) && item.substr(0, slash).find(':') == std::string_view::npos;
    if (slash != std::string_view::npos) {
      std::string_view bits = item.substr(slash + 1);
      unsigned n = 0;
      auto [p, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), n);
      if (ec != std::errc{} || p != bits.data() + bits.size() || n > (v4 ? 32u : 128u)) {
        error = "bad prefix length in " + std::string(item);
        return std::nullopt;
      }
      range.prefix_bits = v4 ? 96 + n : n;
    }
    proxies.ranges_.push_back(range);
  }
  return proxies;
}

bool TrustedProxies::contains(std::string_view address) const {
  if (ranges_.empty()) return false;
  auto a = parse_address(address);
  if (!a) return false;
  for (const Range& r : ranges_) {
    unsigned bits = r.prefix_bits;
    bool match = true;
    for (std::size_t i = 0; i < 16 && bits > 0; ++i) {
      const unsigned take = bits >= 8 ? 8 : bits;
      const auto mask = static_cast<std::uint8_t>(0xff << (8 - take));
      if (((*a)[i] & mask) != (r.bytes[i] & mask)) {
        match = false;
        break;
      }
      bits -= take;
    }
    if (match) return true;
  }
  return false;
}

std::string client_identity(std::string_view peer, std::string_view forwarded_for,
                            std::string_view client_key, const TrustedProxies& proxies) {
  if (!proxies.contains(peer)) return address_identity(peer);
  client_key = trim(client_key);
  if (!client_key.empty()) {
    return "key:" + std::string(client_key.substr(0, kMaxForwardedIdentity));
  }
  // Walk X-Forwarded-For from the right: each trusted hop vouches for the one before it.
  std::string_view list = forwarded_for;
  std::string_view candidate;
  while (!list.empty()) {
    auto comma = list.rfind(',');
    std::string_view entry = trim(comma == std::string_view::npos ? list : list.substr(comma + 1));
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(0, comma);
    if (entry.empty()) continue;
    candidate = entry;
    if (!proxies.contains(entry)) break;
  }
  if (candidate.empty()) return address_identity(peer);
  return address_identity(candidate);
}

}  // namespace slotd
