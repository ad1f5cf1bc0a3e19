// The master's redaction of config secrets in workers' log chunks (issue 15): per step stream,
// across chunk boundaries, with what was held back stored after the last chunk.

#include <string>

#include <doctest/doctest.h>

#include "master/log_redaction.h"

namespace {

using ci::master::LogRedaction;

TEST_CASE("log redaction: a config secret split across a remote worker's chunks") {
    LogRedaction redaction({"zulip-api-key-123", "ghp_token_abcdef"});
    std::string log;
    log += redaction.feed(7, 1, "", 0, "leaked: zulip-api");
    log += redaction.feed(7, 1, "", 1, "-key-123 and ghp_to");
    // The start of the token is held back until the step ends.
    CHECK(log == "leaked: [redacted] and ");
    const auto rests = redaction.finish(7, 1);
    REQUIRE(rests.size() == 1);
    CHECK(rests[0].file.empty());
    CHECK(rests[0].sequence == 2);
    CHECK(rests[0].text == "ghp_to");
    CHECK(redaction.finish(7, 1).empty());
}

TEST_CASE("log redaction: a resent chunk leaves what the stream held back where it was") {
    // The end-to-end test (master_e2e_log_frames) lost the log's last byte whenever it matched
    // the first byte of a random secret: the resend of chunk 0 carried it away, and the store
    // dropped the resend as a duplicate.
    LogRedaction redaction({"the-secret-value"});
    CHECK(redaction.feed(3, 1, "", 0, "first chunk\n") == "first chunk\n");
    CHECK(redaction.feed(3, 1, "", 1, "ends with t") == "ends with ");
    // The resend is redacted whole, on its own.
    CHECK(redaction.feed(3, 1, "", 0, "again the-secret-value and t") == "again [redacted] and t");
    const auto rests = redaction.finish(3, 1);
    REQUIRE(rests.size() == 1);
    CHECK(rests[0].sequence == 2);
    CHECK(rests[0].text == "t");
}

TEST_CASE("log redaction: streams of steps, log files and builds are apart") {
    LogRedaction redaction({"the-secret-value"});
    // Halves in different streams are not one secret; each stream holds its own tail.
    CHECK(redaction.feed(1, 1, "", 0, "a the-secret") == "a ");
    CHECK(redaction.feed(1, 1, "test.log", 0, "b the-secret") == "b ");
    CHECK(redaction.feed(2, 1, "", 0, "-value c") == "-value c");
    CHECK(redaction.feed(1, 2, "", 0, "-value d") == "-value d");
    CHECK(redaction.feed(1, 1, "test.log", 5, "-value e") == "[redacted] e");
    CHECK(redaction.feed(1, 1, "", 3, "-value f the-secret-val") == "[redacted] f ");
    auto rests = redaction.finish(1, 1);
    REQUIRE(rests.size() == 1);
    CHECK(rests[0].file.empty());
    CHECK(rests[0].sequence == 4);
    CHECK(rests[0].text == "the-secret-val");

    // A build that ends without its steps' ends: what each stream held back is given once,
    // with its step (a raw worker's last byte was lost before), and nothing stays behind.
    CHECK(redaction.feed(3, 1, "", 0, "x the-sec") == "x ");
    CHECK(redaction.feed(3, 2, "out.log", 0, "y the-") == "y ");
    CHECK(redaction.feed(4, 1, "", 0, "z the-s") == "z ");
    rests = redaction.finish_build(3);
    REQUIRE(rests.size() == 2);
    CHECK(rests[0].step == 1);
    CHECK(rests[0].file.empty());
    CHECK(rests[0].sequence == 1);
    CHECK(rests[0].text == "the-sec");
    CHECK(rests[1].step == 2);
    CHECK(rests[1].file == "out.log");
    CHECK(rests[1].text == "the-");
    CHECK(redaction.finish_build(3).empty());
    CHECK(redaction.finish(3, 1).empty());
    CHECK(redaction.feed(3, 1, "", 1, "ret-value") == "ret-value");
    CHECK(redaction.finish(4, 1).size() == 1); // another build's stream is its own
}

TEST_CASE("log redaction: no secrets, or only short ones, pass chunks through") {
    LogRedaction none({});
    CHECK(none.feed(1, 1, "", 0, "anything at all") == "anything at all");
    CHECK(none.finish(1, 1).empty());
    LogRedaction short_only({"abc"});
    CHECK(short_only.feed(1, 1, "", 0, "abc abc ab") == "abc abc ab");
}

} // namespace
