#include "ci/core/hardening.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <sys/prctl.h>

namespace ci {

namespace {

bool contains_word(std::string_view name, std::string_view word) {
    return std::ranges::search(name, word, [](char a, char b) {
               return (a >= 'a' && a <= 'z' ? static_cast<char>(a - 'a' + 'A') : a) == b;
           }).begin() != name.end();
}

} // namespace

bool is_secret_variable(std::string_view name) noexcept {
    return name == "LIBCI_CONFIG" || name == "CI_WORKER_SECRET" || name == "CI_GIT_TOKEN" ||
           name == "AWS_SECRET_ACCESS_KEY" || name == "AWS_SESSION_TOKEN" ||
           contains_word(name, "SECRET") || contains_word(name, "TOKEN") ||
           contains_word(name, "PASSWORD") || contains_word(name, "PASSWD");
}

Result<int> protect_secrets() {
    // Fields 50 and 51 of /proc/self/stat: where the initial environment block starts and ends.
    std::ifstream in("/proc/self/stat");
    std::string line;
    if (!std::getline(in, line)) {
        return fail(ErrorCode::Io, "read /proc/self/stat");
    }
    const auto close = line.rfind(')');
    std::istringstream fields(close == std::string::npos ? std::string() : line.substr(close + 2));
    std::vector<std::string> tokens{std::istream_iterator<std::string>(fields),
                                    std::istream_iterator<std::string>()};
    constexpr std::size_t env_start_field = 50;
    constexpr std::size_t first_field = 3; // the state, right after ") "
    if (tokens.size() < env_start_field - first_field + 2) {
        return fail(ErrorCode::Io, "/proc/self/stat: no env_start/env_end fields");
    }
    const auto start =
        static_cast<std::uintptr_t>(std::stoull(tokens[env_start_field - first_field]));
    const auto end =
        static_cast<std::uintptr_t>(std::stoull(tokens[env_start_field - first_field + 1]));
    // The entries environ still points into the initial block (all of them, this early in main),
    // collected first: setenv changes environ.
    std::vector<char*> entries;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        const auto address = reinterpret_cast<std::uintptr_t>(*entry);
        if (address < start || address >= end) {
            continue;
        }
        const std::string_view text(*entry);
        const auto equals = text.find('=');
        if (equals != std::string_view::npos && is_secret_variable(text.substr(0, equals))) {
            entries.push_back(*entry);
        }
    }
    int scrubbed = 0;
    for (char* entry : entries) {
        const std::string_view text(entry);
        const auto equals = text.find('=');
        const std::string name(text.substr(0, equals));
        // getenv keeps answering: the value moves to the heap first.
        const std::string value(text.substr(equals + 1));
        ::setenv(name.c_str(), value.c_str(), 1);
        std::memset(entry, 0, text.size());
        ++scrubbed;
    }
    if (::prctl(PR_SET_DUMPABLE, 0) != 0) {
        return fail(ErrorCode::Unsupported,
                    fmt::format("PR_SET_DUMPABLE: {}", std::strerror(errno)),
                    errno);
    }
    return scrubbed;
}

} // namespace ci
