#include "ci/sched/scheduler.h"

#include <algorithm>
#include <ctime>
#include <fnmatch.h>
#include <regex>
#include <set>
#include <tuple>
#include <utility>

#include <fmt/format.h>

#include "git/ref_name.h"

namespace ci::sched {

namespace {

// A branch, tag or path pattern: a glob ('*' matches '/' too), or a /regular expression/.
class Pattern {
public:
    static Result<Pattern> compile(const std::string& text) {
        Pattern pattern;
        pattern.text_ = text;
        if (text.size() >= 2 && text.front() == '/' && text.back() == '/') {
            try {
                pattern.regex_ =
                    std::regex(text.substr(1, text.size() - 2), std::regex::ECMAScript);
            } catch (const std::regex_error& error) {
                return fail(ErrorCode::ConfigInvalid,
                            fmt::format("pattern {}: {}", text, error.what()));
            }
        }
        return pattern;
    }

    [[nodiscard]] bool matches(const std::string& name) const {
        if (regex_) {
            return std::regex_search(name, *regex_);
        }
        return ::fnmatch(text_.c_str(), name.c_str(), 0) == 0;
    }

private:
    std::string text_;
    std::optional<std::regex> regex_;
};

Result<std::vector<Pattern>> compile_all(const std::vector<std::string>& texts) {
    std::vector<Pattern> out;
    for (const auto& text : texts) {
        auto pattern = Pattern::compile(text);
        if (!pattern) {
            return fail(pattern.error());
        }
        out.push_back(std::move(*pattern));
    }
    return out;
}

bool any_matches(const std::vector<Pattern>& patterns, const std::string& name) {
    return std::ranges::any_of(patterns, [&](const Pattern& p) { return p.matches(name); });
}

struct BranchRule {
    std::string name;
    std::string repository;
    std::vector<std::string> builders;
    std::vector<Pattern> branches;
    std::vector<Pattern> tags;
    std::vector<Pattern> important_files;
    std::chrono::seconds tree_stable_timer{};
    std::chrono::seconds max_wait{};
    bool collapsible = false;

    [[nodiscard]] bool important(const Change& change) const {
        if (important_files.empty() || !change.files) {
            return true;
        }
        return std::ranges::any_of(*change.files, [&](const std::string& file) {
            return any_matches(important_files, file);
        });
    }
};

struct ForceRule {
    std::string name;
    std::vector<std::string> builders;
    bool collapsible = false;
};

struct PeriodicRule {
    std::string name;
    std::string repository;
    std::string branch;
    std::vector<std::string> builders;
    std::optional<std::chrono::seconds> interval;
    std::optional<std::chrono::minutes> at; ///< minutes after midnight, UTC
    bool collapsible = false;

    // The first run strictly after `now`.
    [[nodiscard]] WallTime next_after(WallTime now) const {
        if (interval) {
            return now + *interval;
        }
        const auto day = std::chrono::floor<std::chrono::days>(now);
        WallTime run = day + *at;
        if (run <= now) {
            run += std::chrono::days(1);
        }
        return run;
    }
};

std::string lookup(const std::map<std::string, std::string>& map, const std::string& key) {
    const auto it = map.find(key);
    return it == map.end() ? std::string() : it->second;
}

using WaitKey = std::tuple<std::string, std::string, std::string>; // scheduler, repo, branch

} // namespace

struct Scheduler::State {
    std::vector<BranchRule> branch_rules;
    std::vector<ForceRule> force_rules;
    std::vector<PeriodicRule> periodic_rules;
    std::map<std::string, std::string> builder_repositories;
    std::map<std::string, std::string> default_branches;
    std::map<WaitKey, Wait> waits;
    // The same waits by deadline: the next deadline and the due waits without walking them all
    // (a master with 1,000 active branches looks at this on every event).
    std::set<std::pair<WallTime, WaitKey>> by_deadline;
    std::map<std::string, WallTime> next_runs;

    void set_deadline(Wait& wait, const WaitKey& key, WallTime deadline) {
        by_deadline.erase({wait.deadline, key});
        wait.deadline = deadline;
        by_deadline.emplace(deadline, key);
    }

