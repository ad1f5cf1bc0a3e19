// The AWS SigV4 test suite (aws-c-auth's v4 cases, tests/data/aws-sigv4-test-suite): every case,
// header and query forms, each stage asserted on its own (canonical request, string to sign,
// signature, signed request).

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <ci/aws/sigv4.h>
#include <ci/http/message.h>

#include "core/ascii.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"

namespace {

std::filesystem::path suite_dir() {
    const char* dir = std::getenv("LIBCI_SOURCE_DIR");
    REQUIRE_MESSAGE(dir != nullptr, "LIBCI_SOURCE_DIR is not set (run through meson test)");
    return std::filesystem::path(dir) / "tests/data/aws-sigv4-test-suite";
}

std::vector<std::filesystem::path> cases() {
    std::vector<std::filesystem::path> out;
    for (const auto& entry : std::filesystem::directory_iterator(suite_dir())) {
        if (entry.is_directory()) {
            out.push_back(entry.path());
        }
    }
    std::ranges::sort(out);
    return out;
}

struct Case {
    ci::http::Request request;
    ci::aws::Credentials credentials;
    ci::aws::SigningParams params;
};

std::chrono::system_clock::time_point parse_time(const std::string& text) {
    std::tm tm{};
    REQUIRE(::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm) != nullptr);
    return std::chrono::system_clock::from_time_t(::timegm(&tm));
}

Case load_case(const std::filesystem::path& dir) {
    rapidjson::Document context;
    const std::string json = ci::test::read_file(dir / "context.json");
    context.Parse(json.c_str());
    REQUIRE_FALSE(context.HasParseError());
    Case out;
    const auto& credentials = context["credentials"];
    out.credentials.access_key_id = credentials["access_key_id"].GetString();
    out.credentials.secret_access_key = credentials["secret_access_key"].GetString();
    if (credentials.HasMember("token")) {
        out.credentials.session_token = credentials["token"].GetString();
    }
    out.params.region = context["region"].GetString();
    out.params.service = context["service"].GetString();
    out.params.time = parse_time(context["timestamp"].GetString());
    out.params.normalize_path = context["normalize"].GetBool();
    out.params.add_content_sha256_header = context["sign_body"].GetBool();
    out.params.expires = std::chrono::seconds(context["expiration_in_seconds"].GetInt());
    if (context.HasMember("omit_session_token")) {
        out.params.sign_session_token = !context["omit_session_token"].GetBool();
    }
    auto request = ci::http::parse_request_message(ci::test::read_file(dir / "request.txt"));
    REQUIRE_OK(request);
    out.request = std::move(*request);
    return out;
}

void check_case(const std::filesystem::path& dir, ci::aws::SignatureLocation location) {
    const std::string form = location == ci::aws::SignatureLocation::Headers ? "header-" : "query-";
    Case test = load_case(dir);
    test.params.location = location;
    test.params.include_stages = true;
    auto signed_ = ci::aws::sign(test.request, test.credentials, test.params);
    REQUIRE_OK(signed_);
    CHECK(signed_->canonical_request ==
          ci::test::read_file(dir / (form + "canonical-request.txt")));
    CHECK(signed_->string_to_sign == ci::test::read_file(dir / (form + "string-to-sign.txt")));
    CHECK(signed_->signature == ci::test::read_file(dir / (form + "signature.txt")));
    const auto applied = ci::aws::apply(test.request, *signed_);
    CHECK(ci::http::format_request_message(applied) ==
          ci::test::read_file(dir / (form + "signed-request.txt")));
}

} // namespace

TEST_CASE("sigv4: every case of the suite, header form") {
    const auto all = cases();
    REQUIRE(all.size() >= 38);
    for (const auto& dir : all) {
        CAPTURE(dir.filename().string());
        check_case(dir, ci::aws::SignatureLocation::Headers);
    }
}

TEST_CASE("sigv4: every case of the suite, query form (presigned)") {
    for (const auto& dir : cases()) {
        CAPTURE(dir.filename().string());
        check_case(dir, ci::aws::SignatureLocation::Query);
    }
}

