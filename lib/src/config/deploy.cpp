// `deploy.target` and `deploy.runtime` as values: shared by the schema (which reports a bad
// target with its position) and ci-deploy (which connects to it).

#include <algorithm>
#include <charconv>
#include <optional>

#include <fmt/format.h>

#include <ci/config/config.h>

namespace ci::config {

namespace {

bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

// A user or a host name: not empty, not an ssh option, only the characters ssh and a shell
// take as they are.
bool is_plain_name(std::string_view text, bool allow_underscore) {
    if (text.empty() || text.front() == '-' || text.size() > 253) {
        return false;
    }
    return std::ranges::all_of(
        text, [&](char c) { return is_name_char(c) && (c != '_' || allow_underscore); });
}

bool is_ipv6_literal(std::string_view text) {
    if (text.size() < 3) {
        return false;
    }
    for (const char c : text) {
        const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (!hex && c != ':' && c != '.') {
            return false;
        }
    }
    return text.find(':') != std::string_view::npos;
}

} // namespace

Result<DeployTarget> parse_deploy_target(std::string_view text, std::string_view default_host) {
    if (text == "local") {
        return DeployTarget{.local = true, .user = {}, .host = {}, .port = 0};
    }
    std::string owned;
    if (text.empty()) {
        owned = fmt::format("ssh://root@{}", default_host);
        text = owned;
    }
    constexpr std::string_view scheme = "ssh://";
    const auto bad = [&](std::string_view why) {
        return fail(
            ErrorCode::InvalidArgument,
            fmt::format(
                R"(expected "local" or an ssh:// URL naming USER@HOST[:PORT], got "{}": {})",
                text,
                why));
    };
    if (!text.starts_with(scheme)) {
        return bad("not an ssh:// URL");
    }
    std::string_view rest = text.substr(scheme.size());
    if (!rest.empty() && rest.back() == '/') {
        rest.remove_suffix(1);
    }
    const auto at = rest.find('@');
    if (at == std::string_view::npos) {
        return bad("no USER@ (say which login ssh uses)");
    }
    DeployTarget target;
    target.user = std::string(rest.substr(0, at));
    if (!is_plain_name(target.user, true)) {
        return bad("the user must be letters, digits, '.', '_' or '-', not starting with '-'");
    }
    std::string_view host_port = rest.substr(at + 1);
    std::optional<std::string_view> port_text;
    if (host_port.starts_with('[')) {
        const auto close = host_port.find(']');
        if (close == std::string_view::npos) {
            return bad("an IPv6 address needs its closing ']'");
        }
        const std::string_view literal = host_port.substr(1, close - 1);
        if (!is_ipv6_literal(literal)) {
            return bad("not an IPv6 address between '[' and ']'");
        }
        target.host = std::string(literal);
        host_port.remove_prefix(close + 1);
        if (!host_port.empty()) {
            if (host_port.front() != ':') {
                return bad("expected :PORT after the address");
            }
            port_text = host_port.substr(1);
        }
    } else {
        const auto colon = host_port.find(':');
        target.host = std::string(host_port.substr(0, colon));
        if (colon != std::string_view::npos) {
            port_text = host_port.substr(colon + 1);
        }
        if (!is_plain_name(target.host, false)) {
            return bad("the host must be a name or an address (letters, digits, '.' and '-', not "
                       "starting with '-')");
        }
    }
    if (port_text) {
        unsigned port = 0;
        const auto* end = port_text->data() + port_text->size();
        const auto [ptr, ec] = std::from_chars(port_text->data(), end, port);
        if (port_text->empty() || ec != std::errc{} || ptr != end || port == 0 || port > 65535) {
            return bad("the port must be a number from 1 to 65535");
        }
        target.port = static_cast<std::uint16_t>(port);
    }
    return target;
}

std::string_view to_string(Deploy::Runtime runtime) {
    switch (runtime) {
    case Deploy::Runtime::Docker:
        return "docker";
    case Deploy::Runtime::Podman:
        return "podman";
    case Deploy::Runtime::Process:
        return "process";
    }
    return "docker";
}

} // namespace ci::config
