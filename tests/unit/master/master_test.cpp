// The master's pure parts: the worker protocol's messages and the dispatcher's choices.

#include <algorithm>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "master/dispatch.h"
#include "master/locks.h"
#include "master/protocol.h"
#include "master/registry.h"

namespace protocol = ci::master::protocol;
using ci::master::Assignment;
using ci::master::QueuedRequest;
using ci::master::WorkerLoad;

namespace {

// Encodes and decodes `message` as the two sides do: one line, then the bytes it announces.
template <class T> T round_trip(const T& message) {
    const auto encoded = protocol::encode(message);
    const auto newline = encoded.find('\n');
    REQUIRE(newline != std::string::npos);
    auto decoded = protocol::decode(std::string_view(encoded).substr(0, newline + 1));
    REQUIRE(decoded.has_value());
    REQUIRE(std::holds_alternative<T>(*decoded));
    const std::string_view after = std::string_view(encoded).substr(newline + 1);
    if (auto* text = protocol::following_bytes(*decoded)) {
        REQUIRE(text->size() == after.size());
        std::copy(after.begin(), after.end(), text->begin());
    } else {
        REQUIRE(after.empty()); // one line, whatever the message holds
    }
    return std::get<T>(*decoded);
}

ci::config::Config two_builders() {
    ci::config::Config config;
    config.locks["aws-lock"] = ci::config::Lock{3};
    config.locks["one"] = ci::config::Lock{1};
    ci::config::Builder linux;
    linux.repository = "app";
    linux.workers = {"linux"};
    linux.locks = {"aws-lock"};
    config.builders["linux"] = linux;
    ci::config::Builder serial = linux;
    serial.locks = {"one"};
    config.builders["serial"] = serial;
    ci::config::Builder osx;
    osx.repository = "app";
    osx.workers = {"osx"};
    config.builders["osx"] = osx;
    return config;
}

} // namespace

