#include "core/ip_network.h"

#include <algorithm>
#include <charconv>

#include <arpa/inet.h>
#include <fmt/format.h>

namespace ci {

namespace {

// The bytes of `text` as an IP address (an IPv4-mapped IPv6 address as IPv4); false when it is
// not one.
bool parse_address(std::string_view text, bool& v6, std::array<unsigned char, 16>& bytes) {
    if (text.empty() || text.size() > 45) {
        return false;
    }
    const std::string copy(text);
    bytes.fill(0);
    if (copy.find(':') == std::string::npos) {
        v6 = false;
        return inet_pton(AF_INET, copy.c_str(), bytes.data()) == 1;
    }
    if (inet_pton(AF_INET6, copy.c_str(), bytes.data()) != 1) {
        return false;
    }
    static constexpr std::array<unsigned char, 12> mapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(mapped.begin(), mapped.end(), bytes.begin())) {
        std::copy(bytes.begin() + 12, bytes.end(), bytes.begin());
        std::fill(bytes.begin() + 4, bytes.end(), 0);
        v6 = false;
        return true;
    }
    v6 = true;
    return true;
}

// The text of a parsed address as inet_ntop writes it: one spelling per address, so limits keyed
// by the text cannot be dodged with another spelling, and an IPv4-mapped IPv6 address written
// by a dual-stack proxy is its IPv4 address (it was keyed by its IPv6 /64, ::/64, shared by
// every IPv4 client of that proxy).
std::string address_text(bool v6, const std::array<unsigned char, 16>& bytes) {
    std::array<char, INET6_ADDRSTRLEN> text{};
    if (inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), text.data(), text.size()) == nullptr) {
        return {};
    }
    return {text.data()};
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
        text.remove_suffix(1);
    }
    return text;
}

bool trusted_address(std::string_view address, const std::vector<IpNetwork>& trusted) {
    return std::ranges::any_of(
        trusted, [&](const IpNetwork& network) { return network_contains(network, address); });
}

} // namespace

Result<IpNetwork> parse_ip_network(std::string_view text) {
    IpNetwork out;
    const auto slash = text.find('/');
    if (!parse_address(text.substr(0, slash), out.v6, out.bytes)) {
        return fail(ErrorCode::InvalidArgument,
                    "expected an IP address or a network ADDRESS/PREFIX (\"10.0.0.0/8\")");
    }
    const int bits = out.v6 ? 128 : 32;
    out.prefix = bits;
    if (slash != std::string_view::npos) {
        const auto digits = text.substr(slash + 1);
        int prefix = -1;
        const auto [end, error] =
            std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
        if (digits.empty() || error != std::errc() || end != digits.data() + digits.size() ||
            prefix < 0 || prefix > bits) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("the prefix length after '/' must be 0 to {}", bits));
        }
        out.prefix = prefix;
    }
    return out;
}

bool network_contains(const IpNetwork& network, std::string_view address) {
    bool v6 = false;
    std::array<unsigned char, 16> bytes{};
    if (!parse_address(trim(address), v6, bytes) || v6 != network.v6) {
        return false;
    }
    const int whole = network.prefix / 8;
    for (int i = 0; i < whole; ++i) {
        if (bytes.at(static_cast<std::size_t>(i)) !=
            network.bytes.at(static_cast<std::size_t>(i))) {
            return false;
        }
    }
    const int rest = network.prefix % 8;
    if (rest == 0) {
        return true;
    }
    const auto mask = static_cast<unsigned char>(0xff << (8 - rest));
    const auto at = static_cast<std::size_t>(whole);
    return (bytes.at(at) & mask) == (network.bytes.at(at) & mask);
}

std::string client_address(const std::string& peer,
                           std::string_view forwarded,
                           const std::vector<IpNetwork>& trusted) {
    if (trusted.empty() || !trusted_address(peer, trusted)) {
        return peer;
    }
    std::string client = peer; // the last trusted hop so far
    while (!forwarded.empty()) {
        const auto comma = forwarded.rfind(',');
        const auto entry =
            trim(comma == std::string_view::npos ? forwarded : forwarded.substr(comma + 1));
        forwarded =
            comma == std::string_view::npos ? std::string_view{} : forwarded.substr(0, comma);
        if (entry.empty()) {
            continue;
        }
        bool v6 = false;
        std::array<unsigned char, 16> bytes{};
        if (!parse_address(entry, v6, bytes)) {
            return client; // not an address: the proxy that passed it on is the client
        }
        client = address_text(v6, bytes);
        if (!trusted_address(entry, trusted)) {
            return client;
        }
    }
    return client;
}

} // namespace ci
