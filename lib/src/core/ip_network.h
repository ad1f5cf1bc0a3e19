#pragma once

// IP networks as a config names them ("10.0.0.0/8", "127.0.0.1", "fd00::/8"), and the client
// address of a request that came through trusted reverse proxies (X-Forwarded-For).

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include <ci/core/error.h>

namespace ci {

/// An IPv4 or IPv6 network: an address and a prefix length.
struct IpNetwork {
    bool v6 = false;
    std::array<unsigned char, 16> bytes{}; ///< IPv4: the first 4
    int prefix = 0;                        ///< 0..32 (IPv4) or 0..128 (IPv6)
};

/// "ADDRESS" (one host) or "ADDRESS/PREFIX". Fails with InvalidArgument saying what is wrong.
/// Bits of ADDRESS beyond PREFIX are ignored ("10.1.2.3/8" is 10.0.0.0/8).
[[nodiscard]] Result<IpNetwork> parse_ip_network(std::string_view text);

/// Whether the IP address `address` (text) is in `network`; false when it is not an address.
/// An IPv4-mapped IPv6 address ("::ffff:10.0.0.1") counts as its IPv4 address.
[[nodiscard]] bool network_contains(const IpNetwork& network, std::string_view address);

/// The client of a request from `peer` with the X-Forwarded-For header `forwarded` (its fields
/// joined by ", " when it came several times): `peer` unless it is in `trusted`; then the
/// right-most address of `forwarded` that is not in `trusted` (each proxy appends the address
/// it got the request from, so that one is the first that no trusted proxy vouches for), or the
/// left-most when all are trusted. An entry that is not an IP address ends the walk: the
/// client is then the trusted hop right of it (the proxy that passed it on), never the entry.
/// An address from `forwarded` is returned as inet_ntop writes it, an IPv4-mapped IPv6 address
/// ("::ffff:10.0.0.1") as its IPv4 address.
[[nodiscard]] std::string client_address(const std::string& peer,
                                         std::string_view forwarded,
                                         const std::vector<IpNetwork>& trusted);

} // namespace ci
