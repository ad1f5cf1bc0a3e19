#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <glob.h>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <system_error>
#include <unistd.h>
#include <utility>

#include <fmt/format.h>
#include <sys/stat.h>

#include <ci/build/runner.h>
#include <ci/build/work_slots.h>
#include <ci/config/placeholders.h>
#include <ci/core/log.h>
#include <ci/core/process.h>
#include <ci/git/checkout.h>

#include "build/steps.h"

namespace ci::build {

namespace {

using Clock = std::chrono::steady_clock;

constexpr auto success = BuildResult::Success;
constexpr auto failure = BuildResult::Failure;
constexpr auto exception = BuildResult::Exception;
constexpr auto cancelled = BuildResult::Cancelled;

// A step may write this much to CI_PROPERTIES; more is reported and ignored, so that a runaway
// step cannot make the runner hold an arbitrary file in memory.
constexpr std::streamsize max_properties_size = 1 << 20;

std::string short_id(const std::string& id) {
    return id.substr(0, 12);
}

// `text` safe for a build log: without the git token, even where redact()'s patterns would not
// find it (the caller need not have registered it with log::add_secret).
std::string scrub(std::string_view text, const std::string& token) {
    std::string out = log::redact(text);
    if (token.empty()) {
        return out;
    }
    for (auto at = out.find(token); at != std::string::npos; at = out.find(token, at)) {
        out.replace(at, token.size(), "[redacted]");
    }
    return out;
}

// What a step's test_results glob found.
struct Matches {
    std::vector<std::filesystem::path> paths; // sorted
    std::vector<std::string> problems;        // one line each: what was left out and why
};

// At most this many files are read for one step's test_results.
constexpr std::size_t max_test_files = 1000;

// The regular files (not symlinks) `pattern` matches under `cwd` that are inside `root` once
// every symlink on their way is resolved: a link in the checkout cannot show a file of the
// worker's to the master.
Matches glob_files(const std::filesystem::path& root,
                   const std::filesystem::path& cwd,
                   const std::string& pattern) {
    Matches out;
    glob_t found{};
    const std::string full = (cwd / pattern).string();
    const int status = ::glob(full.c_str(), GLOB_NOSORT, nullptr, &found);
    std::vector<std::filesystem::path> candidates;
    if (status == 0) {
        for (std::size_t i = 0; i < found.gl_pathc; ++i) {
            candidates.emplace_back(found.gl_pathv[i]);
        }
    }
    ::globfree(&found);
    std::ranges::sort(candidates);
    std::error_code error;
    const auto real_root = std::filesystem::canonical(root, error);
    for (const auto& path : candidates) {
        const auto shown = path.lexically_relative(root).string();
        const auto status_of = std::filesystem::symlink_status(path, error);
        if (error || !std::filesystem::is_regular_file(status_of)) {
            out.problems.push_back(shown + ": not a regular file (symlinks are not followed)");
            continue;
        }
        const auto real = std::filesystem::canonical(path, error);
        const auto inside = real.lexically_relative(real_root);
        if (error || inside.empty() || *inside.begin() == "..") {
            out.problems.push_back(shown + ": outside the work directory");
            continue;
        }
        if (out.paths.size() >= max_test_files) {
            out.problems.push_back(
                fmt::format("more than {} files match: the rest are not read", max_test_files));
            break;
        }
        out.paths.push_back(path);
    }
    return out;
}

// The contents of `path`, refused when larger than `limit`.
Result<std::string> read_file(const std::filesystem::path& path, std::size_t limit) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return fail(ErrorCode::Io, "cannot be opened");
    }
    std::string text(limit + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(limit + 1));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > limit) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("larger than {} bytes: not read", limit));
    }
    return text;
}

// A step's outcome without an exit code, tests or properties.
StepOutcome ended(BuildResult result, std::string description) {
    StepOutcome out;
    out.result = result;
    out.description = std::move(description);
    return out;
}

// A step's log files (StepSpec::logfiles), followed while it runs: what each gains is sent,
// in chunks of at most 64 KiB, up to max_logfile_size bytes of each.
class LogFiles {
public:
    using Send = std::function<void(const std::string& name, std::string_view text)>;
    using Note = std::function<void(const std::string& line)>;