TEST_CASE("protocol: every message survives encode and decode") {
    ci::build::BuildSpec spec;
    spec.build_id = 42;
    spec.builder = "linux";
    spec.repository = "app";
    spec.url = "git@github.com:o/app.git";
    spec.branch = "feature/x";
    spec.revision = "abc";
    spec.merge_target = "master";
    spec.timeout = std::chrono::seconds(90);
    spec.properties = {{"reason", "push"}};
    ci::build::StepSpec step;
    step.name = "test";
    step.command = {"/bin/sh", "-c", "make test \"$X\""};
    step.env = {{"X", "1"}};
    step.workdir = "build";
    step.timeout = std::chrono::seconds(30);
    step.grace = std::chrono::seconds(2);
    step.halt_on_failure = false;
    step.always_run = true;
    step.flunk_on_failure = false;
    step.warn_on_failure = true;
    step.inactivity_timeout = std::chrono::seconds(1200);
    step.set_property = "version";
    step.test_results = "reports/*.xml";
    step.logfiles = {{"test.log", "_trial_temp/test.log"}};
    spec.steps = {step};
    const auto build = round_trip(protocol::StartBuild{spec}).spec;
    CHECK(build.build_id == 42);
    CHECK(build.url == spec.url);
    CHECK(build.branch == spec.branch);
    CHECK(build.revision == "abc");
    CHECK(build.merge_target == std::optional<std::string>("master"));
    CHECK(build.timeout == std::chrono::seconds(90));
    CHECK(build.properties == spec.properties);
    REQUIRE(build.steps.size() == 1);
    CHECK(build.steps[0] == step);

    spec.merge_target.reset();
    spec.steps[0].timeout.reset();
    const auto no_target = round_trip(protocol::StartBuild{spec}).spec;
    CHECK_FALSE(no_target.merge_target.has_value());
    CHECK_FALSE(no_target.target_revision.has_value());
    CHECK_FALSE(no_target.steps[0].timeout.has_value());
    CHECK_FALSE(no_target.steps[0].trigger.has_value());

    // A triggered build's pinned target, and a trigger step.
    spec.merge_target = "master";
    spec.target_revision = "0123abcd";
    ci::build::StepSpec trigger;
    trigger.name = "acceptance";
    trigger.trigger = ci::config::Trigger{{"acceptance-a", "acceptance-b"}, true};
    spec.steps.push_back(trigger);
    const auto pinned = round_trip(protocol::StartBuild{spec}).spec;
    CHECK(pinned.target_revision == std::optional<std::string>("0123abcd"));
    REQUIRE(pinned.steps.size() == 2);
    CHECK(pinned.steps[1] == trigger);
    const auto asked = round_trip(protocol::Trigger{42, 2});
    CHECK((asked.build == 42 && asked.step == 2));
    const auto answered = round_trip(
        protocol::Triggered{42, 2, ci::BuildResult::Failure, "acceptance-a: request 7 failure"});
    CHECK(answered.result == ci::BuildResult::Failure);
    CHECK(answered.description == "acceptance-a: request 7 failure");
    CHECK(answered.step == 2);

    // A log is any bytes: newlines, quotes, control characters, invalid UTF-8, NULs.
    const std::string text("line 1\nline \"2\"\t\x01 caf\xc3\xa9 \xff\xfe\0end\n", 31);
    const auto encoded_chunk = protocol::encode(protocol::LogChunk{7, 2, 5, text});
    CHECK(encoded_chunk.ends_with(text)); // as it is, after the line
    const auto chunk = round_trip(protocol::LogChunk{7, 2, 5, text});
    CHECK(chunk.build == 7);
    CHECK(chunk.step == 2);
    CHECK(chunk.sequence == 5);
    CHECK(chunk.text == text);
    CHECK(round_trip(protocol::LogChunk{7, 2, 6, ""}).text.empty());

    const auto hello = round_trip(protocol::Hello{"linux/0", "ab12", 3});
    CHECK(hello.name == "linux/0");
    CHECK(hello.proof == "ab12");
    CHECK(hello.max_builds == 3);
    CHECK(round_trip(protocol::Challenge{"n0nce"}).nonce == "n0nce");
    const auto welcome = round_trip(protocol::Welcome{7, true});
    CHECK(welcome.heartbeat_seconds == 7);
    CHECK(welcome.rotate);
    CHECK_FALSE(round_trip(protocol::Welcome{7, false}).rotate);
    CHECK(protocol::encode(protocol::Welcome{7, false}).find("rotate") == std::string::npos);
    CHECK(round_trip(protocol::Refused{"no"}).reason == "no");
    const auto finished = round_trip(
        protocol::StepFinished{3, 1, ci::BuildResult::Failure, 2, "exited with status 2", {}, {}});
    CHECK(finished.exit_code == std::optional<int>(2));
    CHECK(finished.description == "exited with status 2");
    CHECK_FALSE(finished.tests.has_value());
    CHECK(finished.properties.empty());
    const ci::build::TestResults tests{3, 1, 2, 1, {"a.b", "caf\xc3\xa9"}};
    const auto with_results = round_trip(protocol::StepFinished{
        3, 1, ci::BuildResult::Failure, 1, "exited with status 1", tests, {{"version", "1.2"}}});
    CHECK(with_results.tests == std::optional(tests));
    CHECK(with_results.properties == std::map<std::string, std::string>{{"version", "1.2"}});
    CHECK_FALSE(protocol::decode(R"({"type": "step_finished", "build": 1, "step": 1, )"
                                 R"("result": "failure", "tests": {"passed": "x"}})")
                    .has_value());
    CHECK_FALSE(protocol::decode(R"({"type": "step_finished", "build": 1, "step": 1, )"
                                 R"("result": "failure", "tests": {"passed": 1, "failed": 0, )"
                                 R"("skipped": 0, "errors": 0, "failed_tests": [1]}})")
                    .has_value());
    const std::string file_text("a log file\n\0\xff", 13);
    const auto file_chunk = round_trip(protocol::LogFileChunk{3, 2, "test.log", 4, file_text});
    CHECK(file_chunk.name == "test.log");
    CHECK(file_chunk.step == 2);
    CHECK(file_chunk.sequence == 4);
    CHECK(file_chunk.text == file_text);
    CHECK_FALSE(protocol::decode(R"({"type": "logfile", "build": 1, "step": 1, )"
                                 R"("name": "../etc", "seq": 0, "size": 0})")
                    .has_value());
    // Uploads: the manifest, the master's answer, chunks with their bytes after the line.
    const auto begin = round_trip(protocol::UploadBegin{
        5,
        2,
        "repo/deb",
        {{"a.deb", false, 3, 0644, std::string(64, 'a')}, {"sub", true, 0, 0755, ""}}});
    REQUIRE(begin.files.size() == 2);
    CHECK(begin.name == "repo/deb");
    CHECK(begin.files[0].size == 3);
    CHECK(begin.files[0].sha256 == std::string(64, 'a'));
    CHECK(begin.files[1].directory);
    CHECK(begin.files[1].mode == 0755);
    const auto ready = round_trip(protocol::UploadReady{5, 2, {0, 1024}, ""});
    CHECK(ready.have == std::vector<std::int64_t>{0, 1024});
    CHECK(round_trip(protocol::UploadReady{5, 2, {}, "over the cap"}).error == "over the cap");
    const std::string bytes("\0\n{\"type\": \"x\"}\n\xff", 15);
    const auto upload_chunk = round_trip(protocol::UploadChunk{5, 2, 1, 1024, bytes});
    CHECK(upload_chunk.file == 1);
    CHECK(upload_chunk.offset == 1024);
    CHECK(upload_chunk.data == bytes);
    CHECK(round_trip(protocol::UploadEnd{5, 2}).step == 2);
    const auto upload_done =
        round_trip(protocol::UploadDone{5, 2, ci::BuildResult::Failure, "after_upload", "out\n"});
    CHECK(upload_done.result == ci::BuildResult::Failure);
    CHECK(upload_done.log == "out\n");
    // A chunk larger than upload_chunk, a negative offset or size, a file without its size.
    CHECK_FALSE(protocol::decode(R"({"type": "upload_chunk", "build": 1, "step": 1, "file": 0, )"
                                 R"("offset": 0, "size": 262145})")
                    .has_value());
    CHECK_FALSE(protocol::decode(R"({"type": "upload_chunk", "build": 1, "step": 1, "file": 0, )"
                                 R"("offset": -1, "size": 1})")
                    .has_value());
    CHECK_FALSE(protocol::decode(R"({"type": "upload_begin", "build": 1, "step": 1, "name": "x", )"
                                 R"("files": [{"path": "a", "sha256": "00"}]})")
                    .has_value());
    CHECK_FALSE(protocol::decode(R"({"type": "upload_ready", "build": 1, "step": 1, )"
                                 R"("have": [-5]})")
                    .has_value());
    CHECK(round_trip(protocol::BuildFinished{3, ci::BuildResult::Warnings, ""}).result ==
          ci::BuildResult::Warnings);
    CHECK_FALSE(round_trip(protocol::StepFinished{
                               3, 1, ci::BuildResult::Exception, std::nullopt, "", {}, {}})
                    .exit_code.has_value());
    const auto checked = round_trip(protocol::CheckedOut{3, "a", "b", "c"});
    CHECK((checked.branch_tip + checked.target_tip + checked.merge_commit) == "abc");
    CHECK(round_trip(protocol::BuildFinished{3, ci::BuildResult::Success, ""}).result ==
          ci::BuildResult::Success);
    CHECK(round_trip(protocol::StopBuild{9}).build == 9);
    round_trip(protocol::Heartbeat{});
    round_trip(protocol::Drain{});
    round_trip(protocol::Shutdown{});
    CHECK(protocol::encode(protocol::Shutdown{}) == "{\"type\":\"shutdown\"}\n");
    CHECK(round_trip(protocol::Interrupted{"spot instance-action: terminate at T"}).reason ==
          "spot instance-action: terminate at T");
    CHECK(protocol::encode(protocol::Interrupted{"x"}) ==
          "{\"type\":\"interrupted\",\"reason\":\"x\"}\n");
}

