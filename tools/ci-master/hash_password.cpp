// `ci-master hash-password [--pbkdf2]`

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <ci/core/password.h>

#include "ci-master/commands.h"

namespace ci::tools::master {

namespace {

struct HashPasswordCommand {
    bool pbkdf2 = false;
};

// Turns the terminal's echo off for as long as it lives.
class NoEcho {
public:
    explicit NoEcho(int fd) : fd_(fd) {
        if (tcgetattr(fd_, &saved_) == 0) {
            termios quiet = saved_;
            quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
            restore_ = tcsetattr(fd_, TCSAFLUSH, &quiet) == 0;
        }
    }
    ~NoEcho() {
        if (restore_) {
            (void)tcsetattr(fd_, TCSAFLUSH, &saved_);
        }
    }
    NoEcho(const NoEcho&) = delete;
    NoEcho& operator=(const NoEcho&) = delete;
    NoEcho(NoEcho&&) = delete;
    NoEcho& operator=(NoEcho&&) = delete;

private:
    int fd_;
    termios saved_{};
    bool restore_ = false;
};

// One line of stdin without its line ending; nullopt at the end of input.
std::optional<std::string> read_line() {
    std::string line;
    if (!std::getline(std::cin, line)) {
        return std::nullopt;
    }
    if (line.ends_with('\r')) {
        line.pop_back();
    }
    return line;
}

// The password: asked twice on a terminal (no echo), else stdin's first line.
std::optional<std::string> read_password() {
    if (isatty(STDIN_FILENO) == 0) {
        auto line = read_line();
        if (!line) {
            std::fprintf(stderr, "error: no password on stdin\n");
        }
        return line;
    }
    std::string first;
    {
        const NoEcho quiet(STDIN_FILENO);
        std::fprintf(stderr, "Password: ");
        auto line = read_line();
        std::fprintf(stderr, "\nAgain: ");
        auto again = read_line();
        std::fprintf(stderr, "\n");
        if (!line || !again) {
            std::fprintf(stderr, "error: no password\n");
            return std::nullopt;
        }
        if (*line != *again) {
            std::fprintf(stderr, "error: the two passwords differ; nothing was hashed\n");
            return std::nullopt;
        }
        first = std::move(*line);
    }
    return first;
}

int run_hash_password(const HashPasswordCommand& command) {
    const auto password = read_password();
    if (!password) {
        return ExitFailure;
    }
    if (password->empty()) {
        std::fprintf(stderr, "error: the password is empty\n");
        return ExitFailure;
    }
    auto hash = crypto::hash_password(*password,
                                      command.pbkdf2 ? crypto::PasswordHash::Kind::Pbkdf2Sha256
                                                     : crypto::PasswordHash::Kind::Scrypt);
    if (!hash) {
        print_error(hash.error());
        return ExitError;
    }
    std::printf("%s\n", crypto::format_password_hash(*hash).c_str());
    return ExitOk;
}

} // namespace

void setup_hash_password(CLI::App& app, Runner& runner) {
    auto command = std::make_shared<HashPasswordCommand>();
    auto* sub = app.add_subcommand(
        "hash-password",
        "Print the hash of a password for the config's auth.users (docs/config.md):\n"
        "  auth:\n"
        "    users:\n"
        "      - user: alice\n"
        "        password_hash: '$scrypt$ln=15,r=8,p=1$...'\n"
        "On a terminal it asks for the password twice without echoing it; otherwise it reads\n"
        "the first line of stdin (`ci-master hash-password < file`). Never on the command\n"
        "line, where other users of the machine could see it. The hash is scrypt (N=2^15,\n"
        "r=8, p=1: about 0.1 s and 32 MiB per login) with a random salt, or PBKDF2-HMAC-SHA256\n"
        "with 600,000 iterations (--pbkdf2).\n"
        "Exit status: 0 printed, 1 no password, an empty one, or two that differ, 3 an error.");
    sub->add_flag("--pbkdf2",
                  command->pbkdf2,
                  "PBKDF2-HMAC-SHA256 instead of scrypt (for FIPS-minded setups)");
    sub->callback(
        [&runner, command] { runner = [command] { return run_hash_password(*command); }; });
}

} // namespace ci::tools::master