    // Where each file stands as the step starts: a file an earlier build left is not sent
    // again (unless the step replaces or truncates it).
    LogFiles(std::filesystem::path root,
             const std::filesystem::path& cwd,
             const std::map<std::string, std::string>& files)
        : root_(std::move(root)) {
        for (const auto& [name, file] : files) {
            Followed followed{name, cwd / file};
            struct stat info {};
            if (::lstat(followed.path.c_str(), &info) == 0 && S_ISREG(info.st_mode)) {
                followed.device = info.st_dev;
                followed.inode = info.st_ino;
                followed.offset = info.st_size;
            }
            files_.push_back(std::move(followed));
        }
    }

    // Sends what the files gained: at most a few MiB each, or, with `to_end`, all there is.
    void read(bool to_end, const Send& send, const Note& note) {
        for (auto& file : files_) {
            if (!file.done) {
                read(file, to_end, send, note);
            }
        }
    }

private:
    struct Followed {
        std::string name;
        std::filesystem::path path;
        dev_t device = 0;
        ino_t inode = 0;
        off_t offset = 0;
        std::size_t sent = 0;
        bool done = false; // refused, or its cap reached
    };

    void read(Followed& file, bool to_end, const Send& send, const Note& note) const {
        const auto shown = file.path.lexically_relative(root_).string();
        struct stat info {};
        if (::lstat(file.path.c_str(), &info) != 0) {
            return; // not there (yet)
        }
        if (!S_ISREG(info.st_mode)) {
            note(fmt::format("logfiles: {} ({}): not a regular file (symlinks are not "
                             "followed); not read",
                             file.name,
                             shown));
            file.done = true;
            return;
        }
        std::error_code error;
        const auto real = std::filesystem::canonical(file.path, error);
        const auto real_root = std::filesystem::canonical(root_, error);
        const auto inside = real.lexically_relative(real_root);
        if (error || inside.empty() || *inside.begin() == "..") {
            note(fmt::format(
                "logfiles: {} ({}): outside the work directory; not read", file.name, shown));
            file.done = true;
            return;
        }
        const int fd = ::open(file.path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            return;
        }
        struct stat opened {};
        if (::fstat(fd, &opened) == 0) {
            if (opened.st_dev != file.device || opened.st_ino != file.inode) {
                file.device = opened.st_dev; // a new file: from its start
                file.inode = opened.st_ino;
                file.offset = 0;
            } else if (opened.st_size < file.offset) {
                file.offset = 0; // truncated: from its start again
            }
        }
        constexpr std::size_t chunk = 65536;
        const std::size_t budget = to_end ? max_logfile_size : std::size_t{4} * 1024 * 1024;
        std::size_t read_now = 0;
        std::string buffer(chunk, '\0');
        while (read_now < budget) {
            const std::size_t want =
                std::min({chunk, budget - read_now, max_logfile_size - file.sent});
            if (want == 0) {
                note(fmt::format("logfiles: {}: larger than {} MiB; the rest is not sent",
                                 file.name,
                                 max_logfile_size / (std::size_t{1024} * 1024)));
                file.done = true;
                break;
            }
            const ssize_t n = ::pread(fd, buffer.data(), want, file.offset);
            if (n <= 0) {
                break;
            }
            const auto size = static_cast<std::size_t>(n);
            send(file.name, std::string_view(buffer.data(), size));
            file.offset += n;
            file.sent += size;
            read_now += size;
        }
        ::close(fd);
    }

    std::filesystem::path root_;
    std::vector<Followed> files_;
};

// One build in progress: the spec, the observer and what has happened so far.
class Build {
public:
    Build(const BuildSpec& spec,
          const RunnerOptions& options,
          const BuildObserver& observer,
          std::stop_token stop)
        : spec_(spec), options_(options), observer_(observer), stop_(std::move(stop)),
          slots_(options.slots ? options.slots : std::make_shared<WorkSlots>(options.work_root)) {
        if (spec.timeout.count() > 0) {
            deadline_ = Clock::now() + spec.timeout;
        }
        properties_ = spec.properties;
    }

    BuildOutcome run() {
        if (checkout()) {
            // Once a step (or the timeout) ends the build, only always_run steps still run, and
            // none after a stop request: cancelling means now.
            bool halted = false;
            for (std::size_t i = 0; i < spec_.steps.size(); ++i) {
                const auto& next = spec_.steps[i];
                const int number = static_cast<int>(i) + 1;
                halted = halted || !before_step(next);
                if (!halted) {
                    halted = !step(number, next, false);
                } else if (next.always_run && !stop_.stop_requested()) {
                    (void)step(number, next, true);
                }
            }
        }
        if (lease_) {
            std::error_code ignored;
            std::filesystem::remove(properties_file_, ignored);
        }
        return std::move(outcome_);
    }

private:
    void started(int step, const std::string& name) {
        if (observer_.step_started) {
            observer_.step_started(step, name);
        }
    }

