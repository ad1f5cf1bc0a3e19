#pragma once

// A server process for integration tests (moto_server, s3rver, a ci-master): started with its
// output on a pipe, waited for until it prints a line that says it is ready, stopped (SIGTERM,
// then SIGKILL) when the object goes away.

#include <chrono>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <sys/types.h>

namespace ci::test {

class BackgroundProcess {
public:
    /// Starts `argv` (argv[0] is looked up in PATH) with `env` added to this process's
    /// environment, in its own process group. Throws std::runtime_error when it cannot start.
    explicit BackgroundProcess(std::vector<std::string> argv,
                               const std::map<std::string, std::string>& env = {});
    ~BackgroundProcess();
    BackgroundProcess(const BackgroundProcess&) = delete;
    BackgroundProcess& operator=(const BackgroundProcess&) = delete;

    /// Reads the process's output (stdout and stderr) until a line matches `pattern`; returns
    /// the match, or nullopt when the process exits or `timeout` passes first.
    std::optional<std::smatch> wait_for_line(const std::regex& pattern,
                                             std::chrono::milliseconds timeout);

    /// Everything the process printed so far (for failure messages).
    [[nodiscard]] const std::string& output() const noexcept { return output_; }
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

    /// Stops the process group: SIGTERM, then SIGKILL after `grace`. Idempotent.
    void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(3000));

private:
    pid_t pid_ = -1;
    int output_fd_ = -1;
    std::string output_;
    std::string pending_; // output not yet split into lines
    std::vector<std::string> lines_;
    std::size_t next_line_ = 0;
    std::string last_match_line_; // keeps the string a returned smatch refers to alive
};

/// The full path of `program` in PATH, or nullopt.
std::optional<std::string> find_program(const std::string& program);

} // namespace ci::test
