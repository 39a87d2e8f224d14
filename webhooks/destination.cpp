#include "webhooks/destination.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cctype>
#include <charconv>
#include <cstring>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <fmt/format.h>

namespace slotd {
namespace {

bool in_v4(std::span<const std::uint8_t> a, std::uint8_t b0, std::uint8_t b1, unsigned prefix) {
  const std::uint32_t value = std::uint32_t{a[0]} << 24 | std::uint32_t{a[1]} << 16 |
                              std::uint32_t{a[2]} << 8 | a[3];
  const std::uint32_t net = std::uint32_t{b0} << 24 | std::uint32_t{b1} << 16;
  const std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
  return (value & mask) == (net & mask);
}

const char* refused_v4(std::span<const std::uint8_t> a) {
  if (a[0] == 0) return "unspecified";  // 0.0.0.0/8, "this network"
  if (a[0] == 127) return "loopback";
  if (a[0] == 10 || in_v4(a, 172, 16, 12) || in_v4(a, 192, 168, 16)) return "private";
  if (in_v4(a, 100, 64, 10)) return "private";  // shared address space (carrier NAT)
  if (in_v4(a, 169, 254, 16)) return "link-local";
  if (a[0] >= 224 && a[0] <= 239) return "multicast";
  if (a[0] >= 240) return "reserved";  // incl. 255.255.255.255
  if (a[0] == 192 && a[1] == 0 && (a[2] == 0 || a[2] == 2)) return "reserved";
  if (a[0] == 192 && a[1] == 88 && a[2] == 99) return "reserved";    // 6to4 relay anycast
  if (in_v4(a, 198, 18, 15)) return "reserved";                      // benchmarking
  if (a[0] == 198 && a[1] == 51 && a[2] == 100) return "reserved";   // documentation
  if (a[0] == 203 && a[1] == 0 && a[2] == 113) return "reserved";    // documentation
  return nullptr;
}

bool all_zero(std::span<const std::uint8_t> a) {
  for (std::uint8_t b : a) {
    if (b) return false;
  }
  return true;
}

const char* refused_v6(std::span<const std::uint8_t> a) {
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static constexpr std::uint8_t kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::memcmp(a.data(), kMapped, 12) == 0 || std::memcmp(a.data(), kNat64, 12) == 0) {
    return refused_v4(a.subspan(12, 4));  // the IPv4 address inside
  }
  if (all_zero(a.first(15))) return a[15] == 0 ? "unspecified" : a[15] == 1 ? "loopback" : "reserved";
  if (all_zero(a.first(12))) return "reserved";  // IPv4-compatible (deprecated)
  if (a[0] == 0x20 && a[1] == 0x02) return refused_v4(a.subspan(2, 4));  // 6to4
  if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && a[4] == 0 && a[5] == 1) {
    return "private";  // 64:ff9b:1::/48, local-use NAT64
  }
  if (a[0] == 0x01 && a[1] == 0x00 && all_zero(a.subspan(2, 6))) return "reserved";  // 100::/64
  if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) return "reserved";  // docs
  if (a[0] == 0x3f && a[1] == 0xff && (a[2] & 0xf0) == 0) return "reserved";  // 3fff::/20 docs
  if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) return "reserved";  // Teredo
  if ((a[0] & 0xfe) == 0xfc) return "private";                      // unique local fc00::/7
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return "link-local";   // fe80::/10
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) return "private";      // site-local fec0::/10
  if (a[0] == 0xff) return "multicast";
  return nullptr;
}

}  // namespace

const char* refused_address_kind(std::span<const std::uint8_t> address) {
  if (address.size() == 4) return refused_v4(address);
  if (address.size() == 16) return refused_v6(address);
  return "reserved";
}

std::string to_string(const IpAddress& address) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(address.v6 ? AF_INET6 : AF_INET, address.bytes.data(), text, sizeof text);
  return text;
}