TEST_CASE("protocol: bad lines are errors that say what is wrong") {
    const auto error_of = [](std::string_view line) {
        auto decoded = protocol::decode(line);
        REQUIRE_FALSE(decoded.has_value());
        CHECK(decoded.error().code == ci::ErrorCode::InvalidArgument);
        return decoded.error().message;
    };
    CHECK(error_of("not json").find("not a JSON object") != std::string::npos);
    CHECK(error_of("[1]").find("not a JSON object") != std::string::npos);
    CHECK(error_of(R"({"name": "x"})").find("no \"type\"") != std::string::npos);
    CHECK(error_of(R"({"type": "launch"})").find("unknown message type \"launch\"") !=
          std::string::npos);
    CHECK(error_of(R"({"type": "log", "build": 1, "step": 0, "seq": 0})")
              .find("\"size\" is missing") != std::string::npos);
    CHECK(error_of(R"({"type": "log", "build": "1", "step": 0, "seq": 0, "size": 0})")
              .find("\"build\" is not an integer") != std::string::npos);
    // A log chunk's size is checked before the reader allocates it.
    for (const auto* size : {"-1", "4194305", "9223372036854775807", "1.5"}) {
        CAPTURE(size);
        CHECK(error_of(fmt::format(R"({{"type": "log", "build": 1, "step": 0, "seq": 0, )"
                                   R"("size": {}}})",
                                   size))
                  .find("\"size\"") != std::string::npos);
    }
    // A result is one of the names BuildResult has; anything else is refused, never a default.
    CHECK(error_of(R"({"type": "build_finished", "build": 1, "result": "green"})")
              .find("\"green\" is not a build result") != std::string::npos);
    CHECK(error_of(R"({"type": "step_finished", "build": 1, "step": 1, "result": 2})")
              .find("\"result\" is not a string") != std::string::npos);
    CHECK(protocol::encode(protocol::BuildFinished{3, ci::BuildResult::Retry, ""})
              .find(R"("result":"retry")") != std::string::npos);
    CHECK(error_of(R"({"type": "build", "build": 1, "builder": "b", "repository": "r",)"
                   R"( "url": "u", "branch": "m", "steps": [{"name": "s", "command": "make"}]})")
              .find("\"command\" is missing or not a list") != std::string::npos);
}

