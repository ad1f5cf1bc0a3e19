#pragma once

/// \file
/// AWS Signature Version 4 as a pure function: (request, credentials, params) -> what to add to
/// the request. No clock, no network, no global state other than a per-thread cache of derived
/// signing keys (which never changes a result).
///
/// The rules, in the order the signer applies them:
/// 1. Signed headers are the request's headers, lower-cased and sorted, except hop-by-hop and
///    tracing headers (connection, expect, transfer-encoding, user-agent, x-amzn-trace-id); in the
///    header form X-Amz-Date, and X-Amz-Security-Token when the token is signed, are added.
/// 2. Header values are trimmed and every run of whitespace becomes one space; repeated headers
///    are joined with ',' in request order.
/// 3. The canonical path is the request's path, with dot segments and repeated slashes removed
///    when `normalize_path`, then percent-encoded again when `double_uri_encode` (every service
///    but S3). The canonical query decodes and strictly re-encodes each name and value, then
///    sorts by name and value.
/// 4. The payload hash is `payload_hash` when set (a hex SHA-256, or "UNSIGNED-PAYLOAD"),
///    otherwise the SHA-256 of the request's body. A request whose body streams from a file
///    (`body_file`) must say its hash (ci::crypto::sha256_file computes it once).

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <ci/core/error.h>
#include <ci/http/request.h>

namespace ci::aws {

/// An access key, with the session token of temporary credentials.
struct Credentials {
    std::string access_key_id;
    std::string secret_access_key; ///< a secret: never logged
    std::string session_token;     ///< empty for long-term keys; a secret
    friend bool operator==(const Credentials&, const Credentials&) = default;
};

/// Where the signature goes.
enum class SignatureLocation {
    Headers, ///< an Authorization header (requests the client sends)
    Query,   ///< X-Amz-* query parameters (presigned URLs, valid for `expires`)
};

/// Everything a signature depends on besides the request and the credentials.
struct SigningParams {
    std::string region;                         ///< e.g. "us-west-2"
    std::string service;                        ///< e.g. "ec2", "s3"
    std::chrono::system_clock::time_point time; ///< the request's date; the caller's clock
    SignatureLocation location = SignatureLocation::Headers;
    bool normalize_path = true;    ///< false for S3
    bool double_uri_encode = true; ///< false for S3
    /// Hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"; empty: computed from request.body.
    std::string payload_hash;
    /// Adds and signs x-amz-content-sha256 (S3 requires it; header form only).
    bool add_content_sha256_header = false;
    /// False: the session token is added after signing, outside the signature (some services,
    /// e.g. IoT, want this).
    bool sign_session_token = true;
    std::chrono::seconds expires{3600}; ///< query form: 1 s to 7 days
    /// Also return the canonical request and string to sign (tests, and explaining a
    /// SignatureDoesNotMatch); off by default, since copying them out costs a fifth of a
    /// signature.
    bool include_stages = false;
};

/// What sign() produces: what to add to the request, and the intermediate stages (for tests and
/// for debugging a SignatureDoesNotMatch, whose error body shows the server's canonical request).
struct SigningResult {
    /// Header form: headers to append to the request, in order (X-Amz-Security-Token, X-Amz-Date,
    /// x-amz-content-sha256, Authorization). Empty in the query form.
    http::Headers headers;
    /// Query form: encoded "name=value" parameters to append to the query, in order, the last
    /// being X-Amz-Signature. Empty in the header form.
    std::vector<std::string> query_parameters;
    std::string canonical_request; ///< set when SigningParams::include_stages
    std::string string_to_sign;    ///< set when SigningParams::include_stages
    std::string signature;         ///< lower-case hex
};

/// Signs `request`. Fails with InvalidArgument when the credentials lack a key id or secret,
/// region or service is empty, the request has no Host header nor host, it already carries an
/// Authorization header or X-Amz-Date, has a body_file but no payload_hash, or `expires` is out
/// of range. Thread-safe.
[[nodiscard]] Result<SigningResult>
sign(const http::Request& request, const Credentials& credentials, const SigningParams& params);

/// Applies a SigningResult to a copy of `request`: appends its headers, or its query parameters.
[[nodiscard]] http::Request apply(http::Request request, const SigningResult& result);

/// "20150830T123600Z": the X-Amz-Date form of a time (UTC).
[[nodiscard]] std::string amz_date(std::chrono::system_clock::time_point time);

/// The hex SHA-256 of `payload`, the form `payload_hash` takes.
[[nodiscard]] std::string payload_sha256(std::string_view payload);

} // namespace ci::aws