    std::map<WaitKey, Wait>::iterator erase_wait(std::map<WaitKey, Wait>::iterator it) {
        by_deadline.erase({it->second.deadline, it->first});
        return waits.erase(it);
    }

    const BranchRule* branch_rule(const std::string& name) const {
        const auto it = std::ranges::find(branch_rules, name, &BranchRule::name);
        return it == branch_rules.end() ? nullptr : &*it;
    }

    void on_push(const Push& push, WallTime now, std::vector<Action>& actions) {
        if (push.changes.empty()) {
            return;
        }
        const Change& tip = push.changes.back();
        for (const auto& rule : branch_rules) {
            if (rule.repository != tip.repository ||
                !any_matches(tip.is_tag ? rule.tags : rule.branches, tip.branch)) {
                continue;
            }
            const bool important = std::ranges::any_of(
                push.changes, [&](const Change& change) { return rule.important(change); });
            const WaitKey key{rule.name, tip.repository, tip.branch};
            auto it = waits.find(key);
            if (it == waits.end()) {
                if (!important) {
                    continue; // rule 2: an unimportant change never starts a wait
                }
                Wait wait;
                wait.scheduler = rule.name;
                wait.repository = tip.repository;
                wait.branch = tip.branch;
                wait.is_tag = tip.is_tag;
                wait.started = now;
                it = waits.emplace(key, std::move(wait)).first;
            }
            Wait& wait = it->second;
            // Rules 2 and 3: restart the quiet period, within the cap.
            set_deadline(
                wait, key, std::min(now + rule.tree_stable_timer, wait.started + rule.max_wait));
            wait.revision = tip.revision;
            for (const auto& change : push.changes) {
                wait.change_ids.push_back(change.id);
            }
            actions.emplace_back(SaveWait{wait});
        }
    }

    void on_deleted(const RefDeleted& deleted, std::vector<Action>& actions) {
        for (auto it = waits.begin(); it != waits.end();) {
            if (it->second.repository == deleted.repository &&
                it->second.branch == deleted.branch) {
                actions.emplace_back(
                    ClearWait{it->second.scheduler, it->second.repository, it->second.branch});
                it = erase_wait(it);
            } else {
                ++it;
            }
        }
    }

    Status on_force(const ForceRequest& request, std::vector<Action>& actions) const {
        // Which force scheduler offers each builder: the first, in name order.
        std::vector<std::pair<const ForceRule*, std::string>> chosen;
        if (request.builders.empty()) {
            for (const auto& rule : force_rules) {
                for (const auto& builder : rule.builders) {
                    chosen.emplace_back(&rule, builder);
                }
            }
        }
        for (const auto& builder : request.builders) {
            const auto rule = std::ranges::find_if(force_rules, [&](const ForceRule& r) {
                return std::ranges::find(r.builders, builder) != r.builders.end();
            });
            if (rule == force_rules.end()) {
                return fail(
                    ErrorCode::InvalidArgument,
                    fmt::format("force build: no force scheduler offers builder \"{}\"", builder));
            }
            chosen.emplace_back(&*rule, builder);
        }
        if (chosen.empty()) {
            return fail(ErrorCode::InvalidArgument,
                        "force build: no force scheduler is configured");
        }
        std::string reason = request.reason.empty() ? "forced" : "forced: " + request.reason;
        if (!request.who.empty()) {
            reason += fmt::format(" (by {})", request.who);
        }
        for (const auto& [rule, builder] : chosen) {
            RequestBuild build;
            build.scheduler = rule->name;
            build.builder = builder;
            build.repository = request.repository.empty() ? lookup(builder_repositories, builder)
                                                          : request.repository;
            build.branch = request.branch.empty() ? lookup(default_branches, build.repository)
                                                  : request.branch;
            build.revision = request.revision;
            build.reason = reason;
            build.properties = request.properties;
            build.collapsible = rule->collapsible;
            actions.emplace_back(std::move(build));
        }
        return {};
    }