    void output(int step, std::string_view text) {
        if (observer_.output && !text.empty()) {
            observer_.output(step, text);
        }
    }

    void finished(int step, const StepOutcome& outcome) {
        if (observer_.step_finished) {
            observer_.step_finished(step, outcome);
        }
    }

    // Notes a result for the build: the worst one counts, and the message goes with the event
    // that decided the result (the first failure) or with what ended the build.
    void note(BuildResult result, std::string message, bool ends_build = false) {
        const bool worse = ci::worse(outcome_.result, result) != outcome_.result;
        if (worse) {
            outcome_.result = result;
        }
        if (worse || ends_build) {
            outcome_.message = std::move(message);
        }
    }

    // Leases the build's work directory (step 0). Returns whether it has one.
    bool lease_work_dir() {
        auto lease = slots_->lease(spec_.builder);
        if (!lease) {
            return checkout_error(fmt::format(
                "lease a work directory for builder {}: {}", spec_.builder, lease.error().message));
        }
        lease_ = std::move(*lease);
        work_dir_ = lease_->directory();
        properties_file_ = lease_->properties_file();
        return true;
    }

    // Step 0 of a builder without a repository: a work directory, emptied. Returns whether the
    // build goes on.
    bool empty_work_dir() {
        started(0, "workdir");
        if (!lease_work_dir()) {
            return false;
        }
        // Each build starts empty: what an earlier build left is not this build's input. Only
        // the directory's entries go (symlinks themselves, never what they point to).
        std::error_code error;
        for (std::filesystem::directory_iterator entry(work_dir_, error), end;
             !error && entry != end;
             entry.increment(error)) {
            std::filesystem::remove_all(entry->path(), error);
            if (error) {
                return checkout_error(
                    fmt::format("empty {}: {}", entry->path().string(), error.message()));
            }
        }
        if (error) {
            return checkout_error(fmt::format("empty {}: {}", work_dir_.string(), error.message()));
        }
        output(0, fmt::format("no repository: the steps run in {}, emptied\n", work_dir_.string()));
        finished(0, ended(success, "an empty work directory"));
        outcome_.result = success;
        return true;
    }

    // Step 0. Returns whether the build goes on.
    bool checkout() {
        if (spec_.url.empty()) {
            return empty_work_dir();
        }
        started(0, "checkout");
        std::string text =
            fmt::format("checking out {} {}", spec_.is_tag ? "tag" : "branch", spec_.branch);
        if (!spec_.revision.empty()) {
            text += fmt::format(" at {}", spec_.revision);
        }
        text += fmt::format(" from {}", scrub(spec_.url, options_.git_token));
        if (spec_.merge_target) {
            text += fmt::format(", merging {} into it", *spec_.merge_target);
            if (spec_.target_revision) {
                text += fmt::format(" at {} (pinned by the build that triggered this one)",
                                    *spec_.target_revision);
            }
        }
        output(0, text + "\n");

        git::CheckoutOptions options;
        options.url = spec_.url;
        options.cache_dir = options_.cache_dir;
        options.branch = spec_.branch;
        options.is_tag = spec_.is_tag;
        if (!spec_.revision.empty()) {
            options.revision = spec_.revision;
        }
        options.target = spec_.merge_target;
        options.target_revision = spec_.target_revision;
        options.identity = options_.identity;
        options.token = options_.git_token;
        options.ssh_key = options_.ssh_key;
        // The slot is the worker's: a step that deleted its .git does not lock it for good.
        options.owned_work_dir = true;

        // The slot is this build's until run_build returns: no other build checks out there.
        if (!lease_work_dir()) {
            return false;
        }
        auto result = git::checkout(work_dir_, options);
        if (!result) {
            return checkout_error(result.error().to_string());
        }

        const auto& merge = result->merge;
        auto& record = outcome_.checkout;
        record.branch_tip = merge.branch_tip;
        record.target = result->target.value_or("");
        record.target_tip = result->target ? merge.target_tip : "";
        record.merge_commit = merge.merge_commit;
        record.revision = result->checked_out;
        record.conflicts = merge.conflicts;

        text = fmt::format("branch tip   {}\n", record.branch_tip);
        if (result->target) {
            text += fmt::format("target tip   {} ({})\n", record.target_tip, record.target);
        }
        if (merge.conflicted()) {
            text += fmt::format("merging {} conflicts in {} path{}:\n",
                                record.target,
                                merge.conflicts.size(),
                                merge.conflicts.size() == 1 ? "" : "s");
            for (const auto& path : merge.conflicts) {
                text += "  " + path + "\n";
            }
        } else if (!record.merge_commit.empty()) {
            text += fmt::format("merge commit {}\n", record.merge_commit);
        } else if (result->target) {
            text += fmt::format("merge commit none: already up to date with {}\n", record.target);
        }
        text += fmt::format("checked out {} in {}\n", record.revision, work_dir_.string());
        output(0, text);
        if (observer_.checked_out) {
            observer_.checked_out(record);
        }

        if (merge.conflicted()) {
            std::string paths;
            for (const auto& path : merge.conflicts) {
                paths += (paths.empty() ? "" : ", ") + path;
            }
            finished(0,
                     ended(failure,
                           fmt::format("merge conflict in {} path{}",
                                       merge.conflicts.size(),
                                       merge.conflicts.size() == 1 ? "" : "s")));
            note(
                failure,
                fmt::format("merging {} into {} conflicts: {}", record.target, spec_.branch, paths),
                true);
            return false;
        }
        finished(0, ended(success, fmt::format("checked out {}", short_id(record.revision))));
        outcome_.result = success;
        return true;
    }

