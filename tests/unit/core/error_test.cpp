#include <array>
#include <set>
#include <string_view>

#include <doctest/doctest.h>

#include <ci/core/build_result.h>
#include <ci/core/error.h>

#include "support/require_ok.h"

namespace {

ci::Result<int> parse_positive(int value) {
    if (value <= 0) {
        return ci::fail(ci::ErrorCode::InvalidArgument, "parse value: must be positive");
    }
    return value;
}

} // namespace

TEST_CASE("error: results carry a value or an error") {
    SUBCASE("value") {
        auto result = parse_positive(3);
        REQUIRE_OK(result);
        CHECK(*result == 3);
    }
    SUBCASE("error") {
        auto result = parse_positive(-1);
        REQUIRE_FALSE(result);
        CHECK(result.error().code == ci::ErrorCode::InvalidArgument);
        CHECK(result.error().message == "parse value: must be positive");
        CHECK_FALSE(result.error().native.has_value());
    }
}

TEST_CASE("error: to_string names the code and the native code") {
    const ci::Error plain{ci::ErrorCode::NotFound, "open config.yml", std::nullopt};
    CHECK(plain.to_string() == "open config.yml [not-found]");
    const ci::Error native{ci::ErrorCode::Io, "read config.yml", 13};
    CHECK(native.to_string() == "read config.yml [io, native 13]");
}

TEST_CASE("error: with_context prefixes what the caller was doing") {
    const ci::Error inner{ci::ErrorCode::Transport, "connect: refused", 7};
    const ci::Error outer = inner.with_context("PUT s3://bucket/key");
    CHECK(outer.message == "PUT s3://bucket/key: connect: refused");
    CHECK(outer.code == ci::ErrorCode::Transport);
    CHECK(outer.native == 7);
}

TEST_CASE("error: every code has a distinct name") {
    using ci::ErrorCode;
    const std::array codes = {
        ErrorCode::InvalidArgument,
        ErrorCode::NotFound,
        ErrorCode::Io,
        ErrorCode::Timeout,
        ErrorCode::Cancelled,
        ErrorCode::PermissionDenied,
        ErrorCode::Unsupported,
        ErrorCode::Internal,
        ErrorCode::ConfigSyntax,
        ErrorCode::ConfigInvalid,
        ErrorCode::ProcessSpawn,
        ErrorCode::Transport,
        ErrorCode::AwsService,
        ErrorCode::AwsCredentials,
        ErrorCode::Git,
        ErrorCode::Store,
    };
    std::set<std::string_view> names;
    for (auto code : codes) {
        CHECK(ci::to_string(code) != "unknown");
        names.insert(ci::to_string(code));
    }
    CHECK(names.size() == codes.size());
}

TEST_CASE("build results: names both ways, unknown names refused, the worst one wins") {
    for (const auto result : {ci::BuildResult::Success,
                              ci::BuildResult::Warnings,
                              ci::BuildResult::Failure,
                              ci::BuildResult::Exception,
                              ci::BuildResult::Cancelled,
                              ci::BuildResult::Retry}) {
        auto parsed = ci::parse_build_result(ci::to_string(result));
        REQUIRE(parsed.has_value());
        CHECK(*parsed == result);
    }
    CHECK(ci::to_string(ci::BuildResult::Cancelled) == "cancelled");
    CHECK(ci::to_string(ci::BuildResult::Warnings) == "warnings");
    for (const auto* bad : {"", "Success", "sucess", "warning", "success "}) {
        auto parsed = ci::parse_build_result(bad);
        REQUIRE_FALSE(parsed.has_value());
        CHECK(parsed.error().code == ci::ErrorCode::InvalidArgument);
    }
    using enum ci::BuildResult;
    CHECK(ci::worse(Success, Failure) == Failure);
    CHECK(ci::worse(Success, Warnings) == Warnings);
    CHECK(ci::worse(Warnings, Failure) == Failure);
    CHECK(ci::worse(Failure, Warnings) == Failure);
    CHECK(ci::worse(Exception, Failure) == Exception);
    CHECK(ci::worse(Exception, Cancelled) == Cancelled);
    CHECK(ci::worse(Cancelled, Success) == Cancelled);
    CHECK(ci::worse(Cancelled, Retry) == Retry);
}