TEST_CASE("protocol: an error quotes the line's text cut and escaped, for the log") {
    // Issue 14: a 4 MiB "type" sent before the hello was logged whole; a newline in it forged a
    // log line.
    const std::string huge(std::size_t{4} * 1024 * 1024, 't');
    auto decoded = protocol::decode(R"({"type": ")" + huge + R"("})");
    REQUIRE_FALSE(decoded.has_value());
    CHECK(decoded.error().message.size() < 400);
    CHECK(decoded.error().message.find("more bytes]") != std::string::npos);
    decoded = protocol::decode(R"({"type": "x\n2026-01-01 [error] forged\u001b[0m"})");
    REQUIRE_FALSE(decoded.has_value());
    CHECK(decoded.error().message.find('\n') == std::string::npos);
    CHECK(decoded.error().message.find('\x1b') == std::string::npos);
    CHECK(decoded.error().message.find("x\\n2026") != std::string::npos);
    // A key of the line's own (a property's name) is cut too.
    decoded = protocol::decode(R"({"type": "build", "build": 1, "builder": "b", "repository": )"
                               R"("r", "url": "u", "branch": "m", "steps": [], "properties": {")" +
                               huge + R"(": 1}})");
    REQUIRE_FALSE(decoded.has_value());
    CHECK(decoded.error().message.find("is not a string") != std::string::npos);
    CHECK(decoded.error().message.size() < 400);
}

TEST_CASE("protocol: a line nested far too deep is an error, not a stack overflow") {
    // Issue 14: 300,000 levels sent before the hello overflowed the master's stack in the
    // recursive parse.
    const std::string deep = std::string(300000, '[') + std::string(300000, ']') + "\n";
    auto decoded = protocol::decode(deep);
    REQUIRE_FALSE(decoded.has_value());
    CHECK(decoded.error().message.find("nested deeper than 64") != std::string::npos);
    const std::string in_object =
        R"({"type": "hello", "name": )" + deep.substr(0, deep.size() - 1) + "}";
    CHECK_FALSE(protocol::decode(in_object).has_value());
}