    bool checkout_error(const std::string& message) {
        const std::string text = scrub(message, options_.git_token);
        output(0, "error: " + text + "\n");
        finished(0, ended(exception, text));
        note(exception, "checkout: " + text, true);
        return false;
    }

    // Whether the next step may start: not after a stop or past the deadline.
    bool before_step(const StepSpec& next) {
        if (stop_.stop_requested()) {
            note(cancelled, fmt::format("cancelled before step '{}'", next.name), true);
            return false;
        }
        if (deadline_ && Clock::now() >= *deadline_) {
            note(failure,
                 fmt::format("build timed out after {} before step '{}'",
                             detail::duration_text(spec_.timeout),
                             next.name),
                 true);
            return false;
        }
        return true;
    }

    // Runs trigger step `number`: the master requests the builds and answers. Returns whether
    // the build goes on.
    bool trigger_step(int number, const StepSpec& step) {
        std::string names;
        for (const auto& builder : step.trigger->builders) {
            names += (names.empty() ? "" : ", ") + builder;
        }
        output(number,
               fmt::format("$ trigger {}{}\n", names, step.trigger->wait ? " (waiting)" : ""));
        StepOutcome outcome;
        if (observer_.trigger) {
            auto deadline = deadline_.value_or(Clock::time_point::max());
            if (step.timeout) {
                deadline = std::min(deadline, Clock::now() + *step.timeout);
            }
            outcome = observer_.trigger(number, step, deadline, stop_);
        } else {
            outcome = ended(exception, "no master to ask for triggered builds");
        }
        return answered(number, step, outcome, outcome.result);
    }

    // Logs and reports how step `number`, answered by the master (a trigger or an upload),
    // ended; `effect`: what its failure makes the build. Returns whether the build goes on.
    bool
    answered(int number, const StepSpec& step, const StepOutcome& outcome, BuildResult effect) {
        output(number, fmt::format("-- {}: {}\n", to_string(outcome.result), outcome.description));
        finished(number, outcome);
        if (outcome.result == cancelled) {
            note(cancelled, fmt::format("cancelled during step '{}'", step.name), true);
            return false;
        }
        if (outcome.result != success) {
            note(effect,
                 fmt::format("step '{}': {}", step.name, outcome.description),
                 step.halt_on_failure);
            return !step.halt_on_failure;
        }
        return true;
    }

    // Runs upload step `number`: the worker sends the files, the master stores them (and runs
    // after_upload). Returns whether the build goes on.
    bool upload_step(int number, const StepSpec& step) {
        output(number, fmt::format("$ upload {} to {}\n", step.upload->from, step.upload->to));
        StepOutcome outcome;
        if (auto held = holds_checkout(); !held) {
            outcome = ended(exception, held.error().message);
        } else if (auto from = detail::resolve_workdir(work_dir_, step.upload->from); !from) {
            outcome = ended(exception, from.error().message);
        } else if (auto link = symlink_on_the_way(step.upload->from)) {
            // It could lead out of the checkout: only what the checkout holds is uploaded.
            outcome = ended(failure,
                            fmt::format("{} is a symbolic link: only regular files and "
                                        "directories inside the checkout are uploaded",
                                        link->string()));
        } else if (!observer_.upload) {
            outcome = ended(exception, "no master to send an upload to");
        } else {
            auto deadline = deadline_.value_or(Clock::time_point::max());
            if (step.timeout) {
                deadline = std::min(deadline, Clock::now() + *step.timeout);
            }
            outcome = observer_.upload(number, step, *from, deadline, stop_);
        }
        return answered(
            number, step, outcome, outcome.result == exception ? exception : failure_effect(step));
    }

