#include "ci/core/hardening.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
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
    const auto start = std::stoull(tokens[env_start_field - first_field]);
    const auto end = std::stoull(tokens[env_start_field - first_field + 1]);
    // The kernel's own record of this process's memory: the block is ours to write.
    auto* block = reinterpret_cast<char*>(static_cast<std::uintptr_t>(start));
    const std::size_t size = end > start ? static_cast<std::size_t>(end - start) : 0;
    int scrubbed = 0;
    for (std::size_t at = 0; at < size;) {
        char* entry = block + at;
        const std::size_t length = strnlen(entry, size - at);
        at += length + 1;
        const std::string_view text(entry, length);
        const auto equals = text.find('=');
        if (equals == std::string_view::npos || !is_secret_variable(text.substr(0, equals))) {
            continue;
        }
        const std::string name(text.substr(0, equals));
        if (const char* value = std::getenv(name.c_str());
            value != nullptr && value >= entry && value < entry + length) {
            const std::string copy(value);
            ::setenv(name.c_str(), copy.c_str(), 1);
        }
        std::memset(entry, 0, length);
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