TEST_CASE("protocol: the proof is HMAC-SHA256 of the nonce under the secret's key") {
    // The key is hex SHA-256 of the secret (what the master keeps of a latent worker's); values
    // computed with Python's hashlib and hmac.
    CHECK(protocol::secret_key("Jefe") ==
          "005725b48609c45e6b9205b7ff0279d9db830a1e9c1da0582e8a24a26b861700");
    CHECK(protocol::proof("Jefe", "what do ya want for nothing?") ==
          "0ac47ea2ff18af64cc245f0e479fe7e7083b3bce1d1f8ab27a53aedf3c3e8e77");
    CHECK(protocol::proof_with_key(protocol::secret_key("Jefe"), "what do ya want for nothing?") ==
          protocol::proof("Jefe", "what do ya want for nothing?"));
    CHECK(protocol::proof("secret", "nonce-1") != protocol::proof("secret", "nonce-2"));
    // The rotated secret is HMAC(key, "next:" + nonce): it differs from the proof, and depends
    // on the nonce.
    CHECK(protocol::next_secret("Jefe", "n") ==
          "54a875eb54f5f4d665f62d82512f63a05633a3477b1a29dfd2997e22e67c3926");
    CHECK(protocol::next_secret_with_key(protocol::secret_key("Jefe"), "n") ==
          protocol::next_secret("Jefe", "n"));
    CHECK(protocol::next_secret("Jefe", "n") != protocol::proof("Jefe", "n"));
    CHECK(protocol::next_secret("Jefe", "m") != protocol::next_secret("Jefe", "n"));
}

namespace {
class NullLink final : public ci::master::Link {
public:
    void send(const ci::master::protocol::Message&) override {}
    void close() override {}
};
} // namespace

TEST_CASE("dispatch: a paused worker gets no new build; its build goes on; a reconnect keeps it "
          "paused") {
    const auto config = two_builders();
    ci::master::WorkerRegistry registry;
    (void)registry.add("linux/0", "linux", 2, false, std::make_shared<NullLink>());
    (void)registry.add("linux/1", "linux", 2, false, std::make_shared<NullLink>());
    REQUIRE(registry.reserve("linux/0"));
    REQUIRE(registry.attach("linux/0", 7) != nullptr);

    CHECK(registry.set_paused("linux/0", true));
    CHECK_FALSE(registry.set_paused("linux/0", true)); // already
    CHECK(registry.view("linux/0")->builds == std::vector<std::int64_t>{7});
    CHECK(std::string(registry.view("linux/0")->state()) == "paused");
    // The idle linux/0 would win (fewer builds) were it not paused: everything goes to linux/1.
    registry.release("linux/0", 7);
    const auto out = ci::master::assign({{1, "linux"}, {2, "linux"}}, registry.loads(), {}, config);
    CHECK(out == std::vector<Assignment>{{1, "linux/1"}, {2, "linux/1"}});
    CHECK_FALSE(registry.reserve("linux/0"));

    // Its connection drops and it connects again: still paused, by name.
    CHECK(registry.remove("linux/0", registry.link("linux/0").get()).has_value());
    CHECK(registry.paused("linux/0"));
    (void)registry.add("linux/0", "linux", 2, false, std::make_shared<NullLink>());
    CHECK(registry.view("linux/0")->paused);
    CHECK_FALSE(registry.reserve("linux/0"));
    // Every worker of the class paused: no free slot anywhere, the queue waits.
    CHECK(registry.set_paused("linux/1", true));
    CHECK_FALSE(registry.any_free_slot());
    CHECK(ci::master::assign({{3, "linux"}}, registry.loads(), {}, config).empty());

    CHECK(registry.set_paused("linux/0", false));
    CHECK(registry.reserve("linux/0"));
    CHECK(ci::master::assign({{3, "linux"}}, registry.loads(), {}, config) ==
          std::vector<Assignment>{{3, "linux/0"}});
}

TEST_CASE("registry: a worker shut down takes no new builds, once, for that connection") {
    ci::master::WorkerRegistry registry;
    std::shared_ptr<ci::master::Link> link;
    CHECK(registry.shut_down("linux/0", link) ==
          ci::master::WorkerRegistry::ShutDown::NotConnected);
    auto connection = std::make_shared<NullLink>();
    (void)registry.add("linux/0", "linux", 1, false, connection);
    CHECK(registry.shut_down("linux/0", link) == ci::master::WorkerRegistry::ShutDown::Started);
    CHECK(link == connection);
    CHECK(registry.shut_down("linux/0", link) == ci::master::WorkerRegistry::ShutDown::Already);
    CHECK_FALSE(registry.reserve("linux/0"));
    CHECK_FALSE(registry.loads().at(0).accepting);
    CHECK(std::string(registry.view("linux/0")->state()) == "shutting down");
}