    // The first symbolic link among the components of `relative` (under the work directory),
    // if any.
    std::optional<std::filesystem::path> symlink_on_the_way(const std::string& relative) const {
        auto at = work_dir_;
        for (const auto& part : std::filesystem::path(relative).lexically_normal()) {
            if (part.empty() || part == ".") {
                continue;
            }
            at /= part;
            std::error_code error;
            if (std::filesystem::is_symlink(std::filesystem::symlink_status(at, error))) {
                return at;
            }
        }
        return std::nullopt;
    }

    // What a failure of `step` makes the build.
    static BuildResult failure_effect(const StepSpec& step) {
        if (step.flunk_on_failure) {
            return failure;
        }
        return step.warn_on_failure ? BuildResult::Warnings : success;
    }

    // Runs step `number`; `after_halt`: an always_run step after the build ended, which the
    // build's deadline does not stop. Returns whether the build goes on.
    bool step(int number, const StepSpec& step, bool after_halt) {
        started(number, step.name);
        if (step.trigger) {
            return trigger_step(number, step);
        }
        if (step.upload) {
            return upload_step(number, step);
        }
        // An always_run step after the build ended does not take over the build's message.
        const bool halts = step.halt_on_failure && !after_halt;

        const auto cannot_start = [&](const std::string& why, BuildResult result = exception) {
            output(number, "error: " + why + "\n");
            finished(number, ended(result, why));
            note(result == exception ? exception : failure_effect(step),
                 fmt::format("step '{}' could not start: {}", step.name, why),
                 halts);
            return !step.halt_on_failure;
        };

        auto filled = fill_in(step);
        if (!filled) {
            output(number, detail::header_line(step.command, step.workdir, step.timeout));
            return cannot_start(filled.error().message, failure);
        }
        const StepSpec& run = *filled;
        output(number, detail::header_line(run.command, run.workdir, run.timeout));

        // Whatever happened since the checkout, the step runs on this build's tree or not at
        // all: a build must never report on a tree it did not check out.
        if (auto held = holds_checkout(); !held) {
            const auto& why = held.error().message;
            output(number, "error: " + why + "\n");
            finished(number, ended(exception, why));
            note(exception, fmt::format("step '{}' did not start: {}", step.name, why), true);
            return false;
        }

        auto cwd = detail::resolve_workdir(work_dir_, run.workdir);
        if (!cwd) {
            return cannot_start(cwd.error().message);
        }
        std::error_code error;
        std::filesystem::create_directories(*cwd, error);
        if (error) {
            return cannot_start(fmt::format("create {}: {}", cwd->string(), error.message()));
        }
        {
            std::ofstream truncate(properties_file_, std::ios::trunc);
            if (!truncate) {
                return cannot_start(fmt::format("create {}", properties_file_.string()));
            }
        }
        if (options_.step_user) {
            // The step user's to write: the checkout (once a build) and CI_PROPERTIES.
            if (auto given = hand_over(*options_.step_user); !given) {
                return cannot_start(given.error().message);
            }
        }

        ProcessSpec process;
        process.argv = run.command;
        process.cwd = cwd->string();
        process.env = environment(run);
        process.unset_env = options_.unset_env;
        process.run_as = options_.step_user;
        process.cgroups = options_.cgroups;
        // The work directory stays locked until nothing of the step runs, even if the worker
        // (a master with local workers) dies before the step's processes: a retried build
        // cannot start in it meanwhile.
        process.hold_fd = lease_ ? lease_->lock_fd() : -1;
        // A property is standard output alone; without one, the log keeps both streams'
        // order as the kernel gave it.
        const bool capture = !step.set_property.empty();
        process.merge_stderr = !capture;
        process.kill_grace = step.grace;
        process.inactivity_timeout = step.inactivity_timeout;
        process.stop = stop_;
        bool build_deadline = false;
        if (step.timeout) {
            process.timeout = *step.timeout;
        }
        if (deadline_ && !after_halt) {
            // At least 1ms: zero would mean no limit at all.
            const auto left = std::max(
                std::chrono::duration_cast<std::chrono::milliseconds>(*deadline_ - Clock::now()),
                std::chrono::milliseconds(1));
            if (process.timeout.count() == 0 || left < process.timeout) {
                process.timeout = left;
                build_deadline = true;
            }
        }
        bool line_open = false;
        std::string captured;
        // Known secrets never reach the log, even split across chunks (the redactor holds back
        // a possible start of one until the next chunk).
        std::vector<std::string> secrets = options_.log_secrets;
        secrets.push_back(options_.git_token);
        log::StreamRedactor redactor(secrets);
        process.on_output = [&](OutputStream stream, std::string_view chunk) {
            line_open = !chunk.empty() ? chunk.back() != '\n' : line_open;
            if (capture && stream == OutputStream::Stdout &&
                captured.size() <= detail::max_property_value) {
                captured.append(chunk.substr(0, detail::max_property_value + 1 - captured.size()));
            }
            output(number, redactor.feed(chunk));
        };

        std::optional<LogFiles> logfiles;
        // Log files are redacted as the log is, one redactor per file.
        std::map<std::string, log::StreamRedactor> logfile_redactors;
        const LogFiles::Send send = [&](const std::string& name, std::string_view text) {
            if (observer_.logfile_output) {
                auto& file_redactor = logfile_redactors.try_emplace(name, secrets).first->second;
                observer_.logfile_output(number, name, file_redactor.feed(text));
            }
        };
        const LogFiles::Note say = [&](const std::string& line) {
            output(number, fmt::format("{}{}\n", line_open ? "\n" : "", line));
            line_open = false;
        };
        if (!run.logfiles.empty()) {
            logfiles.emplace(work_dir_, *cwd, run.logfiles);
            process.tick_interval = std::chrono::milliseconds(500);
            process.on_tick = [&] { logfiles->read(false, send, say); };
        }

        auto result = run_process(process);
        output(number, redactor.finish());
        if (logfiles) {
            logfiles->read(true, send, say);
            for (auto& [name, file_redactor] : logfile_redactors) {
                if (auto rest = file_redactor.finish(); !rest.empty()) {
                    observer_.logfile_output(number, name, rest);
                }
            }
        }
        if (!result) {
            return cannot_start(result.error().message);
        }
        read_properties(number);

        StepOutcome outcome;
        outcome.description = result->describe();
        if (result->signal == 0) {
            outcome.exit_code = result->exit_code;
        }
        using Termination = ProcessResult::Termination;
        if (result->success()) {
            outcome.result = success;
        } else if (result->termination == Termination::Cancelled) {
            outcome.result = cancelled;
        } else {
            outcome.result = failure;
        }
        std::string after = line_open ? "\n" : "";
        if (outcome.result == success && capture) {
            auto value = detail::property_value(step.set_property, captured);
            if (!value) {
                outcome.result = failure;
                outcome.description = value.error().message;
                after += "error: " + value.error().message + "\n";
            } else {
                properties_[step.set_property] = *value;
                outcome.properties[step.set_property] = std::move(*value);
                after += fmt::format("set_property: {} = \"{}\"\n",
                                     step.set_property,
                                     detail::shown_value(properties_[step.set_property]));
            }
        }
        if (!step.test_results.empty()) {
            outcome.tests = read_test_results(*cwd, step.test_results, after);
        }
        output(number, fmt::format("{}-- {}\n", after, outcome.description));
        finished(number, outcome);

        if (outcome.result == cancelled) {
            note(cancelled, fmt::format("cancelled during step '{}'", step.name), true);
            return false;
        }
        if (result->termination == Termination::TimedOut && build_deadline) {
            note(failure,
                 fmt::format("build timed out after {} during step '{}'",
                             detail::duration_text(spec_.timeout),
                             step.name),
                 true);
            return false;
        }
        if (outcome.result == failure) {
            note(failure_effect(step),
                 fmt::format("step '{}' failed: {}", step.name, outcome.description),
                 halts);
            return !step.halt_on_failure;
        }
        return true;
    }

