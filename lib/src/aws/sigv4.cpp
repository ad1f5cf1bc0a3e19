#include "ci/aws/sigv4.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <ctime>
#include <memory>
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

// Writes the 64 hex digits of `digest` at `out`.
// Both hex digits of every byte value, so that encoding costs one lookup per byte: a signature
// encodes three digests.
constexpr std::array<std::array<char, 2>, 256> hex_pairs = [] {
    constexpr char digits[] = "0123456789abcdef";
    std::array<std::array<char, 2>, 256> pairs{};
    for (std::size_t i = 0; i < pairs.size(); ++i) {
        pairs[i] = {digits[i >> 4U], digits[i & 0x0FU]};
    }
    return pairs;
}();

void write_hex(char* out, const Digest& digest) {
    for (const std::uint8_t byte : digest) {
        std::memcpy(out, hex_pairs[byte].data(), 2);
        out += 2;
    }
}

void append_hex(std::string& out, const Digest& digest) {
    const std::size_t at = out.size();
    out.resize(at + 2 * digest.size());
    write_hex(out.data() + at, digest);
}

std::string hex(const Digest& digest) {
    std::string out;
    append_hex(out, digest);
    return out;
}

void append_lowercase(std::string& out, std::string_view text) {
    const std::size_t at = out.size();
    out.resize(at + text.size());
    char* p = out.data() + at;
    for (const char c : text) {
        *p++ = (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
    }
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Writes `value` trimmed, with every run of whitespace (folded lines included) as one space, at
// `out`; returns the end. `out` has room for value.size() characters.
char* write_canonical_value(char* out, std::string_view value) {
    // Most values need nothing done; glibc's vectorized searches tell that faster than a
    // character loop would.
    const bool plain = value.empty() || (!is_space(value.front()) && !is_space(value.back()) &&
                                         value.find("  ") == std::string_view::npos &&
                                         std::memchr(value.data(), '\t', value.size()) == nullptr &&
                                         std::memchr(value.data(), '\n', value.size()) == nullptr &&
                                         std::memchr(value.data(), '\r', value.size()) == nullptr);
    if (plain) {
        return std::copy(value.begin(), value.end(), out);
    }
    bool pending_space = false;
    bool started = false;
    for (const char c : value) {
        if (is_space(c)) {
            pending_space = started;
            continue;
        }
        if (pending_space) {
            *out++ = ' ';
            pending_space = false;
        }
        *out++ = c;
        started = true;
    }
    return out;
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

bool needs_normalizing(std::string_view path) {
    return path.find("//") != std::string_view::npos ||
           path.find("/./") != std::string_view::npos ||
           path.find("/../") != std::string_view::npos || path.ends_with("/.") ||
           path.ends_with("/..") || path == "." || path == ".." || path.front() != '/';
}

void append_canonical_path(std::string& out, std::string_view path, const SigningParams& params) {
    if (path.empty()) {
        out += '/';
        return;
    }
    std::string normalized;
    if (params.normalize_path && needs_normalizing(path)) {
        normalized = normalize(path);
        path = normalized;
    }
    if (params.double_uri_encode) {
        http::append_uri_encoded(out, path, /*keep_slash=*/true);
    } else {
        out.append(path);
    }
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

// Signing keys for (secret, date, region, service), each derived with four HMACs: a client signs
// many requests a day with the same key.
struct KeyCache {
    struct Entry {
        std::string secret;
        std::string date;
        std::string region;
        std::string service;
        std::optional<HmacSha256Key> key;
    };
    std::array<Entry, 4> entries;
    std::size_t next = 0;

    const HmacSha256Key& get(std::string_view secret,
                             std::string_view date,
                             std::string_view region,
                             std::string_view service) {
        for (const auto& entry : entries) {
            if (entry.key && entry.date == date && entry.region == region &&
                entry.service == service && entry.secret == secret) {
                return *entry.key;
            }
        }
        const std::string secret_key = "AWS4" + std::string(secret);
        const Digest k_date = HmacSha256Key(secret_key).mac(date);
        const Digest k_region = HmacSha256Key(k_date).mac(region);
        const Digest k_service = HmacSha256Key(k_region).mac(service);
        const Digest k_signing = HmacSha256Key(k_service).mac("aws4_request");
        Entry& entry = entries[next];
        next = (next + 1) % entries.size();
        entry = Entry{std::string(secret),
                      std::string(date),
                      std::string(region),
                      std::string(service),
                      HmacSha256Key(k_signing)};
        return *entry.key;
    }
};

// The X-Amz-Date of the last second formatted: requests signed in the same second share it.
struct DateCache {
    std::time_t seconds = -1;
    std::array<char, 17> text{};

    std::string_view format(std::chrono::system_clock::time_point time) {
        const std::time_t now = std::chrono::system_clock::to_time_t(time);
        if (now != seconds) {
            std::tm utc{};
            ::gmtime_r(&now, &utc);
            std::strftime(text.data(), text.size(), "%Y%m%dT%H%M%SZ", &utc);
            seconds = now;
        }
        return {text.data(), 16};
    }
};

// A header as it enters the canonical request: its lower-cased name lives in a scratch buffer.
struct CanonicalHeader {
    std::size_t name_offset;
    std::size_t name_size;
    std::string_view value;
};

// What a thread keeps between signatures: the caches above, and reused buffers (signing runs for
// every request a client sends; these are allocations it would otherwise make each time). One
// thread_local object, so that a signature costs one TLS lookup.
struct ThreadState {
    KeyCache keys;
    DateCache date;
    std::string names;
    std::vector<CanonicalHeader> headers;
    std::string signed_headers;
    std::string canonical;
    std::string to_sign;
};

ThreadState& thread_state() {
    // The owner runs the destructor at thread exit; the raw pointer is what each signature reads.
    // initial-exec makes that read one instruction instead of a __tls_get_addr call, which a
    // shared library otherwise pays on every access.
    thread_local std::unique_ptr<ThreadState> owner;
    [[gnu::tls_model("initial-exec")]] thread_local ThreadState* state = nullptr;
    if (state == nullptr) [[unlikely]] {
        owner = std::make_unique<ThreadState>();
        state = owner.get();
    }
    return *state;
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
    if (!request.body_file.empty() && params.payload_hash.empty()) {
        return fail(ErrorCode::InvalidArgument,
                    "sign request: a body streamed from a file needs its payload_hash");
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
    return std::string(thread_state().date.format(time));
}

std::string payload_sha256(std::string_view payload) {
    return hex(crypto::detail::sha256(payload));
}

namespace {

void append_scope(std::string& out, std::string_view date, const SigningParams& params) {
    out.append(date);
    out += '/';
    out.append(params.region);
    out += '/';
    out.append(params.service);
    out.append("/aws4_request");
}

std::size_t total_value_size(const std::vector<CanonicalHeader>& headers) {
    std::size_t size = 0;
    for (const auto& header : headers) {
        size += header.value.size() + 2;
    }
    return size;
}

} // namespace

Result<SigningResult>
sign(const http::Request& request, const Credentials& credentials, const SigningParams& params) {
    if (auto status = validate(request, credentials, params); !status) {
        return fail(status.error());
    }
    const bool in_query = params.location == SignatureLocation::Query;
    const bool has_token = !credentials.session_token.empty();
    ThreadState& work = thread_state();
    const std::string date_time(work.date.format(params.time));
    const std::string_view date = std::string_view(date_time).substr(0, 8);
    std::array<char, 64> computed_hash{};
    std::string_view payload_hash = params.payload_hash;
    if (payload_hash.empty()) {
        write_hex(computed_hash.data(), crypto::detail::sha256(request.body));
        payload_hash = std::string_view(computed_hash.data(), computed_hash.size());
    }

    // Rule 1 and 2: the canonical headers, lower-cased into one buffer and sorted by name; a
    // stable sort keeps repeated headers in request order.
    work.names.clear();
    work.headers.clear();
    const auto add_header = [&](std::string_view name, std::string_view value) {
        const std::size_t offset = work.names.size();
        append_lowercase(work.names, name);
        work.headers.push_back(CanonicalHeader{offset, name.size(), value});
    };
    const auto name_of = [&](const CanonicalHeader& header) {
        return std::string_view(work.names).substr(header.name_offset, header.name_size);
    };
    bool has_host = false;
    for (const auto& header : request.headers) {
        add_header(header.name, header.value);
        const std::string_view name = name_of(work.headers.back());
        if (unsigned_header(name)) {
            work.headers.pop_back();
            continue;
        }
        if (name == "authorization" || name == "x-amz-date") {
            return fail(ErrorCode::InvalidArgument,
                        "sign request: the request is already signed (Authorization or "
                        "X-Amz-Date)");
        }
        has_host = has_host || name == "host";
    }
    if (!has_host && request.host.empty()) {
        return fail(ErrorCode::InvalidArgument, "sign request: the request has no host");
    }
    if (!has_host) {
        add_header("host", request.host);
    }
    if (!in_query) {
        add_header("x-amz-date", date_time);
        if (has_token && params.sign_session_token) {
            add_header("x-amz-security-token", credentials.session_token);
        }
        if (params.add_content_sha256_header) {
            add_header("x-amz-content-sha256", payload_hash);
        }
    }
    // Insertion sort: stable, and without the temporary buffer std::stable_sort allocates; a
    // request has a handful of headers.
    for (std::size_t i = 1; i < work.headers.size(); ++i) {
        const CanonicalHeader moving = work.headers[i];
        std::size_t j = i;
        for (; j > 0 && name_of(moving) < name_of(work.headers[j - 1]); --j) {
            work.headers[j] = work.headers[j - 1];
        }
        work.headers[j] = moving;
    }

    std::string& signed_headers = work.signed_headers;
    signed_headers.clear();
    for (std::size_t i = 0; i < work.headers.size(); ++i) {
        if (i > 0 && name_of(work.headers[i]) == name_of(work.headers[i - 1])) {
            continue;
        }
        if (!signed_headers.empty()) {
            signed_headers += ';';
        }
        signed_headers.append(name_of(work.headers[i]));
    }

    SigningResult result;
    std::vector<std::string> added_query;
    if (in_query) {
        std::string credential = credentials.access_key_id + "/";
        append_scope(credential, date, params);
        added_query = {
            fmt::format("X-Amz-Algorithm={}", algorithm),
            fmt::format("X-Amz-Credential={}", http::uri_encode(credential)),
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
    std::string& canonical = work.canonical;
    canonical.clear();
    canonical.reserve(request.method.size() + 2 * request.path.size() + request.query.size() +
                      2 * work.names.size() + 2 * signed_headers.size() + payload_hash.size() +
                      total_value_size(work.headers) + 16);
    canonical.append(request.method);
    canonical += '\n';
    append_canonical_path(canonical, request.path, params);
    canonical += '\n';
    append_canonical_query(canonical, request.query, added_query);
    canonical += '\n';
    // The header lines and what follows them are written through a pointer into space made
    // once: each line would otherwise pay several capacity checks.
    const std::size_t headers_at = canonical.size();
    canonical.resize(headers_at + work.names.size() + total_value_size(work.headers) + 1 +
                     signed_headers.size() + 1 + payload_hash.size());
    char* p = canonical.data() + headers_at;
    for (std::size_t i = 0; i < work.headers.size(); ++i) {
        const std::string_view name = name_of(work.headers[i]);
        if (i > 0 && name == name_of(work.headers[i - 1])) {
            p[-1] = ','; // a repeated header continues the previous line
        } else {
            p = std::copy(name.begin(), name.end(), p);
            *p++ = ':';
        }
        p = write_canonical_value(p, work.headers[i].value);
        *p++ = '\n';
    }
    *p++ = '\n';
    p = std::copy(signed_headers.begin(), signed_headers.end(), p);
    *p++ = '\n';
    p = std::copy(payload_hash.begin(), payload_hash.end(), p);
    canonical.resize(static_cast<std::size_t>(p - canonical.data()));

    std::string& to_sign = work.to_sign;
    to_sign.clear();
    to_sign.reserve(algorithm.size() + date_time.size() + params.region.size() +
                    params.service.size() + 64 + 32);
    to_sign.append(algorithm);
    to_sign += '\n';
    to_sign.append(date_time);
    to_sign += '\n';
    append_scope(to_sign, date, params);
    to_sign += '\n';
    append_hex(to_sign, crypto::detail::sha256(canonical));

    const auto& key =
        work.keys.get(credentials.secret_access_key, date, params.region, params.service);
    result.signature = hex(key.mac(to_sign));
    if (params.include_stages) {
        result.canonical_request = canonical;
        result.string_to_sign = to_sign;
    }

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
    result.headers.reserve(4);
    if (has_token) {
        result.headers.push_back(http::Header{"X-Amz-Security-Token", credentials.session_token});
    }
    result.headers.push_back(http::Header{"X-Amz-Date", date_time});
    if (params.add_content_sha256_header) {
        result.headers.push_back(http::Header{"x-amz-content-sha256", std::string(payload_hash)});
    }
    std::string authorization;
    authorization.reserve(algorithm.size() + credentials.access_key_id.size() +
                          params.region.size() + params.service.size() + signed_headers.size() +
                          64 + 80);
    authorization.append(algorithm);
    authorization.append(" Credential=");
    authorization.append(credentials.access_key_id);
    authorization += '/';
    append_scope(authorization, date, params);
    authorization.append(", SignedHeaders=");
    authorization.append(signed_headers);
    authorization.append(", Signature=");
    authorization.append(result.signature);
    result.headers.push_back(http::Header{"Authorization", std::move(authorization)});
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