    // Rule 4: every wait whose deadline has passed becomes build requests; periodic schedulers
    // that are due run.
    void fire_due(WallTime now, std::vector<Action>& actions) {
        // The due waits, in key order (the order of the actions does not depend on deadlines).
        std::vector<WaitKey> due;
        for (auto entry = by_deadline.begin(); entry != by_deadline.end() && entry->first <= now;
             ++entry) {
            due.push_back(entry->second);
        }
        std::ranges::sort(due);
        for (const auto& key : due) {
            const auto it = waits.find(key);
            const Wait& wait = it->second;
            const BranchRule* rule = branch_rule(wait.scheduler);
            if (rule == nullptr) {
                continue;
            }
            const std::string reason = fmt::format("{} {} changed ({} change{})",
                                                   wait.is_tag ? "tag" : "branch",
                                                   wait.branch,
                                                   wait.change_ids.size(),
                                                   wait.change_ids.size() == 1 ? "" : "s");
            for (const auto& builder : rule->builders) {
                actions.emplace_back(RequestBuild{rule->name,
                                                  builder,
                                                  wait.repository,
                                                  wait.branch,
                                                  wait.revision,
                                                  wait.change_ids,
                                                  reason,
                                                  {},
                                                  rule->collapsible,
                                                  {},
                                                  0,
                                                  0});
            }
            actions.emplace_back(ClearWait{wait.scheduler, wait.repository, wait.branch});
            erase_wait(it);
        }
        for (const auto& rule : periodic_rules) {
            auto next = next_runs.find(rule.name);
            if (next == next_runs.end()) {
                next = next_runs.emplace(rule.name, rule.next_after(now)).first;
                actions.emplace_back(SavePeriodic{rule.name, next->second});
                continue;
            }
            if (next->second > now) {
                continue;
            }
            // Runs missed while the master was down collapse into this one.
            for (const auto& builder : rule.builders) {
                actions.emplace_back(RequestBuild{rule.name,
                                                  builder,
                                                  rule.repository,
                                                  rule.branch,
                                                  "",
                                                  {},
                                                  "periodic",
                                                  {},
                                                  rule.collapsible,
                                                  {},
                                                  0,
                                                  0});
            }
            next->second = rule.next_after(now);
            actions.emplace_back(SavePeriodic{rule.name, next->second});
        }
    }
};

Scheduler::Scheduler(std::unique_ptr<State> state) : state_(std::move(state)) {}
Scheduler::Scheduler(Scheduler&&) noexcept = default;
Scheduler& Scheduler::operator=(Scheduler&&) noexcept = default;
Scheduler::~Scheduler() = default;

Result<Scheduler> Scheduler::create(const config::Config& config) {
    auto state = std::make_unique<State>();
    for (const auto& [name, builder] : config.builders) {
        state->builder_repositories[name] = builder.repository;
    }
    for (const auto& [name, repository] : config.repositories) {
        state->default_branches[name] = repository.default_branch;
    }
    for (const auto& [name, scheduler] : config.schedulers) {
        switch (scheduler.type) {
        case config::Scheduler::Type::Branch: {
            auto branches = compile_all(scheduler.branches);
            auto tags = compile_all(scheduler.tags);
            auto important = compile_all(scheduler.important_files);
            for (const auto* compiled : {&branches, &tags, &important}) {
                if (!*compiled) {
                    return fail(compiled->error().with_context("scheduler " + name));
                }
            }
            state->branch_rules.push_back(BranchRule{name,
                                                     scheduler.repository,
                                                     scheduler.builders,
                                                     std::move(*branches),
                                                     std::move(*tags),
                                                     std::move(*important),
                                                     scheduler.tree_stable_timer,
                                                     scheduler.max_wait,
                                                     scheduler.collapse_requests});
            break;
        }
        case config::Scheduler::Type::Triggerable:
            // Its builds are requested by trigger steps (the master), never by events.
            break;
        case config::Scheduler::Type::Force:
            state->force_rules.push_back(
                ForceRule{name, scheduler.builders, scheduler.collapse_requests});
            break;
        case config::Scheduler::Type::Periodic: {
            PeriodicRule rule;
            rule.name = name;
            rule.repository = scheduler.repository;
            rule.branch = scheduler.branch.empty() ? state->default_branches[scheduler.repository]
                                                   : scheduler.branch;
            rule.builders = scheduler.builders;
            rule.interval = scheduler.interval;
            if (!scheduler.at.empty()) {
                rule.at = std::chrono::hours(std::stoi(scheduler.at.substr(0, 2))) +
                          std::chrono::minutes(std::stoi(scheduler.at.substr(3, 2)));
            } else if (!scheduler.interval) {
                return fail(ErrorCode::ConfigInvalid,
                            fmt::format("scheduler {}: neither interval nor at", name));
            }
            rule.collapsible = scheduler.collapse_requests;
            state->periodic_rules.push_back(std::move(rule));
            break;
        }
        }
    }
    return Scheduler(std::move(state));
}

void Scheduler::restore(const SavedState& saved, WallTime now) {
    (void)now;
    for (const auto& wait : saved.waits) {
        if (state_->branch_rule(wait.scheduler) != nullptr) {
            const WaitKey key{wait.scheduler, wait.repository, wait.branch};
            if (const auto old = state_->waits.find(key); old != state_->waits.end()) {
                state_->erase_wait(old);
            }
            state_->waits.emplace(key, wait);
            state_->by_deadline.emplace(wait.deadline, key);
        }
    }
    for (const auto& [name, next] : saved.periodic_next_runs) {
        if (std::ranges::find(state_->periodic_rules, name, &PeriodicRule::name) !=
            state_->periodic_rules.end()) {
            state_->next_runs[name] = next;
        }
    }
}

Result<std::vector<Action>> Scheduler::handle(const Event& event, WallTime now) {
    std::vector<Action> actions;
    if (const auto* push = std::get_if<Push>(&event)) {
        state_->on_push(*push, now, actions);
    } else if (const auto* deleted = std::get_if<RefDeleted>(&event)) {
        state_->on_deleted(*deleted, actions);
    } else if (const auto* force = std::get_if<ForceRequest>(&event)) {
        if (auto status = state_->on_force(*force, actions); !status) {
            return fail(status.error());
        }
    }
    // Whatever the event, waits that are due fire now (a zero tree_stable_timer fires at once).
    state_->fire_due(now, actions);
    return actions;
}

std::optional<WallTime> Scheduler::next_deadline() const {
    std::optional<WallTime> next;
    const auto consider = [&](WallTime when) { next = next ? std::min(*next, when) : when; };
    if (!state_->by_deadline.empty()) {
        consider(state_->by_deadline.begin()->first);
    }
    for (const auto& [name, when] : state_->next_runs) {
        consider(when);
    }
    // A periodic scheduler that has no next run yet (a fresh state) needs a tick at once, which
    // gives it one (SavePeriodic): otherwise it would wait for some unrelated event.
    for (const auto& rule : state_->periodic_rules) {
        if (!state_->next_runs.contains(rule.name)) {
            consider(WallTime{});
        }
    }
    return next;
}

std::vector<Wait> Scheduler::waits() const {
    std::vector<Wait> out;
    for (const auto& [key, wait] : state_->waits) {
        out.push_back(wait);
    }
    return out;
}

std::vector<Event> poll_events(const std::string& repository,
                               const std::map<std::string, std::string>& previous,
                               const std::map<std::string, std::string>& current,
                               WallTime now) {
    const auto split = [](const std::string& ref) -> std::optional<std::pair<std::string, bool>> {
        if (!git::check_ref_format(ref)) {
            return std::nullopt;
        }
        if (ref.starts_with("refs/heads/")) {
            return std::pair(ref.substr(11), false);
        }
        if (ref.starts_with("refs/tags/")) {
            return std::pair(ref.substr(10), true);
        }
        return std::nullopt;
    };
    std::vector<Event> events;
    for (const auto& [ref, revision] : current) {
        const auto name = split(ref);
        const auto before = previous.find(ref);
        if (!name || (before != previous.end() && before->second == revision)) {
            continue;
        }
        Change change;
        change.repository = repository;
        change.branch = name->first;
        change.is_tag = name->second;
        change.revision = revision;
        change.comments = "found by polling";
        change.when = now;
        events.emplace_back(Push{{std::move(change)}});
    }
    for (const auto& [ref, revision] : previous) {
        const auto name = split(ref);
        if (name && !current.contains(ref)) {
            events.emplace_back(RefDeleted{repository, name->first, name->second});
        }
    }
    return events;
}

} // namespace ci::sched
