// The worker's side of an upload to s3://: destinations, keys, and what fails before anything is
// sent. Uploads to real S3 servers: tests/integration/master_e2e_s3_upload.py.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "support/temp_dir.h"
#include "worker/upload.h"

namespace {

using ci::worker::S3Destination;

ci::aws::EnvironmentLookup environment(std::map<std::string, std::string> values) {
    return [values = std::move(values)](const std::string& name) -> std::optional<std::string> {
        const auto found = values.find(name);
        return found == values.end() ? std::nullopt : std::optional<std::string>(found->second);
    };
}

} // namespace

TEST_CASE("s3 upload: destinations and keys") {
    CHECK(ci::worker::parse_s3_destination("s3://bucket") == S3Destination{"bucket", ""});
    CHECK(ci::worker::parse_s3_destination("s3://bucket/") == S3Destination{"bucket", ""});
    CHECK(ci::worker::parse_s3_destination("s3://b.c/docs/1.0/") ==
          S3Destination{"b.c", "docs/1.0"});
    CHECK(ci::worker::s3_key("", "a/b.txt") == "a/b.txt");
    CHECK(ci::worker::s3_key("docs/1.0", "index.html") == "docs/1.0/index.html");
}

TEST_CASE("s3 upload: without credentials the step fails before reading a file, naming why") {
    ci::test::TempDir dir;
    std::vector<std::string> log;
    ci::worker::UploadContext context;
    context.output = [&](std::string_view text) { log.emplace_back(text); };
    context.deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    const auto outcome = ci::worker::send_to_s3(
        context,
        ci::config::Upload{"dist", "s3://bucket/prefix"},
        dir.path() / "absent",
        environment({{"AWS_EC2_METADATA_DISABLED", "true"}, {"HOME", dir.path().string()}}));
    CHECK(outcome.result == ci::BuildResult::Failure);
    INFO(outcome.description);
    CHECK(outcome.description.starts_with("no AWS credentials for s3://bucket/prefix: "));
    CHECK(outcome.description.find("AWS_ACCESS_KEY_ID") != std::string::npos);
    CHECK(log.empty());
}

TEST_CASE("s3 upload: a missing `from` fails the step; the secret key is never in the log") {
    ci::test::TempDir dir;
    std::string log;
    ci::worker::UploadContext context;
    context.output = [&](std::string_view text) { log += text; };
    context.deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    const auto outcome = ci::worker::send_to_s3(
        context,
        ci::config::Upload{"dist", "s3://bucket"},
        dir.path() / "absent",
        environment({{"AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"},
                     {"AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
                     {"AWS_REGION", "eu-west-3"}}));
    CHECK(outcome.result == ci::BuildResult::Failure);
    CHECK(outcome.description.starts_with("nothing to upload at "));
    CHECK(log.find("wJalrXUtnFEMI") == std::string::npos);
}
