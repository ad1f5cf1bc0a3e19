#include "ci/aws/sigv4.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <span>
#include <utility>

#include <fmt/format.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/sha256_state.h"

namespace ci::aws {

namespace {

using crypto::detail::Digest;
using crypto::detail::HmacSha256Key;

constexpr std::string_view algorithm = "AWS4-HMAC-SHA256";
constexpr std::chrono::seconds max_expires{7 * 24 * 3600};

constexpr std::uint64_t ones = 0x0101010101010101ULL;
constexpr std::uint64_t highs = 0x8080808080808080ULL;

// Writes the 64 hex digits of `digest` at `out`: four bytes become eight digits at a time, in
// one 64-bit register (SWAR).
void write_hex(char* out, const Digest& digest) {
#if defined(__SSE2__)
    // Sixteen bytes at a time: their nibbles interleaved high first, then '0' + n, plus 39
    // ('a' - '0' - 10) where n > 9.
    const __m128i low_nibbles = _mm_set1_epi8(0x0f);
    const __m128i nine = _mm_set1_epi8(9);
    const __m128i zero_digit = _mm_set1_epi8('0');
    const __m128i letter_gap = _mm_set1_epi8('a' - '0' - 10);
    const auto to_digits = [&](__m128i nibbles) {
        const __m128i letters = _mm_and_si128(_mm_cmpgt_epi8(nibbles, nine), letter_gap);
        return _mm_add_epi8(_mm_add_epi8(nibbles, zero_digit), letters);
    };
    for (std::size_t i = 0; i < digest.size(); i += 16) {
        const __m128i bytes =
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(digest.data() + i)); // NOLINT
        const __m128i high = _mm_and_si128(_mm_srli_epi16(bytes, 4), low_nibbles);
        const __m128i low = _mm_and_si128(bytes, low_nibbles);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i), // NOLINT
                         to_digits(_mm_unpacklo_epi8(high, low)));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i + 16), // NOLINT
                         to_digits(_mm_unpackhi_epi8(high, low)));
    }
#else
    if constexpr (std::endian::native == std::endian::little) {
        for (std::size_t i = 0; i < digest.size(); i += 4) {
            std::uint32_t bytes = 0;
            std::memcpy(&bytes, digest.data() + i, sizeof bytes);
            // Byte k to bits 16k..16k+7, then its high nibble to the low byte of the lane and
            // its low nibble to the high byte: in memory order, the two digits of byte k.
            std::uint64_t v = bytes;
            v = (v | (v << 16U)) & 0x0000FFFF0000FFFFULL;
            v = (v | (v << 8U)) & 0x00FF00FF00FF00FFULL;
            const std::uint64_t nibbles =
                ((v >> 4U) & 0x000F000F000F000FULL) | ((v & 0x000F000F000F000FULL) << 8U);
            // '0' + n, plus 39 more ('a' - '0' - 10) where n > 9.
            const std::uint64_t letters = ((nibbles + ones * 6U) >> 4U) & ones;
            const std::uint64_t digits = nibbles + ones * '0' + letters * 39U;
            std::memcpy(out, &digits, sizeof digits);
            out += sizeof digits;
        }
    } else {
        // Both hex digits of every byte value: one lookup per byte.
        static constexpr std::array<std::array<char, 2>, 256> hex_pairs = [] {
            constexpr std::string_view digits = "0123456789abcdef";
            std::array<std::array<char, 2>, 256> pairs{};
            for (std::size_t i = 0; i < pairs.size(); ++i) {
                pairs[i] = {digits[i >> 4U], digits[i & 0x0FU]};
            }
            return pairs;
        }();
        for (const std::uint8_t byte : digest) {
            std::memcpy(out, hex_pairs[byte].data(), 2);
            out += 2;
        }
    }
#endif
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