TEST_CASE("sigv4: the signature depends on every input") {
    Case base = load_case(suite_dir() / "get-vanilla");
    const auto signature = [](const Case& c) {
        auto result = ci::aws::sign(c.request, c.credentials, c.params);
        REQUIRE_OK(result);
        return result->signature;
    };
    const std::string original = signature(base);
    Case changed = base;
    changed.credentials.secret_access_key += "x";
    CHECK(signature(changed) != original);
    changed = base;
    changed.params.region = "us-west-2";
    CHECK(signature(changed) != original);
    changed = base;
    changed.params.time += std::chrono::seconds(1);
    CHECK(signature(changed) != original);
    changed = base;
    changed.request.path = "/other";
    CHECK(signature(changed) != original);
    changed = base;
    changed.params.payload_hash = "UNSIGNED-PAYLOAD";
    CHECK(signature(changed) != original);
    // The key cache never returns another secret's key, even on the same day and scope.
    CHECK(signature(base) == original);
}

TEST_CASE("sigv4: S3 mode keeps the path as sent") {
    Case test = load_case(suite_dir() / "get-vanilla");
    test.request.path = "/bucket/a%20b/../c//d";
    test.params.normalize_path = false;
    test.params.double_uri_encode = false;
    test.params.payload_hash = "UNSIGNED-PAYLOAD";
    test.params.add_content_sha256_header = true;
    test.params.include_stages = true;
    auto result = ci::aws::sign(test.request, test.credentials, test.params);
    REQUIRE_OK(result);
    CHECK(result->canonical_request.starts_with("GET\n/bucket/a%20b/../c//d\n\n"));
    CHECK(result->canonical_request.ends_with("\nUNSIGNED-PAYLOAD"));
    CHECK(result->canonical_request.find("x-amz-content-sha256:UNSIGNED-PAYLOAD\n") !=
          std::string::npos);
}

// The canonical header block written the plain way: each name lower-cased byte by byte
// (ci::ascii_lower), each value trimmed with its whitespace runs as one space, stably sorted by
// name, repeated names joined with ','. The signer does the same eight bytes at a time.
namespace {
std::string reference_header_block(const ci::http::Headers& headers) {
    std::vector<std::pair<std::string, std::string>> lines;
    for (const auto& header : headers) {
        const std::string name = ci::ascii_lower(header.name);
        std::string value;
        bool space = false;
        for (const char c : header.value) {
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                space = !value.empty();
                continue;
            }
            if (space) {
                value += ' ';
                space = false;
            }
            value += c;
        }
        lines.emplace_back(name, value);
    }
    std::ranges::stable_sort(lines, {}, &std::pair<std::string, std::string>::first);
    std::string out;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (i > 0 && lines[i].first == lines[i - 1].first) {
            out.back() = ',';
        } else {
            out += lines[i].first + ":";
        }
        out += lines[i].second + "\n";
    }
    return out;
}
} // namespace

TEST_CASE("sigv4: canonical headers of every length and byte class") {
    // Names around the bounds of A-Z ('@', '[', '`', '{'), bytes above 0x7f, names sharing their
    // first eight bytes, lengths below, at and above eight; values with spaces, tabs and line
    // breaks at the ends and inside, and of lengths around eight.
    ci::http::Request request;
    request.method = "GET";
    request.path = "/";
    request.host = "example.amazonaws.com";
    request.headers = {
        {"X-Amz-Meta-ABCDEFGHIJKLMNOPQRSTUVWXYZ", "v"},
        {"X-AMZ-META-@[`{", "  a  b\tc  "},
        {"x-amz-meta-\xc3\x84\xc3\xa4Z", "12345678"},
        {"X-Amz-Meta-Same-Prefix-B", "1234567 "},
        {"X-Amz-Meta-Same-Prefix-A", " 1234567"},
        {"X-Amz-Meta-Same-Prefix-A", "second\r\n  folded"},
        {"A", "x"},
        {"ZZ", "\t"},
        {"Abcdefgh", "1234567\t9"},
        {"X-Tail-Space", "123456789 "},
        {"X-Tail-Tab", "12345678\t9"},
        {"Abcdefg", "seven   spaces    here and there, long enough for two words"},
    };
    ci::aws::SigningParams params;
    params.region = "us-east-1";
    params.service = "service";
    params.time = parse_time("2015-08-30T12:36:00Z");
    params.include_stages = true;
    const ci::aws::Credentials credentials{"AKIDEXAMPLE", "secret", ""};
    auto result = ci::aws::sign(request, credentials, params);
    REQUIRE_OK(result);
    ci::http::Headers all = request.headers;
    all.push_back({"host", request.host});
    all.push_back({"x-amz-date", "20150830T123600Z"});
    const std::string expected = reference_header_block(all);
    const std::string& canonical = result->canonical_request;
    const std::size_t start =
        canonical.find('\n', canonical.find('\n', canonical.find('\n') + 1) + 1);
    REQUIRE(start != std::string::npos);
    CHECK(canonical.substr(start + 1, expected.size()) == expected);
}

