// IP networks (core/ip_network.h) and the client address behind trusted proxies: the right-most
// untrusted X-Forwarded-For entry, only when the peer is trusted; hostile headers.

#include <doctest/doctest.h>

#include "core/ip_network.h"

namespace {

std::vector<ci::IpNetwork> networks(std::initializer_list<const char*> texts) {
    std::vector<ci::IpNetwork> out;
    for (const auto* text : texts) {
        auto parsed = ci::parse_ip_network(text);
        REQUIRE(parsed.has_value());
        out.push_back(*parsed);
    }
    return out;
}

} // namespace

TEST_CASE("ip networks: parsing and membership") {
    const auto ten = ci::parse_ip_network("10.0.0.0/8");
    REQUIRE(ten.has_value());
    CHECK(ci::network_contains(*ten, "10.255.1.2"));
    CHECK_FALSE(ci::network_contains(*ten, "11.0.0.1"));
    CHECK(ci::network_contains(*ten, "::ffff:10.1.1.1")); // IPv4-mapped
    CHECK_FALSE(ci::network_contains(*ten, "fd00::1"));
    CHECK_FALSE(ci::network_contains(*ten, "10.0.0.1:80"));
    CHECK_FALSE(ci::network_contains(*ten, "not an address"));
    const auto host = ci::parse_ip_network("127.0.0.1");
    REQUIRE(host.has_value());
    CHECK(host->prefix == 32);
    CHECK(ci::network_contains(*host, "127.0.0.1"));
    CHECK_FALSE(ci::network_contains(*host, "127.0.0.2"));
    const auto odd = ci::parse_ip_network("192.168.4.0/22");
    REQUIRE(odd.has_value());
    CHECK(ci::network_contains(*odd, "192.168.7.255"));
    CHECK_FALSE(ci::network_contains(*odd, "192.168.8.0"));
    const auto v6 = ci::parse_ip_network("fd00::/8");
    REQUIRE(v6.has_value());
    CHECK(ci::network_contains(*v6, "fdab::1"));
    CHECK_FALSE(ci::network_contains(*v6, "fe80::1"));
    const auto all = ci::parse_ip_network("0.0.0.0/0");
    REQUIRE(all.has_value());
    CHECK(ci::network_contains(*all, "8.8.8.8"));

    for (const auto* bad : {"",
                            "10.0.0.0/33",
                            "10.0.0.0/",
                            "10.0.0.0/-1",
                            "10.0.0.0/8x",
                            "fd00::/129",
                            "example.org",
                            "10.0.0",
                            "1.2.3.4/08/1",
                            "10.0.0.0 /8"}) {
        CAPTURE(bad);
        const auto parsed = ci::parse_ip_network(bad);
        CHECK_FALSE(parsed.has_value());
    }
}

TEST_CASE("ip networks: the client behind trusted proxies") {
    const auto trusted = networks({"127.0.0.1", "10.0.0.0/8"});
    // An untrusted peer: its header is ignored, whatever it says.
    CHECK(ci::client_address("203.0.113.9", "198.51.100.1", trusted) == "203.0.113.9");
    // No proxies trusted: always the peer.
    CHECK(ci::client_address("127.0.0.1", "198.51.100.1", {}) == "127.0.0.1");
    // A trusted peer: the right-most entry not trusted (the client may prepend anything).
    CHECK(ci::client_address("127.0.0.1", "6.6.6.6, 198.51.100.1", trusted) == "198.51.100.1");
    CHECK(ci::client_address("127.0.0.1", "6.6.6.6, 198.51.100.1, 10.1.1.1", trusted) ==
          "198.51.100.1");
    CHECK(ci::client_address("127.0.0.1", "2001:db8::7", trusted) == "2001:db8::7");
    // Every hop trusted: the left-most.
    CHECK(ci::client_address("127.0.0.1", "10.2.2.2, 10.1.1.1", trusted) == "10.2.2.2");
    // No header: the proxy itself.
    CHECK(ci::client_address("127.0.0.1", "", trusted) == "127.0.0.1");
    // Garbage stops the walk at the proxy that passed it on, never the garbage.
    CHECK(ci::client_address("127.0.0.1", "198.51.100.1, unknown", trusted) == "127.0.0.1");
    CHECK(ci::client_address("127.0.0.1", "198.51.100.1, 1.2.3.4:5, 10.1.1.1", trusted) ==
          "10.1.1.1");
    CHECK(ci::client_address("127.0.0.1", ",,, ,", trusted) == "127.0.0.1");
    CHECK(ci::client_address("127.0.0.1", std::string(100000, ','), trusted) == "127.0.0.1");
    // One spelling per address: an IPv4-mapped entry (a dual-stack proxy writes them) is its
    // IPv4 address, not one of ::/64 that every such client would share (the hostile tester's
    // F3), and IPv6 is written as inet_ntop writes it.
    CHECK(ci::client_address("127.0.0.1", "::ffff:9.9.9.9", trusted) == "9.9.9.9");
    CHECK(ci::client_address("127.0.0.1", "::FFFF:0808:0808", trusted) == "8.8.8.8");
    CHECK(ci::client_address("127.0.0.1", "2001:DB8:0:0::7", trusted) == "2001:db8::7");
}