// Writes `text` lower-cased (ASCII, as core/ascii.h's ascii_lower) at `out`; returns the end.
// A measured speed trick, kept apart from ascii_lower on purpose: header names are lower-cased
// eight bytes at a time (SWAR), which halved the signer's bookkeeping with the other changes of
// its commit (bench/sigv4); sigv4_test compares the result with ascii_lower byte by byte. For
// each byte below 0x80, bit 7 of (byte + 0x80 - 'A') says >= 'A' and of (byte + 0x7f - 'Z') says
// > 'Z'; bytes from 0x80 up are left alone, as ascii_lower leaves them.
char* write_ascii_lower_swar(char* out, std::string_view text) {
    std::size_t i = 0;
    for (; i + 8 <= text.size(); i += 8) {
        std::uint64_t word = 0;
        std::memcpy(&word, text.data() + i, sizeof word);
        const std::uint64_t low7 = word & ~highs;
        const std::uint64_t upper =
            ((low7 + ones * (0x80U - 'A')) ^ (low7 + ones * (0x7fU - 'Z'))) & ~word & highs;
        word |= upper >> 2U;
        std::memcpy(out + i, &word, sizeof word);
    }
    if (i < text.size() && text.size() >= 8) {
        // The last eight bytes again, overlapping what was written: no byte-wise tail.
        return write_ascii_lower_swar(out + text.size() - 8, text.substr(text.size() - 8));
    }
    for (; i < text.size(); ++i) {
        const char c = text[i];
        const auto offset = static_cast<unsigned char>(c - 'A');
        out[i] = static_cast<char>(c | (offset < 26U ? 0x20 : 0));
    }
    return out + text.size();
}

// Copies `text` to `out` and returns the end (memcpy, which needs a non-null source even for
// nothing).
char* put(char* out, std::string_view text) {
    if (!text.empty()) {
        std::memcpy(out, text.data(), text.size());
    }
    return out + text.size();
}

// Whether some byte of `value` is below `bound` (at most 0x80). Eight bytes per step: header
// values are short, and a call per byte class (memchr) costs more than this whole scan.
bool has_byte_below(std::string_view value, unsigned bound) {
    // The classic "has less than" test on a 64-bit word.
    const auto word_has = [bound](const char* at) {
        std::uint64_t word = 0;
        std::memcpy(&word, at, sizeof word);
        return ((word - ones * bound) & ~word & highs) != 0;
    };
    if (value.size() < 8) {
        return std::ranges::any_of(
            value, [bound](char c) { return static_cast<unsigned char>(c) < bound; });
    }
    for (std::size_t i = 0; i + 8 <= value.size(); i += 8) {
        if (word_has(value.data() + i)) {
            return true;
        }
    }
    // The last eight bytes, overlapping what was seen: no byte-wise tail.
    return word_has(value.data() + value.size() - 8);
}

