#include "ci/aws/sigv4.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "core/sha256_state.h"

namespace ci::aws {

namespace {

using crypto::detail::Digest;
using crypto::detail::HmacSha256Key;

constexpr std::string_view algorithm = "AWS4-HMAC-SHA256";
constexpr std::chrono::seconds max_expires{7 * 24 * 3600};

void append_hex(std::string& out, const Digest& digest) {
    static constexpr char digits[] = "0123456789abcdef";
    for (const std::uint8_t byte : digest) {
        out += digits[byte >> 4U];
        out += digits[byte & 0x0FU];
    }
}

std::string hex(const Digest& digest) {
    std::string out;
    out.reserve(64);
    append_hex(out, digest);
    return out;
}

std::string lowercase(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Trimmed, with every run of whitespace (folded lines included) as one space.
void append_canonical_value(std::string& out, std::string_view value) {
    bool pending_space = false;
    bool started = false;
    for (const char c : value) {
        if (is_space(c)) {
            pending_space = started;
            continue;
        }
        if (pending_space) {
            out += ' ';
            pending_space = false;
        }
        out += c;
        started = true;
    }
}

// Headers that proxies add, change or drop: signing them would break the signature in transit.
bool unsigned_header(std::string_view lower_name) {
    return lower_name == "connection" || lower_name == "expect" ||
           lower_name == "transfer-encoding" || lower_name == "user-agent" ||
           lower_name == "x-amzn-trace-id";
}

// RFC 3986 section 5.2.4 dot-segment removal, plus collapsing repeated slashes, as the AWS SDKs
// normalize paths for every service but S3. A trailing slash is kept.
std::string normalize(std::string_view path) {
    std::vector<std::string_view> segments;
    std::size_t start = 0;
    while (start <= path.size()) {
        const std::size_t end = std::min(path.find('/', start), path.size());
        const std::string_view segment = path.substr(start, end - start);
        if (segment == "..") {
            if (!segments.empty()) {
                segments.pop_back();
            }
        } else if (!segment.empty() && segment != ".") {
            segments.push_back(segment);
        }
        start = end + 1;
    }
    std::string out;
    for (const auto segment : segments) {
        out += '/';
        out += segment;
    }
    const bool trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    if (out.empty() || trailing) {
        out += '/';
    }
    return out;
}

std::string canonical_path(std::string_view path, const SigningParams& params) {
    if (path.empty()) {
        return "/";
    }
    std::string out = params.normalize_path ? normalize(path) : std::string(path);
    if (params.double_uri_encode) {
        out = http::uri_encode(out, /*keep_slash=*/true);
    }
    return out;
}

// Each "name=value" of the query, decoded and strictly re-encoded, plus `extra` (already
// encoded), sorted by name then value.
void append_canonical_query(std::string& out,
                            std::string_view query,
                            const std::vector<std::string>& extra) {
    std::vector<std::pair<std::string, std::string>> parameters;
    std::size_t start = 0;
    while (start < query.size()) {
        const std::size_t end = std::min(query.find('&', start), query.size());
        const std::string_view pair = query.substr(start, end - start);
        start = end + 1;
        if (pair.empty()) {
            continue;
        }
        const std::size_t equals = pair.find('=');
        const std::string_view name = pair.substr(0, equals);
        const std::string_view value =
            equals == std::string_view::npos ? std::string_view() : pair.substr(equals + 1);
        parameters.emplace_back(http::uri_encode(http::uri_decode(name)),
                                http::uri_encode(http::uri_decode(value)));
    }
    for (const auto& parameter : extra) {
        const std::size_t equals = parameter.find('=');
        parameters.emplace_back(parameter.substr(0, equals), parameter.substr(equals + 1));
    }
    std::ranges::sort(parameters);
    bool first = true;
    for (const auto& [name, value] : parameters) {
        if (!first) {
            out += '&';
        }
        first = false;
        out += name;
        out += '=';
        out += value;
    }
}

// The signing key for (secret, date, region, service), derived with four HMACs, kept per thread:
// a client signs many requests a day with the same key.
const HmacSha256Key& signing_key(std::string_view secret,
                                 std::string_view date,
                                 std::string_view region,
                                 std::string_view service) {
    struct Entry {
        std::string secret;
        std::string date;
        std::string region;
        std::string service;
        std::optional<HmacSha256Key> key;
    };
    thread_local std::array<Entry, 4> cache;
    thread_local std::size_t next = 0;
    for (const auto& entry : cache) {
        if (entry.key && entry.date == date && entry.region == region && entry.service == service &&
            entry.secret == secret) {
            return *entry.key;
        }
    }
    const std::string secret_key = "AWS4" + std::string(secret);
    const Digest k_date = HmacSha256Key(secret_key).mac(date);
    const Digest k_region = HmacSha256Key(k_date).mac(region);
    const Digest k_service = HmacSha256Key(k_region).mac(service);
    const Digest k_signing = HmacSha256Key(k_service).mac("aws4_request");
    Entry& entry = cache[next];
    next = (next + 1) % cache.size();
    entry = Entry{std::string(secret),
                  std::string(date),
                  std::string(region),
                  std::string(service),
                  HmacSha256Key(k_signing)};
    return *entry.key;
}

Status validate(const http::Request& request,
                const Credentials& credentials,
                const SigningParams& params) {
    if (credentials.access_key_id.empty() || credentials.secret_access_key.empty()) {
        return fail(ErrorCode::InvalidArgument,
                    "sign request: the credentials have no access key id or secret key");
    }
    if (params.region.empty() || params.service.empty()) {
        return fail(ErrorCode::InvalidArgument, "sign request: region and service are required");
    }
    if (request.host.empty() && http::find_header(request.headers, "host") == nullptr) {
        return fail(ErrorCode::InvalidArgument, "sign request: the request has no host");
    }
    if (http::find_header(request.headers, "authorization") != nullptr ||
        http::find_header(request.headers, "x-amz-date") != nullptr) {
        return fail(ErrorCode::InvalidArgument,
                    "sign request: the request is already signed (Authorization or X-Amz-Date)");
    }
    if (params.location == SignatureLocation::Query &&
        (params.expires.count() < 1 || params.expires > max_expires)) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("sign request: expires must be from 1 to {} seconds, got {}",
                                max_expires.count(),
                                params.expires.count()));
    }
    return {};
}

} // namespace