TEST_CASE("dispatch: classes, slots, the least busy worker, and counting locks") {
    const auto config = two_builders();
    SUBCASE("an idle worker before a busy one; only workers of the builder's classes") {
        const std::vector<WorkerLoad> workers = {
            {"linux/0", "linux", 2, 1, true},
            {"linux/1", "linux", 2, 0, true},
            {"osx/0", "osx", 4, 0, true},
        };
        const auto out = ci::master::assign({{1, "linux"}}, workers, {}, config);
        CHECK(out == std::vector<Assignment>{{1, "linux/1"}});
    }
    SUBCASE("max_builds is respected and requests spread over workers") {
        const std::vector<WorkerLoad> workers = {
            {"linux/0", "linux", 1, 0, true},
            {"linux/1", "linux", 1, 0, true},
        };
        const auto out =
            ci::master::assign({{1, "linux"}, {2, "linux"}, {3, "linux"}}, workers, {}, config);
        CHECK(out == std::vector<Assignment>{{1, "linux/0"}, {2, "linux/1"}});
    }
    SUBCASE("a counting lock of 3 admits three builds, however many workers are free") {
        std::vector<WorkerLoad> workers;
        workers.reserve(6);
        for (int i = 0; i < 6; ++i) {
            workers.push_back({"linux/" + std::to_string(i), "linux", 1, 0, true});
        }
        std::vector<QueuedRequest> queue;
        for (int i = 1; i <= 5; ++i) {
            queue.push_back({i, "linux"});
        }
        CHECK(ci::master::assign(queue, workers, {}, config).size() == 3);
        CHECK(ci::master::assign(queue, workers, {{"aws-lock", 2}}, config).size() == 1);
        CHECK(ci::master::assign(queue, workers, {{"aws-lock", 3}}, config).empty());
    }
    SUBCASE("a blocked request does not hold up a later one that can run") {
        const std::vector<WorkerLoad> workers = {
            {"linux/0", "linux", 2, 0, true},
            {"osx/0", "osx", 1, 0, true},
        };
        const auto out = ci::master::assign(
            {{1, "serial"}, {2, "serial"}, {3, "osx"}, {4, "nobody-builds-this"}},
            workers,
            {},
            config);
        CHECK(out == std::vector<Assignment>{{1, "linux/0"}, {3, "osx/0"}});
    }
    SUBCASE("a lock of scope worker: one build per worker, the others go elsewhere") {
        auto per_worker = config;
        per_worker.locks["one"].scope = ci::config::Lock::Scope::Worker;
        const std::vector<WorkerLoad> workers = {
            {"linux/0", "linux", 2, 0, true},
            {"linux/1", "linux", 2, 0, true},
        };
        // Four "serial" builds (lock "one"), four slots: one build per worker holds the lock.
        const std::vector<QueuedRequest> queue = {
            {1, "serial"}, {2, "serial"}, {3, "serial"}, {4, "linux"}};
        CHECK(ci::master::assign(queue, workers, {}, per_worker) ==
              std::vector<Assignment>{{1, "linux/0"}, {2, "linux/1"}, {4, "linux/0"}});
        // linux/0 holds it already: the next serial build goes to linux/1 although linux/0 is
        // less busy.
        const std::vector<WorkerLoad> busy = {
            {"linux/0", "linux", 2, 1, true},
            {"linux/1", "linux", 2, 1, true},
        };
        const auto held = ci::master::lock_key(per_worker, "one", "linux/0");
        CHECK(ci::master::assign({{5, "serial"}, {6, "serial"}}, busy, {{held, 1}}, per_worker) ==
              std::vector<Assignment>{{5, "linux/1"}});
        // The same lock master-wide admits one build in all.
        CHECK(ci::master::assign(queue, workers, {}, config).size() == 2);
    }
    SUBCASE("a draining worker gets nothing") {
        const std::vector<WorkerLoad> workers = {{"linux/0", "linux", 4, 0, false}};
        CHECK(ci::master::assign({{1, "linux"}}, workers, {}, config).empty());
    }
    SUBCASE("ties go to the smaller share of slots, then the name") {
        const std::vector<WorkerLoad> workers = {
            {"linux/b", "linux", 2, 1, true},
            {"linux/a", "linux", 4, 1, true},
        };
        CHECK(ci::master::assign({{1, "linux"}}, workers, {}, config) ==
              std::vector<Assignment>{{1, "linux/a"}});
    }
}
