#include "ci/wheelhouse/publish.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <zlib.h>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <ci/core/crypto.h>
#include <ci/core/log.h>

#include "core/json.h"

namespace ci::wheelhouse {

namespace {

constexpr std::string_view wheel_type = "application/python+wheel";
constexpr std::string_view metadata_type = "text/plain; charset=utf-8";
constexpr std::string_view manifest_type = "application/json";

std::string key_for(std::string_view prefix, std::string_view name) {
    return prefix.empty() ? std::string(name) : fmt::format("{}/{}", prefix, name);
}

// What the manifest keeps: every wheel's entry, and the sha256 of every page last uploaded.
struct Manifest {
    std::map<std::string, WheelEntry> wheels;
    std::map<std::string, std::string> pages;
    /// Projects whose pages a publish was about to upload: a publish cut off before the end
    /// leaves them here, and the next one uploads them again.
    std::set<std::string> pending;
    /// Counts publishes. A pending record of a generation the manifest has reached is spent
    /// (its publish finished), so it need not be deleted.
    std::uint64_t generation = 0;
};

// The manifest, or nullopt when `text` is not one (it is then rebuilt from a listing).
// Parses in place: `text` is the downloaded body, which nothing reads afterwards (its strings are
// decoded where they lie instead of being copied).
std::optional<Manifest> parse_manifest(std::string& text, std::string_view where) {
    Manifest manifest;
    auto parsed = json::parse_in_place(text);
    if (!parsed || !parsed->IsObject() || !parsed->HasMember("wheels")) {
        log::warn("{} is not a libci wheelhouse manifest; the prefix will be listed", where);
        return std::nullopt;
    }
    const rapidjson::Document& document = *parsed;
    if (const auto wheels = document.FindMember("wheels");
        wheels != document.MemberEnd() && wheels->value.IsObject()) {
        for (const auto& member : wheels->value.GetObject()) {
            const std::string file_name = member.name.GetString();
            auto name = parse_wheel_name(file_name);
            if (!name || !member.value.IsObject()) {
                continue;
            }
            WheelEntry entry;
            entry.file_name = file_name;
            entry.name = std::move(*name);
            entry.sha256 = json::text_or_empty(member.value, "sha256");
            entry.metadata_sha256 = json::text_or_empty(member.value, "metadata_sha256");
            if (const auto size = member.value.FindMember("size");
                size != member.value.MemberEnd() && size->value.IsUint64()) {
                entry.size = size->value.GetUint64();
            }
            if (const auto rp = member.value.FindMember("requires_python");
                rp != member.value.MemberEnd() && rp->value.IsString()) {
                entry.requires_python = rp->value.GetString();
            }
            if (entry.sha256.size() == 64) {
                manifest.wheels.emplace(file_name, std::move(entry));
            }
        }
    }
    if (const auto generation = document.FindMember("generation");
        generation != document.MemberEnd() && generation->value.IsUint64()) {
        manifest.generation = generation->value.GetUint64();
    }
    if (const auto pending = document.FindMember("pending");
        pending != document.MemberEnd() && pending->value.IsArray()) {
        for (const auto& project : pending->value.GetArray()) {
            if (project.IsString()) {
                manifest.pending.insert(project.GetString());
            }
        }
    }
    if (const auto pages = document.FindMember("pages");
        pages != document.MemberEnd() && pages->value.IsObject()) {
        for (const auto& member : pages->value.GetObject()) {
            if (member.value.IsString()) {
                manifest.pages.emplace(member.name.GetString(), member.value.GetString());
            }
        }
    }
    return manifest;
}

std::string format_manifest(const Manifest& manifest) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> out(buffer);
    const auto string = [&](std::string_view text) {
        out.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
    };
    out.StartObject();
    out.Key("format");
    out.Int(1);
    out.Key("generation");
    out.Uint64(manifest.generation);
    out.Key("wheels");
    out.StartObject();
    for (const auto& [name, entry] : manifest.wheels) {
        string(name);
        out.StartObject();
        out.Key("sha256");
        string(entry.sha256);
        out.Key("size");
        out.Uint64(entry.size);
        out.Key("metadata_sha256");
        string(entry.metadata_sha256);
        if (entry.requires_python) {
            out.Key("requires_python");
            string(*entry.requires_python);
        }
        out.EndObject();
    }
    out.EndObject();
    out.Key("pending");
    out.StartArray();
    for (const auto& project : manifest.pending) {
        string(project);
    }
    out.EndArray();
    out.Key("pages");
    out.StartObject();
    for (const auto& [key, sha] : manifest.pages) {
        string(key);
        string(sha);
    }
    out.EndObject();
    out.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

// Runs `work(i)` for i in [0, count) on up to `jobs` threads; the first failure stops the
// others from starting more and is returned.
Status parallel_for(std::size_t count,
                    int jobs,
                    const std::function<Status(std::size_t)>& work,
                    const std::function<void()>& after_each) {
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::optional<Error> first_error;
    std::mutex mutex;
    const auto run = [&] {
        for (;;) {
            const std::size_t i = next.fetch_add(1);
            if (i >= count || failed.load()) {
                return;
            }
            auto status = work(i);
            const std::lock_guard lock(mutex);
            if (!status) {
                if (!first_error) {
                    first_error = status.error();
                }
                failed = true;
                return;
            }
            after_each();
        }
    };
    const auto threads = static_cast<std::size_t>(std::clamp(jobs, 1, 64));
    std::vector<std::jthread> pool;
    for (std::size_t t = 1; t < std::min(threads, count); ++t) {
        pool.emplace_back(run);
    }
    run();
    pool.clear(); // joins
    if (first_error) {
        return fail(*first_error);
    }
    return {};
}

// A wheel another tool uploaded: read it from S3 once (into a temporary directory, since the
// reader checks the file name too).
Result<LocalWheel>
fetch_wheel(aws::S3Client& s3, const PublishOptions& options, const std::string& file_name) {
    const std::string key = key_for(options.prefix, file_name);
    auto object = s3.get_object(options.bucket, key);
    if (!object) {
        return fail(object.error());
    }
    if (!*object) {
        return fail(ErrorCode::NotFound,
                    fmt::format("s3://{}/{} vanished while publishing", options.bucket, key));
    }
    std::string pattern = (std::filesystem::temp_directory_path() / "libci-wheel-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        return fail(ErrorCode::Io, fmt::format("mkdtemp {}: {}", pattern, std::strerror(errno)));
    }
    const std::filesystem::path dir = pattern;
    const auto path = dir / file_name;
    std::ofstream(path, std::ios::binary) << (*object)->body;
    auto wheel = read_wheel(path);
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
    return wheel;
}

} // namespace

std::string manifest_key(std::string_view prefix) {
    return key_for(prefix, ".libci-wheelhouse.json");
}

std::string pending_key(std::string_view prefix) {
    return key_for(prefix, ".libci-wheelhouse.pending.json");
}

Result<PublishReport>
publish(aws::S3Client& s3, const std::vector<LocalWheel>& wheels, const PublishOptions& options) {
    const auto progress = [&](PublishProgress::Stage stage, std::size_t done, std::size_t total) {
        if (options.on_progress) {
            options.on_progress(PublishProgress{stage, done, total});
        }
    };
    const std::string where = fmt::format("s3://{}/{}", options.bucket, options.prefix);
    progress(PublishProgress::Stage::Listing, 0, 1);
    // 1. What is there. The manifest says what earlier publishes left; the prefix is listed
    // when there is none (a first publish, a prefix another tool filled) or on request
    // (rescan: after another tool changed the prefix). Without a listing, a new wheel's name is
    // checked with HEAD, so that a wheel of that name put there by another tool is not
    // overwritten unseen.
    // A publish that was cut off before its pages were done left a small pending record
    // beside the manifest: the wheels it had uploaded and the projects whose pages it owed.
    Manifest manifest;
    Result<std::optional<aws::Object>> pending_object{std::nullopt};
    std::jthread pending_reader(
        [&] { pending_object = s3.get_object(options.bucket, pending_key(options.prefix)); });
    // A few local wheels (the usual publish of a build's new wheels): their names are checked
    // now, beside the manifest's download, rather than after it.
    constexpr std::size_t early_heads = 16;
    std::vector<std::optional<Result<std::optional<aws::ObjectHead>>>> heads(wheels.size());
    std::jthread head_reader;
    if (!options.rescan && wheels.size() <= early_heads) {
        head_reader = std::jthread([&] {
            (void)parallel_for(
                wheels.size(),
                options.jobs,
                [&](std::size_t i) -> Status {
                    heads[i] = s3.head_object(options.bucket,
                                              key_for(options.prefix, wheels[i].entry.file_name));
                    return {};
                },
                [] {});
        });
    }
    auto manifest_object = s3.get_object(options.bucket, manifest_key(options.prefix));
    pending_reader.join();
    if (head_reader.joinable()) {
        head_reader.join();
    }
    if (!manifest_object) {
        return fail(manifest_object.error());
    }
    if (!pending_object) {
        return fail(pending_object.error());
    }
    std::optional<Manifest> recorded;
    if (*manifest_object) {
        recorded = parse_manifest((*manifest_object)->body, where + "/.libci-wheelhouse.json");
    }
    std::optional<Manifest> unfinished;
    if (*pending_object) {
        unfinished =
            parse_manifest((*pending_object)->body, where + "/.libci-wheelhouse.pending.json");
        if (unfinished && recorded && unfinished->generation <= recorded->generation) {
            unfinished.reset(); // spent: its publish wrote the manifest after it
        }
        if (unfinished && recorded) {
            for (const auto& [name, entry] : unfinished->wheels) {
                recorded->wheels.insert_or_assign(name, entry);
            }
            recorded->pending.insert(unfinished->pending.begin(), unfinished->pending.end());
        }
    }
    // What is there: from the listing, or (without one) from the manifest plus the wheels a HEAD
    // found that it does not record. Keys are relative to the prefix.
    const bool listed = options.rescan || !recorded;
    std::set<std::string> listed_wheels; // listed: every wheel; otherwise: those HEAD found
    std::set<std::string> listed_keys;   // listed only
    if (listed) {
        const std::string list_prefix = options.prefix.empty() ? "" : options.prefix + "/";
        auto listing = s3.list_objects(options.bucket, list_prefix);
        if (!listing) {
            return fail(listing.error());
        }
        for (const auto& object : *listing) {
            std::string name = object.key.substr(list_prefix.size());
            if (name.ends_with(".whl") && name.find('/') == std::string::npos) {
                listed_wheels.insert(name);
            }
            listed_keys.insert(std::move(name));
        }
        if (recorded) {
            manifest = std::move(*recorded);
        }
    } else {
        manifest = std::move(*recorded);
        for (std::size_t i = 0; i < wheels.size(); ++i) {
            const auto& name = wheels[i].entry.file_name;
            if (manifest.wheels.contains(name)) {
                continue;
            }
            auto head = heads[i] ? std::move(*heads[i])
                                 : s3.head_object(options.bucket, key_for(options.prefix, name));
            if (!head) {
                return fail(head.error());
            }
            if (*head) {
                listed_wheels.insert(name); // another tool's: read below, then compared
            }
        }
    }
    const auto published = [&](const std::string& name) {
        return listed_wheels.contains(name) || (!listed && manifest.wheels.contains(name));
    };
    // Whether an object is there: listed, or recorded by the manifest (wheels' .metadata files
    // and pages).
    const auto exists = [&](const std::string& key) {
        if (listed) {
            return listed_keys.contains(key);
        }
        constexpr std::string_view metadata_suffix = ".metadata";
        if (key.ends_with(metadata_suffix)) {
            return manifest.wheels.contains(key.substr(0, key.size() - metadata_suffix.size()));
        }
        return manifest.pages.contains(key);
    };
    progress(PublishProgress::Stage::Listing, 1, 1);

    // 2. Entries of published wheels the manifest does not know: read from the wheel itself.
    // With a listing, entries of wheels no longer there are dropped.
    std::set<std::string> affected = manifest.pending;
    const bool had_manifest = recorded.has_value();
    std::size_t removed = 0;
    if (listed) {
        removed = std::erase_if(manifest.wheels, [&](const auto& item) {
            if (listed_wheels.contains(item.first)) {
                return false;
            }
            affected.insert(normalize_project_name(item.second.name.distribution));
            return true;
        });
    }
    std::vector<std::string> unknown;
    for (const auto& name : listed_wheels) {
        if (!manifest.wheels.contains(name)) {
            unknown.push_back(name);
        }
    }
    std::vector<LocalWheel> fetched;
    if (!unknown.empty()) {
        log::info("{}: reading {} wheel(s) the manifest does not record (put there by another "
                  "tool, or before the manifest)",
                  where,
                  unknown.size());
        std::vector<std::optional<LocalWheel>> read(unknown.size());
        // A wheel that cannot be read is left out of the index with a warning, not an error.
        (void)parallel_for(
            unknown.size(),
            options.jobs,
            [&](std::size_t i) -> Status {
                auto wheel = fetch_wheel(s3, options, unknown[i]);
                if (!wheel) {
                    log::warn("{}: {} is left out of the index: {}",
                              where,
                              unknown[i],
                              wheel.error().message);
                    return {};
                }
                read[i] = std::move(*wheel);
                return {};
            },
            [] {});
        for (auto& wheel : read) {
            if (!wheel) {
                continue;
            }
            const std::string name = wheel->entry.file_name;
            // Without a listing, whether another tool put a .metadata file there is unknown:
            // one is uploaded.
            const bool has_metadata = listed && listed_keys.contains(name + ".metadata");
            manifest.wheels[name] = wheel->entry;
            if (!has_metadata) {
                fetched.push_back(std::move(*wheel));
            }
        }
    }

    // 3. What to upload; a different wheel under a published name is refused, before anything.
    PublishReport report;
    std::vector<const LocalWheel*> uploads;
    std::vector<std::string> refused;
    for (const auto& wheel : wheels) {
        const auto& name = wheel.entry.file_name;
        const auto known = manifest.wheels.find(name);
        if (published(name) && known != manifest.wheels.end()) {
            if (known->second.sha256 == wheel.entry.sha256) {
                report.skipped.push_back(name);
                continue;
            }
            if (!options.overwrite) {
                refused.push_back(fmt::format("{} (published sha256 {}, this one {})",
                                              name,
                                              known->second.sha256,
                                              wheel.entry.sha256));
                continue;
            }
        }
        uploads.push_back(&wheel);
        report.uploaded.push_back(name);
    }
    if (!refused.empty()) {
        return fail(ErrorCode::Conflict,
                    fmt::format("{}: {} wheel(s) already published with other content (use "
                                "--overwrite to replace them): {}",
                                where,
                                refused.size(),
                                fmt::join(refused, "; ")));
    }
    for (const auto* wheel : uploads) {
        manifest.wheels[wheel->entry.file_name] = wheel->entry;
        affected.insert(normalize_project_name(wheel->entry.name.distribution));
    }
    for (const auto& wheel : fetched) {
        affected.insert(normalize_project_name(wheel.entry.name.distribution));
    }
    std::vector<const WheelEntry*> entries;
    entries.reserve(manifest.wheels.size());
    std::set<std::string> projects;
    for (const auto& [name, entry] : manifest.wheels) {
        entries.push_back(&entry);
        projects.insert(normalize_project_name(entry.name.distribution));
    }
    // Pages are made again only for the projects that change, that an earlier publish did
    // not finish, or that have no recorded page; the others are as the manifest records them.
    for (const auto& project : projects) {
        if (!manifest.pages.contains("simple/" + project + "/")) {
            affected.insert(project);
        }
    }
    report.wheels_indexed = entries.size();
    const auto pages = build_index(entries, {}, &affected);
    report.pages_unchanged =
        3 * (projects.size() -
             std::ranges::count_if(projects, [&](const auto& p) { return affected.contains(p); }));
    std::vector<const Page*> changed;
    std::map<std::string, std::string> page_hashes = manifest.pages;
    for (const auto& page : pages) {
        const std::string sha = crypto::to_hex(crypto::sha256(page.body));
        page_hashes[page.key] = sha;
        const auto previous = manifest.pages.find(page.key);
        if (previous != manifest.pages.end() && previous->second == sha && exists(page.key)) {
            ++report.pages_unchanged;
        } else {
            changed.push_back(&page);
        }
    }
    report.pages_uploaded = changed.size();
    if (options.dry_run) {
        return report;
    }

    // 4. Wheels, then their metadata files (with those of fetched wheels that lacked one).
    const auto put = [&](std::string key,
                         std::string body,
                         std::string body_file,
                         std::string_view content_type,
                         std::map<std::string, std::string> metadata = {}) {
        aws::PutObjectInput input;
        input.bucket = options.bucket;
        input.key = std::move(key);
        input.body = std::move(body);
        input.body_file = std::move(body_file);
        input.content_type = content_type;
        input.acl = options.acl;
        input.metadata = std::move(metadata);
        return s3.put_object(input);
    };
    std::size_t done = 0;
    const std::size_t total_wheels =
        2 * uploads.size() + fetched.size() + (changed.empty() ? 0 : 1);
    const auto tick = [&](PublishProgress::Stage stage, std::size_t total) {
        ++done;
        progress(stage, done, total);
    };
    progress(PublishProgress::Stage::Wheels, 0, total_wheels);
    // 5. One batch before any page: the wheels, their .metadata files (one that lands before
    // its wheel is linked from no page yet), and the pending record -- what the manifest will
    // say once the pages are up; small, unlike the manifest, which is written once, at the end.
    std::vector<const LocalWheel*> with_metadata = uploads;
    for (const auto& wheel : fetched) {
        with_metadata.push_back(&wheel);
    }
    const bool owe_pages = !changed.empty();
    std::string pending_record;
    if (owe_pages) {
        Manifest record;
        if (unfinished) {
            record.wheels = unfinished->wheels; // still not in the manifest
        }
        for (const auto* wheel : with_metadata) {
            record.wheels[wheel->entry.file_name] = wheel->entry;
        }
        record.pending = affected;
        record.generation = manifest.generation + 1;
        pending_record = format_manifest(record);
    }
    const std::size_t batch = uploads.size() + with_metadata.size() + (owe_pages ? 1 : 0);
    auto status = parallel_for(
        batch,
        options.jobs,
        [&](std::size_t i) {
            if (i < uploads.size()) {
                const auto& wheel = *uploads[i];
                std::map<std::string, std::string> metadata{{"sha256", wheel.entry.sha256}};
                return put(key_for(options.prefix, wheel.entry.file_name),
                           {},
                           wheel.path.string(),
                           wheel_type,
                           std::move(metadata));
            }
            if (i < uploads.size() + with_metadata.size()) {
                const auto& wheel = *with_metadata[i - uploads.size()];
                return put(key_for(options.prefix, wheel.entry.file_name + ".metadata"),
                           wheel.metadata,
                           {},
                           metadata_type);
            }
            return put(pending_key(options.prefix), pending_record, {}, manifest_type);
        },
        [&] { tick(PublishProgress::Stage::Wheels, total_wheels); });
    if (!status) {
        return fail(status.error());
    }
    // 6. The manifest to write at the end, made while the pages go up: the wheels, the pages'
    // hashes (the next publish uploads only what changes), a generation that spends the
    // pending record.
    const bool manifest_changed = owe_pages || !uploads.empty() || !fetched.empty() ||
                                  !had_manifest || !manifest.pending.empty() || removed > 0;
    std::string manifest_text;
    std::jthread formatter;
    if (manifest_changed) {
        manifest.pending.clear();
        manifest.pages = std::move(page_hashes);
        manifest.generation =
            std::max(manifest.generation, unfinished ? unfinished->generation : std::uint64_t{0}) +
            1;
        formatter = std::jthread([&] { manifest_text = format_manifest(manifest); });
    }
    // 7. The pages that changed, in build_index's order: the project pages together, then the
    // root's pages and the flat index together, last.
    done = 0;
    progress(PublishProgress::Stage::Index, 0, changed.size());
    std::size_t project_pages = 0;
    while (project_pages < changed.size() && changed[project_pages]->key.starts_with("simple/") &&
           changed[project_pages]->key != "simple/" &&
           !changed[project_pages]->key.starts_with("simple/index.")) {
        ++project_pages;
    }
    const auto put_page = [&](std::size_t i) {
        const Page& page = *changed[i];
        return put(key_for(options.prefix, page.key), page.body, {}, page.content_type);
    };
    const auto tick_page = [&] { tick(PublishProgress::Stage::Index, changed.size()); };
    status = parallel_for(project_pages, options.jobs, put_page, tick_page);
    if (status) {
        status = parallel_for(
            changed.size() - project_pages,
            options.jobs,
            [&](std::size_t i) { return put_page(project_pages + i); },
            tick_page);
    }
    if (formatter.joinable()) {
        formatter.join();
    }
    if (!status) {
        return fail(status.error());
    }
    // 8. The manifest, last: it records the pages as they now are.
    if (manifest_changed) {
        status = put(manifest_key(options.prefix), std::move(manifest_text), {}, manifest_type);
        if (!status) {
            return fail(status.error());
        }
    }
    return report;
}

} // namespace ci::wheelhouse