    // `step` with its placeholders filled in (argv, env values, workdir).
    Result<StepSpec> fill_in(const StepSpec& step) const {
        config::PlaceholderValues values;
        values.branch = spec_.branch;
        values.revision = outcome_.checkout.revision;
        values.build_id = spec_.build_id;
        values.properties = properties_;
        StepSpec out = step;
        // A shell command's text is left to the shell (config/placeholders.h).
        const std::size_t first = config::is_shell_command(out.command) ? out.command.size() : 0;
        for (std::size_t i = first; i < out.command.size(); ++i) {
            auto filled = config::fill_placeholders(out.command[i], values);
            if (!filled) {
                return fail(filled.error().code, "run: " + filled.error().message);
            }
            out.command[i] = std::move(*filled);
        }
        for (auto& [name, value] : out.env) {
            auto filled = config::fill_placeholders(value, values);
            if (!filled) {
                return fail(filled.error().code,
                            fmt::format("env.{}: {}", name, filled.error().message));
            }
            value = std::move(*filled);
        }
        auto workdir = config::fill_placeholders(out.workdir, values);
        if (!workdir) {
            return fail(workdir.error().code, "workdir: " + workdir.error().message);
        }
        out.workdir = std::move(*workdir);
        return out;
    }

    // Reads the JUnit files `pattern` matches under `cwd` (inside the work directory only),
    // adding a line per problem and a summary to `log`. nullopt when no file was read.
    std::optional<TestResults> read_test_results(const std::filesystem::path& cwd,
                                                 const std::string& pattern,
                                                 std::string& log) const {
        auto files = glob_files(work_dir_, cwd, pattern);
        for (const auto& problem : files.problems) {
            log += "test_results: " + problem + "\n";
        }
        if (files.paths.empty()) {
            log += fmt::format("test_results: no file matches {}\n", pattern);
            return std::nullopt;
        }
        TestResults total;
        int read = 0;
        for (const auto& path : files.paths) {
            auto text = read_file(path, max_junit_size);
            auto parsed = text ? parse_junit(*text) : Result<TestResults>(fail(text.error()));
            if (!parsed) {
                log += fmt::format("test_results: {}: {}\n",
                                   path.lexically_relative(work_dir_).string(),
                                   parsed.error().message);
                continue;
            }
            total.add(*parsed);
            ++read;
        }
        if (read == 0) {
            return std::nullopt;
        }
        log += fmt::format(
            "test results ({} file{}): {}\n", read, read == 1 ? "" : "s", total.summary());
        for (const auto& name : total.failed_tests) {
            log += "  failed: " + name + "\n";
        }
        return total;
    }

