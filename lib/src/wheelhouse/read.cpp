// Reading a wheel: its name, hash and METADATA, through libzip (only this file includes it).

#include <memory>

#include <fmt/format.h>
#include <zip.h>

#include <ci/core/crypto.h>
#include <ci/wheelhouse/index.h>

#include "core/ascii.h"

namespace ci::wheelhouse {

namespace {

struct ZipCloser {
    void operator()(zip_t* archive) const noexcept { zip_discard(archive); }
};
struct ZipFileCloser {
    void operator()(zip_file_t* file) const noexcept { zip_fclose(file); }
};

// The header fields of a METADATA file (RFC 822 style: "Name: value", continuation lines
// start with whitespace, the body begins after the first empty line). Returns the first value
// of `field` (case-insensitive), or nullopt.
std::optional<std::string> header_field(std::string_view metadata, std::string_view field) {
    std::size_t at = 0;
    std::optional<std::string> value;
    while (at < metadata.size()) {
        std::size_t end = metadata.find('\n', at);
        if (end == std::string_view::npos) {
            end = metadata.size();
        }
        std::string_view line = metadata.substr(at, end - at);
        at = end + 1;
        if (line.ends_with('\r')) {
            line.remove_suffix(1);
        }
        if (line.empty()) {
            break; // the body
        }
        if (line.front() == ' ' || line.front() == '\t') {
            continue; // a continuation of a field not asked for (the ones read are one line)
        }
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon != field.size()) {
            continue;
        }
        if (!ascii_iequals(line.substr(0, colon), field)) {
            continue;
        }
        std::string_view rest = line.substr(colon + 1);
        while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) {
            rest.remove_prefix(1);
        }
        while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t')) {
            rest.remove_suffix(1);
        }
        if (!value) {
            value = std::string(rest);
        }
    }
    return value;
}

} // namespace

Result<LocalWheel> read_wheel(const std::filesystem::path& path) {
    const std::string file_name = path.filename().string();
    const auto invalid = [&](std::string_view why) {
        return fail(ErrorCode::InvalidArgument, fmt::format("wheel {}: {}", path.string(), why));
    };
    auto name = parse_wheel_name(file_name);
    if (!name) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("wheel {}: {}", path.string(), name.error().message));
    }
    int open_error = 0;
    std::unique_ptr<zip_t, ZipCloser> archive(
        zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &open_error));
    if (!archive) {
        zip_error_t error;
        zip_error_init_with_code(&error, open_error);
        const std::string message =
            fmt::format("not a readable zip archive ({})", zip_error_strerror(&error));
        zip_error_fini(&error);
        return invalid(message);
    }
    // "{distribution}-{version}.dist-info/METADATA" (PEP 427); the directory's name is compared
    // by its normalized distribution, since tools differ in how they escape it.
    const std::string wanted = normalize_project_name(name->distribution);
    const zip_int64_t entries = zip_get_num_entries(archive.get(), 0);
    zip_int64_t metadata_index = -1;
    for (zip_int64_t i = 0; i < entries; ++i) {
        const char* entry = zip_get_name(archive.get(), static_cast<zip_uint64_t>(i), 0);
        if (entry == nullptr) {
            continue;
        }
        const std::string_view entry_name(entry);
        constexpr std::string_view suffix = ".dist-info/METADATA";
        if (!entry_name.ends_with(suffix) ||
            entry_name.find('/') != entry_name.size() - std::string_view("METADATA").size() - 1) {
            continue;
        }
        const std::string_view dir = entry_name.substr(0, entry_name.size() - suffix.size());
        const std::size_t dash = dir.rfind('-');
        if (dash != std::string_view::npos &&
            normalize_project_name(dir.substr(0, dash)) == wanted) {
            metadata_index = i;
            break;
        }
    }
    if (metadata_index < 0) {
        return invalid(fmt::format(
            "no {}-{}.dist-info/METADATA in the archive", name->distribution, name->version_text));
    }
    zip_stat_t stat;
    zip_stat_init(&stat);
    if (zip_stat_index(archive.get(), static_cast<zip_uint64_t>(metadata_index), 0, &stat) != 0 ||
        (stat.valid & ZIP_STAT_SIZE) == 0) {
        return invalid(fmt::format("cannot read METADATA: {}", zip_strerror(archive.get())));
    }
    if (stat.size > max_metadata_size) {
        return invalid(fmt::format("METADATA is {} bytes, more than the {} MiB allowed",
                                   stat.size,
                                   max_metadata_size >> 20U));
    }
    std::unique_ptr<zip_file_t, ZipFileCloser> file(
        zip_fopen_index(archive.get(), static_cast<zip_uint64_t>(metadata_index), 0));
    if (!file) {
        return invalid(fmt::format("cannot read METADATA: {}", zip_strerror(archive.get())));
    }
    LocalWheel wheel;
    wheel.path = path;
    wheel.metadata.resize(static_cast<std::size_t>(stat.size));
    // Reading to the end also checks the entry's CRC: a corrupt entry fails here.
    const zip_int64_t read = zip_fread(file.get(), wheel.metadata.data(), stat.size);
    char probe = 0;
    if (read < 0 || static_cast<zip_uint64_t>(read) != stat.size ||
        zip_fread(file.get(), &probe, 1) != 0) {
        return invalid(fmt::format("METADATA is corrupt: {}", zip_file_strerror(file.get())));
    }
    const auto metadata_name = header_field(wheel.metadata, "Name");
    const auto metadata_version = header_field(wheel.metadata, "Version");
    if (!metadata_name || !metadata_version) {
        return invalid("METADATA has no Name or no Version");
    }
    if (normalize_project_name(*metadata_name) != wanted) {
        return invalid(fmt::format(
            "METADATA names '{}', the file name '{}'", *metadata_name, name->distribution));
    }
    auto version = parse_version(*metadata_version);
    if (!version || *version != name->version) {
        return invalid(fmt::format("METADATA says version '{}', the file name '{}'",
                                   *metadata_version,
                                   name->version_text));
    }
    auto digest = crypto::sha256_file(path);
    if (!digest) {
        return fail(digest.error());
    }
    std::error_code size_error;
    const auto size = std::filesystem::file_size(path, size_error);
    if (size_error) {
        return fail(ErrorCode::Io,
                    fmt::format("wheel {}: {}", path.string(), size_error.message()));
    }
    wheel.entry.file_name = file_name;
    wheel.entry.name = std::move(*name);
    wheel.entry.size = size;
    wheel.entry.sha256 = crypto::to_hex(*digest);
    wheel.entry.metadata_sha256 = crypto::to_hex(crypto::sha256(wheel.metadata));
    wheel.entry.requires_python = header_field(wheel.metadata, "Requires-Python");
    return wheel;
}

} // namespace ci::wheelhouse