std::string amz_date(std::chrono::system_clock::time_point time) {
    const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
    std::tm utc{};
    ::gmtime_r(&seconds, &utc);
    std::array<char, 20> buffer{};
    const std::size_t length = std::strftime(buffer.data(), buffer.size(), "%Y%m%dT%H%M%SZ", &utc);
    return {buffer.data(), length};
}

std::string payload_sha256(std::string_view payload) {
    return hex(crypto::detail::sha256(payload));
}

Result<SigningResult>
sign(const http::Request& request, const Credentials& credentials, const SigningParams& params) {
    if (auto status = validate(request, credentials, params); !status) {
        return fail(status.error());
    }
    const bool in_query = params.location == SignatureLocation::Query;
    const bool has_token = !credentials.session_token.empty();
    const std::string date_time = amz_date(params.time);
    const std::string_view date = std::string_view(date_time).substr(0, 8);
    const std::string scope =
        fmt::format("{}/{}/{}/aws4_request", date, params.region, params.service);
    const std::string payload_hash =
        params.payload_hash.empty() ? payload_sha256(request.body) : params.payload_hash;

    // Rule 1 and 2: the canonical headers.
    std::vector<std::pair<std::string, std::string_view>> headers;
    headers.reserve(request.headers.size() + 4);
    bool has_host = false;
    for (const auto& header : request.headers) {
        std::string name = lowercase(header.name);
        if (unsigned_header(name)) {
            continue;
        }
        has_host = has_host || name == "host";
        headers.emplace_back(std::move(name), header.value);
    }
    if (!has_host) {
        headers.emplace_back("host", request.host);
    }
    if (!in_query) {
        headers.emplace_back("x-amz-date", date_time);
        if (has_token && params.sign_session_token) {
            headers.emplace_back("x-amz-security-token", credentials.session_token);
        }
        if (params.add_content_sha256_header) {
            headers.emplace_back("x-amz-content-sha256", payload_hash);
        }
    }
    std::ranges::stable_sort(headers, {}, &std::pair<std::string, std::string_view>::first);

    std::string canonical_headers;
    std::string signed_headers;
    canonical_headers.reserve(256);
    for (std::size_t i = 0; i < headers.size(); ++i) {
        const bool repeated = i > 0 && headers[i].first == headers[i - 1].first;
        if (repeated) {
            canonical_headers.back() = ','; // replaces the previous line's '\n'
        } else {
            if (!signed_headers.empty()) {
                signed_headers += ';';
            }
            signed_headers += headers[i].first;
            canonical_headers += headers[i].first;
            canonical_headers += ':';
        }
        append_canonical_value(canonical_headers, headers[i].second);
        canonical_headers += '\n';
    }

    SigningResult result;
    std::vector<std::string> added_query;
    if (in_query) {
        added_query = {
            fmt::format("X-Amz-Algorithm={}", algorithm),
            fmt::format("X-Amz-Credential={}",
                        http::uri_encode(credentials.access_key_id + "/" + scope)),
            fmt::format("X-Amz-Date={}", date_time),
            fmt::format("X-Amz-SignedHeaders={}", http::uri_encode(signed_headers)),
            fmt::format("X-Amz-Expires={}", params.expires.count()),
        };
        if (has_token && params.sign_session_token) {
            added_query.push_back(fmt::format("X-Amz-Security-Token={}",
                                              http::uri_encode(credentials.session_token)));
        }
    }

    // Rule 3 and 4: the canonical request.
    std::string& canonical = result.canonical_request;
    canonical.reserve(request.method.size() + request.path.size() + request.query.size() +
                      canonical_headers.size() + signed_headers.size() + 128);
    canonical += request.method;
    canonical += '\n';
    canonical += canonical_path(request.path, params);
    canonical += '\n';
    append_canonical_query(canonical, request.query, added_query);
    canonical += '\n';
    canonical += canonical_headers;
    canonical += '\n';
    canonical += signed_headers;
    canonical += '\n';
    canonical += payload_hash;

    std::string& to_sign = result.string_to_sign;
    to_sign.reserve(algorithm.size() + date_time.size() + scope.size() + 64 + 3);
    to_sign += algorithm;
    to_sign += '\n';
    to_sign += date_time;
    to_sign += '\n';
    to_sign += scope;
    to_sign += '\n';
    append_hex(to_sign, crypto::detail::sha256(canonical));

    const auto& key =
        signing_key(credentials.secret_access_key, date, params.region, params.service);
    result.signature = hex(key.mac(to_sign));

    if (in_query) {
        if (has_token && !params.sign_session_token) {
            added_query.push_back(fmt::format("X-Amz-Security-Token={}",
                                              http::uri_encode(credentials.session_token)));
        }
        // In the order the AWS SDKs write them: the token last but one, the signature last.
        result.query_parameters = std::move(added_query);
        result.query_parameters.push_back(fmt::format("X-Amz-Signature={}", result.signature));
        return result;
    }
    if (has_token) {
        result.headers.push_back(http::Header{"X-Amz-Security-Token", credentials.session_token});
    }
    result.headers.push_back(http::Header{"X-Amz-Date", date_time});
    if (params.add_content_sha256_header) {
        result.headers.push_back(http::Header{"x-amz-content-sha256", payload_hash});
    }
    result.headers.push_back(
        http::Header{"Authorization",
                     fmt::format("{} Credential={}/{}, SignedHeaders={}, Signature={}",
                                 algorithm,
                                 credentials.access_key_id,
                                 scope,
                                 signed_headers,
                                 result.signature)});
    return result;
}

http::Request apply(http::Request request, const SigningResult& result) {
    for (const auto& header : result.headers) {
        request.headers.push_back(header);
    }
    for (const auto& parameter : result.query_parameters) {
        if (!request.query.empty()) {
            request.query += '&';
        }
        request.query += parameter;
    }
    return request;
}

} // namespace ci::aws