    // Whether the work directory is still this build's lease and HEAD there is still the
    // commit the build checked out.
    Status holds_checkout() const {
        if (!lease_) {
            return fail(ErrorCode::Internal, "a step before the checkout leased a directory");
        }
        if (auto held = lease_->check(); !held) {
            return held;
        }
        if (spec_.url.empty()) {
            return {}; // nothing checked out: the lease is all there is to hold
        }
        const auto& revision = outcome_.checkout.revision;
        auto head = git::head_commit(work_dir_);
        if (!head) {
            return fail(ErrorCode::Conflict,
                        fmt::format("the work directory no longer holds this build's checkout "
                                    "of {}: {}",
                                    revision,
                                    head.error().message));
        }
        if (*head != revision) {
            return fail(ErrorCode::Conflict,
                        fmt::format("the work directory {} no longer holds this build's "
                                    "checkout: HEAD is {}, the build checked out {}",
                                    work_dir_.string(),
                                    *head,
                                    revision));
        }
        return {};
    }

    std::map<std::string, std::string> environment(const StepSpec& step) const {
        std::map<std::string, std::string> env = carried_;
        for (const auto& [name, value] : step.env) {
            env[name] = value;
        }
        const auto& checkout = outcome_.checkout;
        env["CI_BUILD_ID"] = std::to_string(spec_.build_id);
        env["CI_BUILDER"] = spec_.builder;
        env["CI_REPOSITORY"] = spec_.repository;
        env["CI_BRANCH"] = spec_.branch;
        env["CI_BRANCH_TIP"] = checkout.branch_tip;
        env["CI_TARGET_BRANCH"] = checkout.target;
        env["CI_TARGET_TIP"] = checkout.target_tip;
        env["CI_MERGE_COMMIT"] = checkout.merge_commit;
        env["CI_REVISION"] = checkout.revision;
        env["CI_WORKDIR"] = work_dir_.string();
        env["CI_PROPERTIES"] = properties_file_.string();
        env["CI_MASTER_URL"] = spec_.master_url;
        env["CI_RESULTS_URL"] = spec_.results_url;
        for (const auto& [name, value] : properties_) {
            env[detail::property_variable(name)] = value;
        }
        return env;
    }

