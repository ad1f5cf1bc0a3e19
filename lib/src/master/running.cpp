#include "master/running.h"

#include <algorithm>

#include <fmt/format.h>

namespace ci::master {

std::string sse_event(std::string_view event, std::string_view data, std::string_view id) {
    std::string out;
    if (!id.empty()) {
        out = fmt::format("id: {}\n", id);
    }
    out += fmt::format("event: {}\n", event);
    // One data line per line: a client joins them with '\n' again. A line of the data ends at
    // CR, LF or CRLF, as a line of the stream does: a bare CR left in a data line would end it
    // there for the client, and what follows it (a log's "event: end") would read as a field.
    while (true) {
        const auto end = data.find_first_of("\r\n");
        out += "data: ";
        out += data.substr(0, end);
        out += '\n';
        if (end == std::string_view::npos) {
            break;
        }
        const auto width = data.substr(end, 2) == "\r\n" ? 2 : 1;
        data.remove_prefix(end + width);
        if (data.empty()) {
            out += "data: \n";
            break;
        }
    }
    out += '\n';
    return out;
}

void Follower::cut_locked() {
    gone_ = true;
    held_.clear();
    output_->cut("this reader fell behind the log: reconnect to go on from the last event");
}

void Follower::prime() {
    const std::lock_guard lock(mutex_);
    primed_ = true;
    if (gone_) {
        cut_locked();
        return;
    }
    if (!held_.empty()) {
        (void)output_->write(held_first_, held_next_, held_);
        held_.clear();
    }
    if (ended_) {
        output_->end(*ended_);
    }
}

bool Follower::deliver(std::int64_t sequence, std::string_view text) {
    const std::lock_guard lock(mutex_);
    if (gone_) {
        return false;
    }
    if (!primed_) {
        if (held_.size() + text.size() > max_behind) {
            gone_ = true; // cut off once primed: what it sent until then stays in order
            held_.clear();
            return false;
        }
        if (held_first_ < 0) {
            held_first_ = sequence;
        }
        held_ += text;
        held_next_ = sequence + 1;
        return true;
    }
    if (output_->closed()) {
        gone_ = true;
        return false;
    }
    if (output_->behind(max_behind)) {
        cut_locked();
        return false;
    }
    return output_->write(sequence, sequence + 1, text);
}

void Follower::end(std::string_view result) {
    const std::lock_guard lock(mutex_);
    if (ended_) {
        return;
    }
    ended_ = std::string(result);
    if (primed_ && !gone_) {
        output_->end(result);
    }
}

void RunningBuilds::add(store::Build build,
                        std::vector<std::string> locks,
                        bool last_try,
                        BuildLabels labels) {
    const std::lock_guard lock(mutex_);
    const auto id = build.id;
    Build added;
    if (labels.builder.empty()) {
        labels.builder = build.builder;
    }
    added.labels = std::move(labels);
    added.record = std::move(build);
    added.locks = std::move(locks);
    added.started = std::chrono::steady_clock::now();
    added.last_try = last_try;
    builds_[id] = std::move(added);
}

bool RunningBuilds::runs_on(std::int64_t id, const std::string& worker) {
    const std::lock_guard lock(mutex_);
    const auto found = builds_.find(id);
    return found != builds_.end() && !found->second.ended && found->second.record.worker == worker;
}

std::optional<std::string> RunningBuilds::request_stop(std::int64_t id) {
    const std::lock_guard lock(mutex_);
    const auto found = builds_.find(id);
    if (found == builds_.end() || found->second.ended) {
        return std::nullopt;
    }
    found->second.stop_requested = true;
    return found->second.record.worker;
}

std::optional<store::Build> RunningBuilds::checked_out(std::int64_t id,
                                                       std::string branch_tip,
                                                       std::string target_tip,
                                                       std::string merge_commit) {
    const std::lock_guard lock(mutex_);
    const auto found = builds_.find(id);
    if (found == builds_.end() || found->second.ended) {
        return std::nullopt;
    }
    auto& record = found->second.record;
    record.branch_tip = std::move(branch_tip);
    record.target_tip = std::move(target_tip);
    record.merge_commit = std::move(merge_commit);
    return record;
}

std::optional<store::Step>
RunningBuilds::step_started(std::int64_t id, int step, std::string name, store::WallTime now) {
    const std::lock_guard lock(mutex_);
    const auto found = builds_.find(id);
    if (found == builds_.end() || found->second.ended) {
        return std::nullopt;
    }
    auto& state = found->second.steps[step];
    state.record = store::Step{};
    state.record.build_id = id;
    state.record.number = step;
    state.record.name = std::move(name);
    state.record.started = now;
    return state.record;
}

void RunningBuilds::log(std::int64_t id, int step, std::int64_t sequence, std::string_view text) {
    const std::lock_guard lock(mutex_);
    const auto found = builds_.find(id);
    if (found == builds_.end() || found->second.ended) {
        return;
    }
    auto& state = found->second.steps[step];
    if (sequence < state.next_sequence) {
        return; // sent twice
    }
    state.next_sequence = sequence + 1;
    state.chunks.push_back(Chunk{sequence, std::string(text)});
    state.bytes += text.size();
    std::erase_if(state.followers,
                  [&](const auto& follower) { return !follower->deliver(sequence, text); });
    trim_locked(state);
}

void RunningBuilds::logged(std::int64_t id, int step, std::int64_t sequence) {
    const std::lock_guard lock(mutex_);
    const auto found = builds_.find(id);
    if (found == builds_.end()) {
        return;
    }
    auto& state = found->second.steps[step];
    state.on_disk = std::max(state.on_disk, sequence + 1);
    trim_locked(state);
}

// Lets go of the oldest chunks that are on disk while the step holds more than its share.
void RunningBuilds::trim_locked(StepState& step) const {
    while (step.bytes > memory_per_step_ && !step.chunks.empty() &&
           step.chunks.front().sequence < step.on_disk) {
        step.bytes -= step.chunks.front().text.size();
        step.chunks.pop_front();
    }
}

void RunningBuilds::end_followers(StepState& step, std::string_view result) {
    for (auto& follower : step.followers) {
        follower->end(result);
    }
    step.followers.clear();
}

std::optional<store::Step> RunningBuilds::step_finished(std::int64_t id,
                                                        int step,
                                                        BuildResult result,
                                                        std::optional<int> exit_code,
                                                        store::WallTime now) {
    const std::lock_guard lock(mutex_);
    const auto found = builds_.find(id);
    if (found == builds_.end() || found->second.ended) {
        return std::nullopt;
    }
    auto& state = found->second.steps[step];
    state.record.build_id = id;
    state.record.number = step;
    state.record.finished = now;
    state.record.result = result;
    state.record.exit_code = exit_code;
    end_followers(state, to_string(result));
    return state.record;
}

std::optional<EndedBuild>
RunningBuilds::end(std::int64_t id, BuildResult result, store::WallTime now) {
    const std::lock_guard lock(mutex_);
    const auto found = builds_.find(id);
    if (found == builds_.end() || found->second.ended) {
        return std::nullopt;
    }
    auto& build = found->second;
    build.ended = true;
    // A build stopped by request ends "cancelled", whatever its step said, and also when its
    // worker is lost or the master shuts down before the stop is confirmed: nobody wants it run
    // again.
    if (build.stop_requested) {
        result = BuildResult::Cancelled;
    }
    // A request whose builds are lost again and again (a build that kills its worker) must not
    // loop forever.
    const bool retries_spent = build.last_try && result == BuildResult::Retry;
    if (retries_spent) {
        result = BuildResult::Exception;
    }
    build.record.finished = now;
    build.record.result = result;
    for (auto& [number, step] : build.steps) {
        end_followers(step,
                      step.record.result ? to_string(*step.record.result) : to_string(result));
    }
    return EndedBuild{build.record, build.locks, build.started, build.labels, retries_spent};
}

void RunningBuilds::forget(std::int64_t id) {
    const std::lock_guard lock(mutex_);
    builds_.erase(id);
}

std::optional<LogSnapshot> RunningBuilds::snapshot(std::int64_t id,
                                                   int step,
                                                   const std::shared_ptr<Follower>& follower,
                                                   std::int64_t from) {
    const std::lock_guard lock(mutex_);
    const auto found = builds_.find(id);
    if (found == builds_.end()) {
        return std::nullopt;
    }
    auto& build = found->second;
    LogSnapshot out;
    const auto state = build.steps.find(step);
    if (state == build.steps.end()) {
        // Not started (yet): a follower of a running build waits for it.
        out.live = !build.ended;
        if (out.live && follower) {
            build.steps[step].followers.push_back(follower);
        }
        if (!out.live && build.record.result) {
            out.result = std::string(to_string(*build.record.result));
        }
        return out;
    }
    auto& s = state->second;
    out.started = true;
    out.in_store_before = s.chunks.empty() ? s.next_sequence : s.chunks.front().sequence;
    out.next = s.next_sequence;
    out.memory_first = std::max(from, out.in_store_before);
    for (const auto& chunk : s.chunks) {
        if (chunk.sequence >= from) {
            out.memory += chunk.text;
        }
    }
    out.live = !build.ended && !s.record.finished;
    if (out.live && follower) {
        s.followers.push_back(follower);
    }
    if (!out.live) {
        const auto result = s.record.result ? s.record.result : build.record.result;
        out.result = result ? std::string(to_string(*result)) : std::string();
    }
    return out;
}

bool RunningBuilds::watch_logfile(std::int64_t id,
                                  int step,
                                  const std::string& name,
                                  std::shared_ptr<LogfileWatcher> watcher) {
    const std::lock_guard lock(mutex_);
    const auto found = builds_.find(id);
    if (found == builds_.end() || found->second.ended) {
        return false;
    }
    auto& build = found->second;
    if (const auto state = build.steps.find(step);
        state != build.steps.end() && state->second.record.finished) {
        return false;
    }
    build.logfile_watchers[{step, name}].push_back(std::move(watcher));
    return true;
}

std::vector<std::shared_ptr<LogfileWatcher>>
RunningBuilds::logfile_watchers(std::int64_t id, int step, const std::string& name) {
    const std::lock_guard lock(mutex_);
    const auto found = builds_.find(id);
    if (found == builds_.end()) {
        return {};
    }
    const auto watchers = found->second.logfile_watchers.find({step, name});
    return watchers == found->second.logfile_watchers.end()
               ? std::vector<std::shared_ptr<LogfileWatcher>>{}
               : watchers->second;
}

std::vector<std::shared_ptr<LogfileWatcher>> RunningBuilds::take_logfile_watchers(std::int64_t id,
                                                                                  int step) {
    const std::lock_guard lock(mutex_);
    std::vector<std::shared_ptr<LogfileWatcher>> out;
    const auto found = builds_.find(id);
    if (found == builds_.end()) {
        return out;
    }
    auto& watchers = found->second.logfile_watchers;
    for (auto it = watchers.begin(); it != watchers.end();) {
        if (step < 0 || it->first.first == step) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            it = watchers.erase(it);
        } else {
            ++it;
        }
    }
    return out;
}

std::vector<store::Build> RunningBuilds::builds() {
    const std::lock_guard lock(mutex_);
    std::vector<store::Build> out;
    for (const auto& [id, build] : builds_) {
        if (!build.ended) {
            out.push_back(build.record);
        }
    }
    return out;
}

std::optional<std::string> RunningBuilds::builder(std::int64_t id) {
    const std::lock_guard lock(mutex_);
    const auto found = builds_.find(id);
    if (found == builds_.end()) {
        return std::nullopt;
    }
    return found->second.record.builder;
}

std::size_t RunningBuilds::size() {
    const std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(
        std::ranges::count_if(builds_, [](const auto& entry) { return !entry.second.ended; }));
}

} // namespace ci::master
