// sign_request: signs an HTTP request with AWS SigV4, the way the libci S3 and EC2 clients do.
//
//   sign_request [--query] context.json request.txt
//
// context.json holds the credentials, region, service, time and options, in the format of the
// AWS SigV4 test suite (tests/data/aws-sigv4-test-suite/*/context.json); request.txt is the
// request as HTTP/1.1 text. Prints the signed request: with an Authorization header, or with
// --query as a presigned URL's query parameters. The output equals the suite's
// header-signed-request.txt or query-signed-request.txt.

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

#include <ci/aws/sigv4.h>
#include <ci/http/message.h>

namespace {

bool read_file(const char* path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return false;
    }
    out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return true;
}

// Reads the suite's context.json into credentials and signing parameters.
bool load_context(const std::string& json,
                  ci::aws::Credentials& credentials,
                  ci::aws::SigningParams& params) {
    rapidjson::Document context;
    context.Parse(json.c_str());
    if (context.HasParseError() || !context.IsObject() || !context.HasMember("credentials")) {
        return false;
    }
    const auto& keys = context["credentials"];
    credentials.access_key_id = keys["access_key_id"].GetString();
    credentials.secret_access_key = keys["secret_access_key"].GetString();
    if (keys.HasMember("token")) {
        credentials.session_token = keys["token"].GetString();
    }
    params.region = context["region"].GetString();
    params.service = context["service"].GetString();
    std::tm tm{};
    if (::strptime(context["timestamp"].GetString(), "%Y-%m-%dT%H:%M:%SZ", &tm) == nullptr) {
        return false;
    }
    params.time = std::chrono::system_clock::from_time_t(::timegm(&tm));
    params.normalize_path = context["normalize"].GetBool();
    // The suite's sign_body means: send and sign x-amz-content-sha256, as S3 requires.
    params.add_content_sha256_header = context["sign_body"].GetBool();
    params.expires = std::chrono::seconds(context["expiration_in_seconds"].GetInt());
    if (context.HasMember("omit_session_token")) {
        params.sign_session_token = !context["omit_session_token"].GetBool();
    }
    return true;
}

} // namespace

int main(int argc, char** argv) {
    bool query = false;
    int first = 1;
    if (argc > 1 && std::string_view(argv[1]) == "--query") {
        query = true;
        first = 2;
    }
    if (argc - first != 2) {
        std::fprintf(stderr, "usage: %s [--query] context.json request.txt\n", argv[0]);
        return 2;
    }
    std::string context_text;
    std::string request_text;
    if (!read_file(argv[first], context_text) || !read_file(argv[first + 1], request_text)) {
        std::fprintf(stderr, "error: cannot read %s or %s\n", argv[first], argv[first + 1]);
        return 3;
    }
    ci::aws::Credentials credentials;
    ci::aws::SigningParams params;
    if (!load_context(context_text, credentials, params)) {
        std::fprintf(stderr, "error: %s: not a signing context\n", argv[first]);
        return 3;
    }
    params.location =
        query ? ci::aws::SignatureLocation::Query : ci::aws::SignatureLocation::Headers;
    auto request = ci::http::parse_request_message(request_text);
    if (!request) {
        std::fprintf(stderr, "error: %s\n", request.error().to_string().c_str());
        return 1;
    }
    auto signature = ci::aws::sign(*request, credentials, params);
    if (!signature) {
        std::fprintf(stderr, "error: %s\n", signature.error().to_string().c_str());
        return 1;
    }
    const std::string out = ci::http::format_request_message(ci::aws::apply(*request, *signature));
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}
