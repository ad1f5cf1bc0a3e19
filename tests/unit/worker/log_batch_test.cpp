// A worker's log in batches: the pure LogBatch with a manual time (chunk sizes, numbering, the
// 100 ms deadline, steps), then run_reported_build with real processes and a fake `send` (order
// of the messages, a slow trickle sent while its step still runs, nothing lost at the end).

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include <doctest/doctest.h>

#include "master/protocol.h"
#include "support/origin.h"
#include "support/temp_dir.h"
#include "worker/log_batch.h"
#include "worker/reported_build.h"

namespace {

using namespace std::chrono_literals;
using ci::master::protocol::LogChunk;
using ci::worker::detail::LogBatch;
using Time = LogBatch::TimePoint;

const Time t0{std::chrono::seconds(1000)};

std::string joined(const std::vector<LogChunk>& chunks) {
    std::string out;
    for (const auto& chunk : chunks) {
        out += chunk.text;
    }
    return out;
}

void append(std::vector<LogChunk>& to, std::vector<LogChunk> chunks) {
    for (auto& chunk : chunks) {
        to.push_back(std::move(chunk));
    }
}

} // namespace

TEST_CASE("log batch: output in pipe-sized pieces goes out in chunks of up to 64 KiB, cut after "
          "a newline, numbered from 0, nothing lost") {
    std::string output;
    for (int i = 1; i <= 200000; ++i) {
        output += std::to_string(i) + "\n";
    }
    LogBatch batch(42);
    std::vector<LogChunk> chunks;
    for (std::size_t at = 0; at < output.size(); at += 4096) {
        append(chunks, batch.add(1, std::string_view(output).substr(at, 4096), t0));
    }
    CHECK_FALSE(batch.due(t0 + 99ms).has_value());
    auto rest = batch.take();
    REQUIRE(rest.has_value());
    chunks.push_back(std::move(*rest));
    CHECK_FALSE(batch.take().has_value());

    CHECK(joined(chunks) == output);
    for (std::size_t i = 0; i < chunks.size(); ++i) {
        INFO("chunk ", i);
        CHECK(chunks[i].build == 42);
        CHECK(chunks[i].step == 1);
        CHECK(chunks[i].sequence == static_cast<std::int64_t>(i));
        CHECK(chunks[i].text.size() <= 65536);
        CHECK(chunks[i].text.back() == '\n'); // short lines: every cut keeps lines whole
        if (i + 1 < chunks.size()) {
            CHECK(chunks[i].text.size() > 65536 - 8); // full, but for the cut line's rest
        }
    }
}

TEST_CASE("log batch: output without newlines is cut at exactly 64 KiB") {
    LogBatch batch(1);
    const std::string output(std::size_t{200} * 1024, 'x');
    auto chunks = batch.add(3, output, t0);
    REQUIRE(chunks.size() == 3);
    for (const auto& chunk : chunks) {
        CHECK(chunk.text.size() == 65536);
    }
    auto rest = batch.take();
    REQUIRE(rest.has_value());
    CHECK(rest->text.size() == output.size() - std::size_t{3} * 65536);
    CHECK(rest->sequence == 3);
}

TEST_CASE("log batch: a slow trickle goes out once its oldest byte has waited 100 ms") {
    LogBatch batch(7);
    CHECK_FALSE(batch.deadline().has_value());
    CHECK(batch.add(1, "first\n", t0).empty());
    CHECK(batch.deadline() == t0 + 100ms);
    CHECK_FALSE(batch.due(t0 + 99ms).has_value());
    auto chunk = batch.due(t0 + 100ms);
    REQUIRE(chunk.has_value());
    CHECK(chunk->text == "first\n");
    CHECK(chunk->sequence == 0);
    CHECK_FALSE(batch.deadline().has_value());

    // The deadline is the oldest pending byte's, not the newest's.
    CHECK(batch.add(1, "sec", t0 + 150ms).empty());
    CHECK(batch.add(1, "ond\n", t0 + 240ms).empty());
    CHECK(batch.deadline() == t0 + 250ms);
    chunk = batch.due(t0 + 250ms);
    REQUIRE(chunk.has_value());
    CHECK(chunk->text == "second\n");
    CHECK(chunk->sequence == 1);
    CHECK(batch.add(1, "", t0 + 300ms).empty());
    CHECK_FALSE(batch.deadline().has_value()); // nothing added, nothing pending
}

