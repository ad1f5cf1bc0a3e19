#include <algorithm>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include <ci/build/runner.h>
#include <ci/build/work_slots.h>
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
    }

    BuildOutcome run() {
        if (checkout()) {
            for (std::size_t i = 0; i < spec_.steps.size(); ++i) {
                if (!before_step(spec_.steps[i])) {
                    break;
                }
                if (!step(static_cast<int>(i) + 1, spec_.steps[i])) {
                    break;
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
        finished(0, {success, std::nullopt, "an empty work directory"});
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
                     {failure,
                      std::nullopt,
                      fmt::format("merge conflict in {} path{}",
                                  merge.conflicts.size(),
                                  merge.conflicts.size() == 1 ? "" : "s")});
            note(
                failure,
                fmt::format("merging {} into {} conflicts: {}", record.target, spec_.branch, paths),
                true);
            return false;
        }
        finished(0,
                 {success, std::nullopt, fmt::format("checked out {}", short_id(record.revision))});
        outcome_.result = success;
        return true;
    }

    bool checkout_error(const std::string& message) {
        const std::string text = scrub(message, options_.git_token);
        output(0, "error: " + text + "\n");
        finished(0, {exception, std::nullopt, text});
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
            outcome = {exception, std::nullopt, "no master to ask for triggered builds"};
        }
        output(number, fmt::format("-- {}: {}\n", to_string(outcome.result), outcome.description));
        finished(number, outcome);
        if (outcome.result == cancelled) {
            note(cancelled, fmt::format("cancelled during step '{}'", step.name), true);
            return false;
        }
        if (outcome.result != success) {
            note(outcome.result,
                 fmt::format("step '{}': {}", step.name, outcome.description),
                 step.halt_on_failure);
            return !step.halt_on_failure;
        }
        return true;
    }

    // Runs step `number`. Returns whether the build goes on.
    bool step(int number, const StepSpec& step) {
        started(number, step.name);
        if (step.trigger) {
            return trigger_step(number, step);
        }
        output(number, detail::header_line(step.command, step.workdir, step.timeout));

        const auto cannot_start = [&](const std::string& why) {
            output(number, "error: " + why + "\n");
            finished(number, {exception, std::nullopt, why});
            note(exception,
                 fmt::format("step '{}' could not start: {}", step.name, why),
                 step.halt_on_failure);
            return !step.halt_on_failure;
        };

        // Whatever happened since the checkout, the step runs on this build's tree or not at
        // all: a build must never report on a tree it did not check out.
        if (auto held = holds_checkout(); !held) {
            const auto& why = held.error().message;
            output(number, "error: " + why + "\n");
            finished(number, {exception, std::nullopt, why});
            note(exception, fmt::format("step '{}' did not start: {}", step.name, why), true);
            return false;
        }

        auto cwd = detail::resolve_workdir(work_dir_, step.workdir);
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

        ProcessSpec process;
        process.argv = step.command;
        process.cwd = cwd->string();
        process.env = environment(step);
        process.unset_env = options_.unset_env;
        process.merge_stderr = true;
        process.kill_grace = step.grace;
        process.stop = stop_;
        bool build_deadline = false;
        if (step.timeout) {
            process.timeout = *step.timeout;
        }
        if (deadline_) {
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
        process.on_output = [&](OutputStream, std::string_view chunk) {
            line_open = !chunk.empty() ? chunk.back() != '\n' : line_open;
            output(number, chunk);
        };

        auto result = run_process(process);
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
        output(number, fmt::format("{}-- {}\n", line_open ? "\n" : "", outcome.description));
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
            note(failure,
                 fmt::format("step '{}' failed: {}", step.name, outcome.description),
                 step.halt_on_failure);
            return !step.halt_on_failure;
        }
        return true;
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
        for (const auto& [name, value] : spec_.properties) {
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

    const BuildSpec& spec_;
    const RunnerOptions& options_;
    const BuildObserver& observer_;
    std::stop_token stop_;
    std::shared_ptr<WorkSlots> slots_;
    std::optional<WorkLease> lease_; // from the checkout on; released when the build ends
    std::filesystem::path work_dir_;
    std::filesystem::path properties_file_;
    std::optional<Clock::time_point> deadline_;
    std::map<std::string, std::string> carried_; // values from CI_PROPERTIES so far
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