    // Takes what step `number` appended to CI_PROPERTIES into the environment of later steps.
    void read_properties(int number) {
        std::ifstream in(properties_file_, std::ios::binary);
        if (!in) {
            return; // the step removed it: nothing to take
        }
        std::string text(static_cast<std::size_t>(max_properties_size) + 1, '\0');
        in.read(text.data(), max_properties_size + 1);
        text.resize(static_cast<std::size_t>(in.gcount()));
        std::string log;
        if (std::cmp_greater(text.size(), max_properties_size)) {
            text.resize(static_cast<std::size_t>(max_properties_size));
            text.erase(std::min(text.size(), text.rfind('\n') + 1));
            log += fmt::format("CI_PROPERTIES: larger than {} bytes; the rest is ignored\n",
                               max_properties_size);
        }
        auto lines = detail::parse_properties(text);
        for (const auto& problem : lines.problems) {
            log += "CI_PROPERTIES " + problem + "\n";
        }
        if (!lines.values.empty()) {
            // Names only: a value may be a secret.
            std::string names;
            for (auto& [name, value] : lines.values) {
                names += (names.empty() ? "" : ", ") + name;
                carried_[name] = std::move(value);
            }
            log += "CI_PROPERTIES set for later steps: " + names + "\n";
        }
        output(number, log);
    }

    // Makes the work directory (every entry, symlinks themselves not followed) and the
    // properties file the step user's.
    Status hand_over(const RunAs& user) {
        const auto give = [&](const std::filesystem::path& path) -> Status {
            if (::lchown(path.c_str(), user.uid, user.gid) != 0) {
                return fail(ErrorCode::Io,
                            fmt::format("give {} to step_user '{}': {}",
                                        path.string(),
                                        user.name,
                                        std::strerror(errno)),
                            errno);
            }
            return {};
        };
        if (auto given = give(properties_file_); !given) {
            return given;
        }
        if (handed_over_) {
            return {};
        }
        if (auto given = give(work_dir_); !given) {
            return given;
        }
        std::error_code error;
        for (std::filesystem::recursive_directory_iterator it(work_dir_, error), end;
             !error && it != end;
             it.increment(error)) {
            if (auto given = give(it->path()); !given) {
                return given;
            }
        }
        if (error) {
            return fail(ErrorCode::Io,
                        fmt::format("give {} to step_user '{}': {}",
                                    work_dir_.string(),
                                    user.name,
                                    error.message()));
        }
        handed_over_ = true;
        return {};
    }

    const BuildSpec& spec_;
    const RunnerOptions& options_;
    const BuildObserver& observer_;
    std::stop_token stop_;
    std::shared_ptr<WorkSlots> slots_;
    std::optional<WorkLease> lease_; // from the checkout on; released when the build ends
    std::filesystem::path work_dir_;
    std::filesystem::path properties_file_;
    bool handed_over_ = false; // the work directory is the step user's (RunnerOptions::step_user)
    std::optional<Clock::time_point> deadline_;
    std::map<std::string, std::string> carried_; // values from CI_PROPERTIES so far
    // The build's properties: the spec's, and those set_property set so far over them.
    std::map<std::string, std::string> properties_;
    BuildOutcome outcome_;
};

} // namespace

std::vector<StepSpec> step_specs(const config::Builder& builder) {
    std::vector<StepSpec> out;
    out.reserve(builder.steps.size());
    for (const auto& step : builder.steps) {
        out.push_back(StepSpec{
            .name = step.name,
            .command = step.command,
            .env = step.env,
            .workdir = step.workdir,
            .timeout = step.timeout,
            .grace = step.grace,
            .halt_on_failure = step.halt_on_failure,
            .trigger = step.trigger,
            .upload = step.upload,
            .always_run = step.always_run,
            .flunk_on_failure = step.flunk_on_failure,
            .warn_on_failure = step.warn_on_failure,
            .inactivity_timeout = step.inactivity_timeout,
            .set_property = step.set_property,
            .test_results = step.test_results,
            .logfiles = step.logfiles,
        });
    }
    return out;
}

BuildOutcome run_build(const BuildSpec& spec,
                       const RunnerOptions& options,
                       const BuildObserver& observer,
                       std::stop_token stop) {
    return Build(spec, options, observer, std::move(stop)).run();
}

} // namespace ci::build
