#pragma once

/// \file
/// What a wheelhouse index is made of, and the index itself as a pure function of its wheels.
///
/// Pages, relative to the wheelhouse prefix:
/// - `index`: the flat find-links page (`pip --find-links PREFIX/index`), one link per wheel;
/// - `simple/` and `simple/index.html`: the PEP 503 root, one link per project;
/// - `simple/<project>/` and `simple/<project>/index.html`: one link per wheel of the project,
///   in PEP 440 version order, with `#sha256=` fragments, `data-requires-python` (HTML-escaped) and
///   `data-dist-info-metadata` / `data-core-metadata` (PEP 658/714) pointing at
///   `<wheel>.metadata`;
/// - `simple/index.json`, `simple/<project>/index.json`: the same as PEP 691 JSON.
/// Each HTML page exists under two keys: `dir/` is what pip asks a plain S3 endpoint for, and
/// `dir/index.html` is what S3 static-website hosting serves for `dir/`.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <ci/core/error.h>
#include <ci/wheelhouse/wheel.h>

namespace ci::wheelhouse {

/// What the index needs of one wheel; kept in the publisher's manifest so that a published
/// wheel is never downloaded again.
struct WheelEntry {
    std::string file_name; ///< e.g. "Flocker-1.0.0-py2-none-any.whl"
    WheelName name;
    std::uint64_t size = 0;
    std::string sha256;          ///< hex, of the wheel file
    std::string metadata_sha256; ///< hex, of its METADATA (the `.metadata` file)
    std::optional<std::string> requires_python;
};

/// A wheel read from disk: its entry and its METADATA bytes.
struct LocalWheel {
    std::filesystem::path path;
    WheelEntry entry;
    std::string metadata;
};

/// The largest METADATA read_wheel reads (16 MiB): it is a few kilobytes, a long description
/// makes it a few hundred; the size the archive states is checked before anything is read.
inline constexpr std::uint64_t max_metadata_size = std::uint64_t{16} << 20U;

/// Reads a wheel file: its name (PEP 427), size, sha256, and `<name>.dist-info/METADATA`
/// (Name and Version must agree with the file name; Requires-Python is kept). Fails with
/// InvalidArgument naming the file and what is wrong: a bad name, not a zip archive (or a
/// corrupt one), no METADATA, one larger than max_metadata_size, a METADATA that disagrees with
/// the file name.
[[nodiscard]] Result<LocalWheel> read_wheel(const std::filesystem::path& path);

/// One file of the index.
struct Page {
    std::string key; ///< relative to the prefix, e.g. "simple/flocker/"
    std::string content_type;
    std::string body;
    friend bool operator==(const Page&, const Page&) = default;
};

/// The index pages for `wheels` (any order; one entry per file name), in upload order:
/// project pages, then the root pages, then the flat index last. `.metadata` files are not
/// pages: the publisher uploads them with the wheels. Links to wheels are relative, or start
/// with `base_url` (where the wheels are served) when it is given. With `only_projects`, the
/// pages of other projects are left out (the root and the flat index are always there).
[[nodiscard]] std::vector<Page> build_index(const std::vector<WheelEntry>& wheels,
                                            std::string_view base_url = {},
                                            const std::set<std::string>* only_projects = nullptr);
/// The same, over entries held elsewhere (the publisher's manifest), without copying them.
[[nodiscard]] std::vector<Page> build_index(const std::vector<const WheelEntry*>& wheels,
                                            std::string_view base_url = {},
                                            const std::set<std::string>* only_projects = nullptr);

/// Writes the index of `wheels` into the directory `dir` (`ci-wheelhouse index`): each wheel's
/// `<wheel>.metadata`, then the pages of build_index (a page `d/` only as `d/index.html`). Never
/// follows a symbolic link: each file is written to a temporary file and renamed over its name
/// (a link of that name is replaced, not written through), and a directory of the index that is
/// a link, or a file, is refused. A `.metadata` file that cannot be written is left out of the
/// pages. Fails (NotFound, Io) when `dir` cannot be opened (it is never created); otherwise
/// returns the files that could not be written, one Io error each naming it (none: complete).
[[nodiscard]] Result<std::vector<Error>> write_local_index(const std::filesystem::path& dir,
                                                           const std::vector<LocalWheel>& wheels,
                                                           std::string_view base_url = {});

/// The pip.conf that makes pip install from the wheelhouse at `url` (its flat index page,
/// ".../PREFIX/index"; a URL ending in "/" gets "index" appended).
[[nodiscard]] std::string pip_conf(std::string_view url);

} // namespace ci::wheelhouse