TEST_CASE("sigv4: stages are returned only on request; the signature is the same either way") {
    Case test = load_case(suite_dir() / "post-x-www-form-urlencoded");
    auto without = ci::aws::sign(test.request, test.credentials, test.params);
    REQUIRE_OK(without);
    CHECK(without->canonical_request.empty());
    CHECK(without->string_to_sign.empty());
    test.params.include_stages = true;
    auto with = ci::aws::sign(test.request, test.credentials, test.params);
    REQUIRE_OK(with);
    CHECK_FALSE(with->canonical_request.empty());
    CHECK(with->signature == without->signature);
    CHECK(with->headers == without->headers);
}

TEST_CASE("sigv4: bad inputs are refused with a reason") {
    Case test = load_case(suite_dir() / "get-vanilla");
    const auto error_of = [](const Case& c) {
        auto result = ci::aws::sign(c.request, c.credentials, c.params);
        REQUIRE_FALSE(result.has_value());
        CHECK(result.error().code == ci::ErrorCode::InvalidArgument);
        return result.error().message;
    };
    Case bad = test;
    bad.credentials.secret_access_key.clear();
    CHECK(error_of(bad).find("secret") != std::string::npos);
    bad = test;
    bad.params.region.clear();
    CHECK(error_of(bad).find("region") != std::string::npos);
    bad = test;
    bad.request.headers.clear();
    bad.request.host.clear();
    CHECK(error_of(bad).find("no host") != std::string::npos);
    bad = test;
    bad.request.headers.push_back({"Authorization", "x"});
    CHECK(error_of(bad).find("already signed") != std::string::npos);
    bad = test;
    bad.params.location = ci::aws::SignatureLocation::Query;
    bad.params.expires = std::chrono::seconds(8 * 24 * 3600);
    CHECK(error_of(bad).find("expires") != std::string::npos);
}

TEST_CASE("http: request messages round-trip and malformed ones are refused") {
    const std::string text = "PUT /a b/c?x=1&y HTTP/1.1\nHost:h:9000\nX-Multi:one\n  two\n\nbody";
    auto request = ci::http::parse_request_message(text);
    REQUIRE_OK(request);
    CHECK(request->method == "PUT");
    CHECK(request->path == "/a b/c");
    CHECK(request->query == "x=1&y");
    CHECK(request->host == "h:9000");
    CHECK(request->headers[1].value == "one\n  two");
    CHECK(request->body == "body");
    CHECK(ci::http::format_request_message(*request) == text);
    CHECK_FALSE(ci::http::parse_request_message("").has_value());
    CHECK_FALSE(ci::http::parse_request_message("GET /\n").has_value());
    auto bad = ci::http::parse_request_message("GET / HTTP/1.1\nno colon here\n");
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message.find("line 2") != std::string::npos);
}

TEST_CASE("http: uri encoding is RFC 3986 strict") {
    CHECK(ci::http::uri_encode("a b/c~d-e_f.g*h+") == "a%20b%2Fc~d-e_f.g%2Ah%2B");
    CHECK(ci::http::uri_encode("a b/c", true) == "a%20b/c");
}
