// An upload step to s3://BUCKET/PREFIX: the worker sends the files to S3 itself (upload.h).

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include <ci/aws/ec2.h>
#include <ci/aws/s3.h>
#include <ci/core/clock.h>
#include <ci/http/client.h>

#include "worker/upload.h"

namespace ci::worker {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// The first of `names` set (and not empty) in `env`, else `fallback`: as the AWS CLI reads
// AWS_REGION and AWS_ENDPOINT_URL_S3.
std::string first_set(const aws::EnvironmentLookup& env,
                      std::initializer_list<const char*> names,
                      std::string fallback) {
    for (const char* name : names) {
        if (auto value = env(name); value && !value->empty()) {
            return *value;
        }
    }
    return fallback;
}

// "1.5 MB/s" from bytes over a duration.
std::string rate(std::uint64_t bytes, Clock::duration elapsed) {
    const double seconds = std::max(std::chrono::duration<double>(elapsed).count(), 1e-3);
    return fmt::format("{:.1f} MB/s", static_cast<double>(bytes) / seconds / 1e6);
}

} // namespace

S3Destination parse_s3_destination(std::string_view to) {
    std::string_view rest = to.substr(std::min<std::size_t>(to.size(), 5)); // after "s3://"
    S3Destination out;
    const auto slash = rest.find('/');
    out.bucket = std::string(rest.substr(0, slash));
    if (slash != std::string_view::npos) {
        std::string_view prefix = rest.substr(slash + 1);
        if (prefix.ends_with('/')) {
            prefix.remove_suffix(1); // as check-config reads it
        }
        out.prefix = std::string(prefix);
    }
    return out;
}

std::string s3_key(std::string_view prefix, std::string_view relative) {
    return prefix.empty() ? std::string(relative) : fmt::format("{}/{}", prefix, relative);
}

build::StepOutcome send_to_s3(const UploadContext& context,
                              const config::Upload& upload,
                              const fs::path& from,
                              const aws::EnvironmentLookup& env) {
    const auto destination = parse_s3_destination(upload.to);
    aws::S3Endpoint endpoint;
    endpoint.region = first_set(env, {"AWS_REGION", "AWS_DEFAULT_REGION"}, "us-east-1");
    endpoint.endpoint_url = first_set(env, {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}, "");

    http::ClientOptions http_options;
    http_options.retry = aws::aws_retry_policy();
    // Per request (a part of 8 MiB, or a small file): slow links still make it (14 KB/s), a
    // stalled connection does not hold the step for ever. A stop waits for the current part.
    http_options.timeout = std::chrono::minutes(10);
    std::shared_ptr<http::Client> http = http::make_client(http_options);
    aws::CredentialsChainOptions chain;
    chain.environment = env;
    chain.http = http;
    auto credentials = aws::make_credentials_chain(std::move(chain));
    // Asked first, so that missing credentials fail the step before any file is read, with
    // every source the chain tried. Only where they came from is shown, never a key.
    auto found = credentials->get();
    if (!found) {
        return ended(
            BuildResult::Failure,
            fmt::format("no AWS credentials for {}: {}", upload.to, found.error().message));
    }

    auto scanned = scan_upload(from, /*hash=*/false, context.output);
    if (!scanned) {
        return ended(BuildResult::Failure, scanned.error().message);
    }
    const auto file_count = static_cast<std::size_t>(
        std::ranges::count(scanned->files, false, &master::protocol::UploadFile::directory));
    context.output(fmt::format(
        "{} files, {} bytes to {} (region {}, {}, credentials from {}){}\n",
        file_count,
        scanned->bytes,
        upload.to,
        endpoint.region,
        endpoint.endpoint_url.empty() ? "AWS's endpoint" : "endpoint " + endpoint.endpoint_url,
        found->source,
        scanned->skipped > 0 ? fmt::format("; {} entries skipped", scanned->skipped) : ""));

    aws::S3Client s3(http, credentials, SystemClock::instance(), endpoint);
    const auto started = Clock::now();
    auto last_report = started;
    std::uint64_t done_bytes = 0;
    std::size_t done_files = 0;
    std::optional<build::StepOutcome> interrupted;
    // Between parts and files: a stop or the deadline ends the upload; a progress line at most
    // every two seconds.
    const auto keep_going = [&](std::uint64_t in_file) {
        if (context.stop.stop_requested()) {
            interrupted = ended(BuildResult::Cancelled, "stopped during the upload");
            return false;
        }
        if (Clock::now() >= context.deadline) {
            interrupted = ended(BuildResult::Failure, "timed out during the upload");
            return false;
        }
        if (const auto now = Clock::now(); now - last_report >= std::chrono::seconds(2)) {
            last_report = now;
            context.output(fmt::format("uploaded {} of {} files, {} of {} bytes ({})\n",
                                       done_files,
                                       file_count,
                                       done_bytes + in_file,
                                       scanned->bytes,
                                       rate(done_bytes + in_file, now - started)));
        }
        return true;
    };
    for (std::size_t i = 0; i < scanned->files.size(); ++i) {
        const auto& file = scanned->files[i];
        if (file.directory) {
            continue; // S3 has no directories: the keys of the files under one say it
        }
        if (!keep_going(0)) {
            return std::move(*interrupted);
        }
        aws::UploadFileInput input;
        input.bucket = destination.bucket;
        input.key = s3_key(destination.prefix, file.path);
        input.path = scanned->sources[i].string();
        input.progress = keep_going;
        auto sent = s3.upload_file(input);
        if (!sent) {
            if (interrupted) {
                return std::move(*interrupted);
            }
            return ended(BuildResult::Failure,
                         fmt::format("{} was not uploaded to s3://{}/{}: {}",
                                     file.path,
                                     input.bucket,
                                     input.key,
                                     sent.error().message));
        }
        if (sent->parts > 0) {
            context.output(fmt::format("{}: {} bytes in {} parts (multipart upload)\n",
                                       input.key,
                                       sent->size,
                                       sent->parts));
        }
        ++done_files;
        done_bytes += sent->size;
    }
    const auto elapsed = Clock::now() - started;
    context.output(fmt::format("uploaded {} files, {} bytes to {} in {:.1f} s ({})\n",
                               done_files,
                               done_bytes,
                               upload.to,
                               std::chrono::duration<double>(elapsed).count(),
                               rate(done_bytes, elapsed)));
    return ended(
        BuildResult::Success,
        fmt::format("{} files, {} bytes uploaded to {}", done_files, done_bytes, upload.to));
}

} // namespace ci::worker