// Whether rule 2 changes `value`: whitespace at an end, a tab or line break, two spaces in a
// row. Single spaces inside (as in "text/plain; charset=utf-8") change nothing.
bool needs_canonicalizing(std::string_view value) {
    if (!has_byte_below(value, 0x21U)) {
        return false;
    }
    return value.front() == ' ' || value.back() == ' ' || has_byte_below(value, 0x20U) ||
           value.find("  ") != std::string_view::npos;
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Writes `value` trimmed, with every run of whitespace (folded lines included) as one space, at
// `out`; returns the end. `out` has room for value.size() characters.
char* write_canonical_value(char* out, std::string_view value) {
    if (!needs_canonicalizing(value)) {
        return put(out, value);
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

enum class HeaderKind { Signed, Unsigned, AlreadySigned, Host };

// Headers that proxies add, change or drop (signing them would break the signature in transit)
// are Unsigned; Authorization and X-Amz-Date mean the request is already signed.
HeaderKind classify(std::string_view lower_name) {
    const auto is = [&](std::string_view name) {
        return std::memcmp(lower_name.data(), name.data(), name.size()) == 0;
    };
    switch (lower_name.size()) {
    case 4:
        return is("host") ? HeaderKind::Host : HeaderKind::Signed;
    case 6:
        return is("expect") ? HeaderKind::Unsigned : HeaderKind::Signed;
    case 10:
        if (is("connection") || is("user-agent")) {
            return HeaderKind::Unsigned;
        }
        return is("x-amz-date") ? HeaderKind::AlreadySigned : HeaderKind::Signed;
    case 13:
        return is("authorization") ? HeaderKind::AlreadySigned : HeaderKind::Signed;
    case 15:
        return is("x-amzn-trace-id") ? HeaderKind::Unsigned : HeaderKind::Signed;
    case 17:
        return is("transfer-encoding") ? HeaderKind::Unsigned : HeaderKind::Signed;
    default:
        return HeaderKind::Signed;
    }
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
    if (query.empty() && extra.empty()) {
        return;
    }
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
// `key` holds the name's first eight bytes, big-endian, so that sorting compares integers and
// looks at the names only when they share those bytes.
struct CanonicalHeader {
    std::uint64_t key;
    std::uint32_t name_offset;
    std::uint32_t name_size;
    std::string_view value;
};

std::uint64_t sort_key(std::string_view lower_name) {
    std::uint64_t key = 0;
    if (lower_name.size() >= sizeof key && std::endian::native == std::endian::little) {
        std::memcpy(&key, lower_name.data(), sizeof key);
        return std::byteswap(key);
    }
    for (std::size_t i = 0; i < sizeof key; ++i) {
        key =
            (key << 8U) | (i < lower_name.size() ? static_cast<unsigned char>(lower_name[i]) : 0U);
    }
    return key;
}

// What a thread keeps between signatures: the caches above, and reused buffers (signing runs for
// every request a client sends; these are allocations it would otherwise make each time). One
// thread_local object, so that a signature costs one TLS lookup.
struct ThreadState {
    KeyCache keys;
    DateCache date;
    std::string names;
    std::vector<CanonicalHeader> headers;
    std::string signed_headers;
    std::string scope;
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

// "20150830/us-east-1/iam/aws4_request" into `out`.
void write_scope(std::string& out, std::string_view date, const SigningParams& params) {
    constexpr std::string_view terminator = "/aws4_request";
    out.resize(date.size() + 1 + params.region.size() + 1 + params.service.size() +
               terminator.size());
    char* p = put(out.data(), date);
    *p++ = '/';
    p = put(p, params.region);
    *p++ = '/';
    p = put(p, params.service);
    put(p, terminator);
}

// A string of exactly `size` characters written by `write(char*)`, which returns the end.
template <class Write> std::string make_string(std::size_t size, Write write) {
    std::string out;
    out.resize_and_overwrite(size, [&](char* data, std::size_t n) {
        [[maybe_unused]] const char* end = write(data);
        assert(end == data + n);
        return n;
    });
    return out;
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
    // A view into this thread's date cache, which nothing else changes during this call.
    const std::string_view date_time = work.date.format(params.time);
    const std::string_view date = date_time.substr(0, 8);
    std::array<char, 64> computed_hash{};
    std::string_view payload_hash = params.payload_hash;
    if (payload_hash.empty()) {
        write_hex(computed_hash.data(), crypto::detail::sha256(request.body));
        payload_hash = std::string_view(computed_hash.data(), computed_hash.size());
    }

    // Rule 1 and 2: the canonical headers, lower-cased into one buffer and sorted by name; a
    // stable sort keeps repeated headers in request order. The buffer is sized first, for the
    // request's names and the four this function may add, so that the names stay put.
    std::size_t names_size = 4 + 10 + 20 + 20; // host, x-amz-date, x-amz-security-token, ...
    for (const auto& header : request.headers) {
        names_size += header.name.size();
    }
    if (work.names.size() < names_size) {
        work.names.resize(names_size);
    }
    if (work.headers.size() < request.headers.size() + 4) {
        work.headers.resize(request.headers.size() + 4);
    }
    char* const names = work.names.data();
    std::size_t names_used = 0;
    std::size_t count = 0;
    const auto name_of = [names](const CanonicalHeader& header) {
        return std::string_view(names + header.name_offset, header.name_size);
    };
    const auto add_header = [&](std::string_view name, std::string_view value) {
        char* const at = names + names_used;
        write_ascii_lower_swar(at, name);
        const std::string_view lower(at, name.size());
        work.headers[count++] = CanonicalHeader{sort_key(lower),
                                                static_cast<std::uint32_t>(names_used),
                                                static_cast<std::uint32_t>(name.size()),
                                                value};
        names_used += name.size();
        return lower;
    };
    bool has_host = false;
    for (const auto& header : request.headers) {
        switch (classify(add_header(header.name, header.value))) {
        case HeaderKind::Unsigned:
            names_used -= header.name.size();
            --count;
            break;
        case HeaderKind::AlreadySigned:
            return fail(ErrorCode::InvalidArgument,
                        "sign request: the request is already signed (Authorization or "
                        "X-Amz-Date)");
        case HeaderKind::Host:
            has_host = true;
            break;
        case HeaderKind::Signed:
            break;
        }
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
    const std::span<CanonicalHeader> headers(work.headers.data(), count);
    const auto same_name = [&](const CanonicalHeader& a, const CanonicalHeader& b) {
        return a.key == b.key && name_of(a) == name_of(b);
    };
    // Insertion sort: stable, and without the temporary buffer std::stable_sort allocates; a
    // request has a handful of headers.
    for (std::size_t i = 1; i < headers.size(); ++i) {
        const CanonicalHeader moving = headers[i];
        const auto before = [&](const CanonicalHeader& other) {
            return moving.key != other.key ? moving.key < other.key
                                           : name_of(moving) < name_of(other);
        };
        std::size_t j = i;
        for (; j > 0 && before(headers[j - 1]); --j) {
            headers[j] = headers[j - 1];
        }
        headers[j] = moving;
    }

    std::string& signed_headers = work.signed_headers;
    signed_headers.resize(names_used + headers.size());
    std::size_t values_size = 0;
    {
        char* p = signed_headers.data();
        for (std::size_t i = 0; i < headers.size(); ++i) {
            values_size += headers[i].value.size() + 2;
            if (i > 0 && same_name(headers[i], headers[i - 1])) {
                continue;
            }
            if (i > 0) {
                *p++ = ';';
            }
            p = put(p, name_of(headers[i]));
        }
        signed_headers.resize(static_cast<std::size_t>(p - signed_headers.data()));
    }
    std::string& scope = work.scope;
    write_scope(scope, date, params);

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
    std::string& canonical = work.canonical;
    canonical.clear();
    canonical.reserve(request.method.size() + 2 * request.path.size() + request.query.size() +
                      2 * names_used + 2 * signed_headers.size() + payload_hash.size() +
                      values_size + 16);
    canonical.append(request.method);
    canonical += '\n';
    append_canonical_path(canonical, request.path, params);
    canonical += '\n';
    append_canonical_query(canonical, request.query, added_query);
    canonical += '\n';
    // The header lines and what follows them are written through a pointer into space made
    // once: each line would otherwise pay several capacity checks.
    const std::size_t headers_at = canonical.size();
    canonical.resize(headers_at + names_used + values_size + 1 + signed_headers.size() + 1 +
                     payload_hash.size());
    char* p = canonical.data() + headers_at;
    for (std::size_t i = 0; i < headers.size(); ++i) {
        if (i > 0 && same_name(headers[i], headers[i - 1])) {
            p[-1] = ','; // a repeated header continues the previous line
        } else {
            p = put(p, name_of(headers[i]));
            *p++ = ':';
        }
        p = write_canonical_value(p, headers[i].value);
        *p++ = '\n';
    }
    *p++ = '\n';
    p = put(p, signed_headers);
    *p++ = '\n';
    p = put(p, payload_hash);
    canonical.resize(static_cast<std::size_t>(p - canonical.data()));

    std::string& to_sign = work.to_sign;
    to_sign.resize(algorithm.size() + 1 + date_time.size() + 1 + scope.size() + 1 + 64);
    p = put(to_sign.data(), algorithm);
    *p++ = '\n';
    p = put(p, date_time);
    *p++ = '\n';
    p = put(p, scope);
    *p++ = '\n';
    write_hex(p, crypto::detail::sha256(canonical));

    const auto& key =
        work.keys.get(credentials.secret_access_key, date, params.region, params.service);
    const Digest signature = key.mac(to_sign);
    result.signature = make_string(64, [&](char* out) {
        write_hex(out, signature);
        return out + 64;
    });
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
    result.headers.reserve(2 + (has_token ? 1 : 0) + (params.add_content_sha256_header ? 1 : 0));
    if (has_token) {
        result.headers.push_back(http::Header{"X-Amz-Security-Token", credentials.session_token});
    }
    result.headers.push_back(http::Header{"X-Amz-Date", std::string(date_time)});
    if (params.add_content_sha256_header) {
        result.headers.push_back(http::Header{"x-amz-content-sha256", std::string(payload_hash)});
    }
    constexpr std::string_view credential_label = " Credential=";
    constexpr std::string_view signed_headers_label = ", SignedHeaders=";
    constexpr std::string_view signature_label = ", Signature=";
    const std::size_t authorization_size = algorithm.size() + credential_label.size() +
                                           credentials.access_key_id.size() + 1 + scope.size() +
                                           signed_headers_label.size() + signed_headers.size() +
                                           signature_label.size() + result.signature.size();
    result.headers.push_back(
        http::Header{"Authorization", make_string(authorization_size, [&](char* out) {
                         out = put(out, algorithm);
                         out = put(out, credential_label);
                         out = put(out, credentials.access_key_id);
                         *out++ = '/';
                         out = put(out, scope);
                         out = put(out, signed_headers_label);
                         out = put(out, signed_headers);
                         out = put(out, signature_label);
                         return put(out, result.signature);
                     })});
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
