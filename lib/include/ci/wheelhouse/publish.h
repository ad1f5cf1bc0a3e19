#pragma once

/// \file
/// Publishing a wheelhouse to S3 without ever leaving a broken index.
///
/// Order of uploads: new wheels (Content-Type application/python+wheel, their sha256 in
/// x-amz-meta-sha256), their `.metadata` files and a small pending record (the wheels uploaded,
/// the projects whose pages are owed), together; then the index pages that changed (project
/// pages, then the root's pages and the flat `index`, last); then the manifest, with the pages'
/// hashes. A
/// failure at any point leaves every page as it was or already complete, and the publish fails;
/// the next publish finishes the owed pages from the pending record. The index is rebuilt from
/// every wheel under the prefix, not only from the new ones. What was published is what the
/// manifest (`PREFIX/.libci-wheelhouse.json`) records; the prefix is listed instead when there is
/// no manifest (a first publish, a prefix another tool filled) or with `rescan` (after another tool
/// changed it). A new wheel's name is checked with HEAD either way. What the index needs of a wheel
/// another tool uploaded is read from the wheel once, then kept in the manifest.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ci/aws/s3.h>
#include <ci/core/error.h>
#include <ci/wheelhouse/index.h>

namespace ci::wheelhouse {

struct PublishProgress {
    enum class Stage { Listing, Wheels, Index };
    Stage stage = Stage::Listing;
    std::size_t done = 0;
    std::size_t total = 0;
};

struct PublishOptions {
    std::string bucket;
    std::string prefix; ///< "fedora20-x86_64"; empty: the bucket's root
    std::string acl;    ///< x-amz-acl for every object, e.g. "public-read"; empty: none
    bool dry_run = false;
    /// Replace a published wheel of the same name whose content differs (refused otherwise).
    bool overwrite = false;
    int jobs = 8; ///< uploads in flight
    /// List the prefix even when the manifest is there: after another tool added or removed
    /// wheels. Without a manifest the prefix is always listed.
    bool rescan = false;
    std::function<void(const PublishProgress&)> on_progress;
};

struct PublishReport {
    std::vector<std::string> uploaded; ///< wheels uploaded (or, with dry_run, to upload)
    std::vector<std::string> skipped;  ///< already there with the same sha256
    std::size_t wheels_indexed = 0;    ///< wheels in the index now
    std::size_t pages_uploaded = 0;    ///< (or to upload)
    std::size_t pages_unchanged = 0;
};

/// The manifest's key under `prefix`.
[[nodiscard]] std::string manifest_key(std::string_view prefix);
/// The key of the record a publish writes before its pages (the wheels it uploaded, the
/// projects whose pages it owes) and deletes after the manifest: one cut off leaves it for the
/// next publish to finish.
[[nodiscard]] std::string pending_key(std::string_view prefix);

/// Publishes `wheels` under s3://bucket/prefix and rebuilds the index. Fails, before uploading
/// anything, when a wheel of the same name but another sha256 is there and `overwrite` is off
/// (naming each); fails with the S3 error when an upload fails (the index then is the previous
/// one, or complete).
[[nodiscard]] Result<PublishReport>
publish(aws::S3Client& s3, const std::vector<LocalWheel>& wheels, const PublishOptions& options);

} // namespace ci::wheelhouse
