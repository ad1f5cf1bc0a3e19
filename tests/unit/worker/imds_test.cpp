// Instance metadata notices (pure): what the spot instance-action and rebalance answers mean.
// The watcher itself runs against a fake IMDSv2 service in master-e2e-spot.

#include <doctest/doctest.h>

#include <ci/worker/imds.h>

#include "support/require_ok.h"

using ci::worker::imds::interpret;
using ci::worker::imds::Notice;

TEST_CASE("imds: 404 on both paths is no notice") {
    auto seen = interpret(404, "Not Found", 404, "");
    REQUIRE_OK(seen);
    CHECK(seen->notice == Notice::None);
}

TEST_CASE("imds: an instance-action is an interruption, whatever the rebalance path says") {
    auto seen = interpret(200,
                          R"({"action": "terminate", "time": "2026-11-30T18:00:00Z"})",
                          200,
                          R"({"noticeTime": "2026-11-30T17:58:00Z"})");
    REQUIRE_OK(seen);
    CHECK(seen->notice == Notice::Interruption);
    CHECK(seen->detail == "spot instance-action: terminate at 2026-11-30T18:00:00Z");
}

TEST_CASE("imds: a rebalance recommendation alone") {
    auto seen = interpret(404, "", 200, R"({"noticeTime": "2026-11-30T17:58:00Z"})");
    REQUIRE_OK(seen);
    CHECK(seen->notice == Notice::Rebalance);
    CHECK(seen->detail == "rebalance recommendation at 2026-11-30T17:58:00Z");
}

TEST_CASE("imds: other statuses and bodies are errors, hostile text is tamed") {
    CHECK_FALSE(interpret(500, "", 404, ""));
    CHECK_FALSE(interpret(404, "", 403, ""));
    CHECK_FALSE(interpret(200, "not json", 404, ""));
    CHECK_FALSE(interpret(200, R"({"action": 5})", 404, ""));
    CHECK_FALSE(interpret(200, std::string(100000, '['), 404, ""));
    auto seen =
        interpret(200, R"({"action": "stop\n\u0000)" + std::string(500, 'x') + "\"}", 404, "");
    REQUIRE_OK(seen);
    CHECK(seen->notice == Notice::Interruption);
    CHECK(seen->detail.find('\n') == std::string::npos);
    CHECK(seen->detail.size() < 150);
}

TEST_CASE("imds: the watcher takes only http://HOST[:PORT]") {
    using ci::worker::imds::Watcher;
    for (const char* url : {"https://169.254.169.254",
                            "169.254.169.254",
                            "http://",
                            "http://a/b",
                            "http://user@host",
                            "http://a b"}) {
        CHECK_FALSE(Watcher::start(url, std::chrono::milliseconds(1000)));
    }
}
