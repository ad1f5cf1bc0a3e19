#pragma once

/// \file
/// libci's version, the versions of the libraries it runs on, and process-wide initialisation.

#include <string>
#include <string_view>
#include <vector>

#include <ci/core/error.h>

namespace ci {

/// libci's version, e.g. "0.1.0".
[[nodiscard]] std::string_view version() noexcept;

/// One runtime library and the version actually loaded (not the one compiled against).
struct LibraryVersion {
    std::string name;
    std::string version;
};

/// The versions of libcurl, OpenSSL and libgit2 loaded into this process, in that order.
[[nodiscard]] std::vector<LibraryVersion> library_versions();

/// Initialises libcurl for the whole process. Call it once from main() before any thread starts
/// (libcurl's global init is not thread-safe); later calls do nothing. libgit2 starts by itself
/// on the git module's first use. Fails naming the library that could not start.
[[nodiscard]] Status initialize();

} // namespace ci