std::optional<WebhookUrl> parse_webhook_url(std::string_view text, std::string& problem) {
  // Boost.URL 1.81's parse_uri aborts (an assertion in path_segments) on "scheme:" and one
  // character that cannot start a path ("http:?", "x:]"), so only text that starts with
  // http:// or https:// reaches it (found by the route_body fuzz target).
  auto starts_with = [&](std::string_view prefix) {
    if (text.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
    }
    return true;
  };
  if (!starts_with("http://") && !starts_with("https://")) {
    problem = "the url must start with http:// or https://";
    return std::nullopt;
  }
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed) {
    problem = "the url is not an absolute URL";
    return std::nullopt;
  }
  const boost::urls::url_view url = *parsed;
  WebhookUrl out;
  if (url.scheme_id() == boost::urls::scheme::https) {
    out.tls = true;
  } else if (url.scheme_id() != boost::urls::scheme::http) {
    problem = "the url must start with http:// or https://";
    return std::nullopt;
  }
  if (url.has_userinfo()) {
    problem = "the url must not carry a user name or password";
    return std::nullopt;
  }
  if (url.has_fragment()) {
    problem = "the url must not have a #fragment (it is never sent)";
    return std::nullopt;
  }
  const std::string_view host = url.encoded_host_address();
  switch (url.host_type()) {
    case boost::urls::host_type::ipv4:
    case boost::urls::host_type::ipv6: out.host_is_ip = true; break;
    case boost::urls::host_type::name: break;
    default:
      problem = "the url needs a host name or an IP address";
      return std::nullopt;
  }
  if (host.empty() || host.find('%') != std::string_view::npos) {
    problem = "the url needs a host name or an IP address (without %-escapes)";
    return std::nullopt;
  }
  for (char c : host) out.host += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (url.has_port()) {
    // The port text itself: port_number() wraps values above 65535.
    unsigned long port = 0;
    const std::string_view text = url.port();
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || port == 0 ||
        port > 65535) {
      problem = "the url's port must be from 1 to 65535";
      return std::nullopt;
    }
    out.port = static_cast<std::uint16_t>(port);
  } else {
    out.port = out.tls ? 443 : 80;
  }
  out.target = url.encoded_path().empty() ? std::string("/") : std::string(url.encoded_path());
  if (url.has_query()) {
    out.target += '?';
    out.target += url.encoded_query();
  }
  return out;
}

bool resolve_host(const std::string& host, std::vector<IpAddress>& out, std::string& error) {
  out.clear();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0) {
    error = fmt::format("cannot resolve {}: {}", host, gai_strerror(rc));
    return false;
  }
  for (addrinfo* ai = found; ai; ai = ai->ai_next) {
    IpAddress a;
    if (ai->ai_family == AF_INET) {
      std::memcpy(a.bytes.data(), &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, 4);
    } else if (ai->ai_family == AF_INET6) {
      a.v6 = true;
      std::memcpy(a.bytes.data(), &reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr, 16);
    } else {
      continue;
    }
    bool seen = false;
    for (const IpAddress& b : out) seen = seen || (b.v6 == a.v6 && b.bytes == a.bytes);
    if (!seen) out.push_back(a);
  }
  freeaddrinfo(found);
  if (out.empty()) {
    error = fmt::format("{} has no IPv4 or IPv6 address", host);
    return false;
  }
  return true;
}

std::optional<std::string> refused_destination(const std::string& host,
                                               const std::vector<IpAddress>& addresses,
                                               bool allow_private) {
  if (addresses.empty()) return fmt::format("{} has no address", host);
  if (allow_private) return std::nullopt;
  for (const IpAddress& a : addresses) {
    if (const char* kind = refused_address_kind(a.view())) {
      return fmt::format(
          "{} resolves to {}, a {} address; webhooks go to public addresses only (slotd "
          "--allow-private-webhooks lifts this for local setups)",
          host, to_string(a), kind);
    }
  }
  return std::nullopt;
}

}  // namespace slotd
