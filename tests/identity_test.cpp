// api/identity: who a request comes from, with and without trusted proxies.
#include <doctest/doctest.h>

#include <string>

#include "api/identity.hpp"

using namespace slotd;

namespace {

TrustedProxies proxies(std::string_view csv) {
  std::string error;
  auto parsed = TrustedProxies::parse(csv, error);
  REQUIRE_MESSAGE(parsed, error);
  return *parsed;
}

}  // namespace

TEST_CASE("without trusted proxies the peer address is the client, whatever the headers say") {
  const TrustedProxies none;
  CHECK(client_identity("203.0.113.7", "198.51.100.1", "alice", none) == "ip:203.0.113.7");
  CHECK(client_identity("203.0.113.7", "", "", none) == client_identity("203.0.113.7", "1.2.3.4", "bob", none));
  CHECK(client_identity("203.0.113.7", "", "", none) != client_identity("203.0.113.8", "", "", none));
}

TEST_CASE("an IPv6 client is its /64: addresses of one host's prefix are one client") {
  const TrustedProxies none;
  const std::string a = client_identity("2001:db8:1:2::1", "", "", none);
  CHECK(a == "ip:2001:db8:1:2::/64");
  CHECK(client_identity("2001:db8:1:2:ffff:eeee:dddd:cccc", "", "", none) == a);
  CHECK(client_identity("2001:db8:1:3::1", "", "", none) != a);
  // an IPv4 client seen through a dual-stack socket is its IPv4 address
  CHECK(client_identity("::ffff:203.0.113.7", "", "", none) == "ip:203.0.113.7");
}

TEST_CASE("a trusted proxy names the client: X-Client-Key, else the rightmost untrusted X-Forwarded-For") {
  const TrustedProxies trusted = proxies("10.0.0.0/8, 2001:db8:ffff::/48");
  CHECK(client_identity("10.1.2.3", "198.51.100.1", "alice", trusted) == "key:alice");
  CHECK(client_identity("10.1.2.3", "6.6.6.6, 198.51.100.1, 10.9.9.9", "", trusted) == "ip:198.51.100.1");
  CHECK(client_identity("10.1.2.3", "2001:db8:5:6::7", "", trusted) == "ip:2001:db8:5:6::/64");
  CHECK(client_identity("2001:db8:ffff::1", "198.51.100.1", "", trusted) == "ip:198.51.100.1");
  // nothing forwarded: the proxy itself
  CHECK(client_identity("10.1.2.3", "", "", trusted) == "ip:10.1.2.3");
  // an untrusted peer's headers are ignored
  CHECK(client_identity("198.51.100.9", "10.1.2.3", "alice", trusted) == "ip:198.51.100.9");
  // forwarded values are cut: an identity stays small
  const std::string key(1000, 'k');
  CHECK(client_identity("10.1.2.3", "", key, trusted).size() == 4 + kMaxForwardedIdentity);
  CHECK(client_identity("10.1.2.3", std::string(1000, 'x'), "", trusted).size() == 3 + kMaxForwardedIdentity);
}

TEST_CASE("malformed --trusted-proxies entries are refused with a message") {
  for (const char* bad : {"10.0.0.0/33", "not-an-ip", "2001:db8::/129", "10.0.0.0/x", "10.0.0.0/"}) {
    std::string error;
    CHECK_FALSE_MESSAGE(TrustedProxies::parse(bad, error), bad);
    CHECK_FALSE(error.empty());
  }
}
