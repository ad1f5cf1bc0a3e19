#pragma once

// Whether a process a test started is still running, from /proc.

#include <fstream>
#include <string>

#include <sys/types.h>

namespace ci::test {

/// True while process `pid` runs: a zombie (exited, not reaped yet) does not count, though it
/// still answers kill(pid, 0).
inline bool process_running(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) {
        return false;
    }
    const auto close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

} // namespace ci::test