TEST_CASE("log batch: another step's output sends what is pending first; numbering is per step") {
    LogBatch batch(7);
    CHECK(batch.add(0, "checkout\n", t0).empty());
    auto chunks = batch.add(1, "step one\n", t0 + 1ms);
    REQUIRE(chunks.size() == 1);
    CHECK(chunks[0].step == 0);
    CHECK(chunks[0].sequence == 0);
    CHECK(chunks[0].text == "checkout\n");
    auto rest = batch.take();
    REQUIRE(rest.has_value());
    CHECK(rest->step == 1);
    CHECK(rest->sequence == 0);
    CHECK(batch.add(2, "step two\n", t0 + 2ms).empty());
    chunks = batch.add(1, "one again\n", t0 + 3ms);
    REQUIRE(chunks.size() == 1);
    CHECK(chunks[0].step == 2);
    CHECK(chunks[0].sequence == 0);
    rest = batch.take();
    REQUIRE(rest.has_value());
    CHECK(rest->step == 1);
    CHECK(rest->sequence == 1); // step 1's numbering goes on
}

TEST_CASE("run_reported_build: batched log chunks in order between their step's start and end; "
          "a trickle is sent while its step runs; BuildFinished last, nothing lost") {
    namespace protocol = ci::master::protocol;
    ci::test::Origin origin;
    ci::test::TempDir dir{"libci-batch-work"};
    const auto go = dir / "go";
    ci::build::BuildSpec spec;
    spec.build_id = 5;
    spec.builder = "batch";
    spec.repository = "app";
    spec.url = origin.url();
    spec.branch = "master";
    spec.timeout = std::chrono::seconds(30); // a trickle never sent would end the build here
    ci::build::StepSpec loud;
    loud.name = "loud";
    loud.command = {"/bin/sh", "-c", "seq 100000"};
    ci::build::StepSpec trickle;
    trickle.name = "trickle";
    // The second line only once the first has reached the master (the fake send creates GO).
    // The lines are computed, so that the step's header (its command) does not contain them.
    trickle.command = {"/bin/sh",
                       "-c",
                       "echo first-$((40+2)); while [ ! -e \"$GO\" ]; do sleep 0.01; done; "
                       "echo second-$((40+2))"};
    trickle.env = {{"GO", go.string()}};
    spec.steps = {loud, trickle};
    ci::build::RunnerOptions options;
    options.work_root = dir / "work";
    options.cache_dir = dir / "cache";

    std::mutex mutex;
    std::vector<protocol::Message> sent;
    const auto outcome = ci::worker::run_reported_build(
        spec,
        options,
        [&](protocol::Message message) {
            const std::lock_guard lock(mutex);
            if (const auto* chunk = std::get_if<protocol::LogChunk>(&message);
                chunk != nullptr && chunk->step == 2 &&
                chunk->text.find("first-42") != std::string::npos) {
                ci::test::write_file(go, "");
            }
            sent.push_back(std::move(message));
        },
        {});
    REQUIRE(outcome.result == ci::BuildResult::Success);

    const std::lock_guard lock(mutex);
    REQUIRE_FALSE(sent.empty());
    CHECK(std::holds_alternative<protocol::BuildFinished>(sent.back()));
    std::map<int, std::string> logs;
    std::map<int, std::vector<std::int64_t>> sequences;
    std::map<int, std::vector<std::string>> chunks;
    int open_step = -1;
    for (const auto& message : sent) {
        if (const auto* started = std::get_if<protocol::StepStarted>(&message)) {
            CHECK(open_step == -1);
            open_step = started->step;
        } else if (const auto* finished = std::get_if<protocol::StepFinished>(&message)) {
            CHECK(finished->step == open_step);
            open_step = -1;
        } else if (const auto* chunk = std::get_if<protocol::LogChunk>(&message)) {
            INFO("chunk ", chunk->sequence, " of step ", chunk->step);
            CHECK(chunk->build == 5);
            CHECK(chunk->step == open_step); // between its step's start and end
            CHECK(chunk->text.size() <= 65536);
            logs[chunk->step] += chunk->text;
            sequences[chunk->step].push_back(chunk->sequence);
            chunks[chunk->step].push_back(chunk->text);
        }
    }
    for (const auto& [step, numbers] : sequences) {
        INFO("step ", step);
        for (std::size_t i = 0; i < numbers.size(); ++i) {
            CHECK(numbers[i] == static_cast<std::int64_t>(i));
        }
    }
    std::string seq_output;
    for (int i = 1; i <= 100000; ++i) {
        seq_output += std::to_string(i) + "\n";
    }
    CHECK(logs[1].find(seq_output) != std::string::npos);
    CHECK(logs[1].ends_with("-- exited with status 0\n"));
    // The trickle: its first line went out alone, before the second was printed.
    REQUIRE(chunks[2].size() >= 2);
    const auto first = logs[2].find("first-42\n");
    const auto second = logs[2].find("second-42\n");
    REQUIRE(first != std::string::npos);
    REQUIRE(second != std::string::npos);
    CHECK(first < second);
    for (const auto& text : chunks[2]) {
        CHECK_FALSE((text.find("first-42") != std::string::npos &&
                     text.find("second-42") != std::string::npos));
    }
}
