// `slaves.<class>.worker_files`: destinations checked (no "..", no duplicates, no file that is
// another's directory), sources resolved against the config file's directory and read by
// load_config (missing, unreadable, too large: errors at their line naming the key), the JSON
// form keeping them, and what of a file's content is redacted.

#include <algorithm>
#include <filesystem>
#include <string>
#include <variant>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <ci/config/load.h>
#include <ci/config/worker_files.h>

#include "support/require_ok.h"
#include "support/temp_dir.h"

using ci::config::check_worker_file_destination;

namespace {

std::string config_with(const std::string& worker_class) {
    return "slaves:\n" + worker_class +
           "builders:\n"
           "  b: {workers: [osx], steps: [{name: s, run: [true]}]}\n";
}

// The errors of checking `text`, one string each.
std::vector<std::string> errors_of(const ci::config::CheckedConfig& checked) {
    std::vector<std::string> out;
    for (const auto& error : checked.errors()) {
        out.push_back(error.to_string());
    }
    return out;
}

bool has_error(const ci::config::CheckedConfig& checked, const std::string& text) {
    const auto errors = errors_of(checked);
    const bool found = std::ranges::any_of(
        errors, [&](const std::string& e) { return e.find(text) != std::string::npos; });
    if (!found) {
        for (const auto& e : errors) {
            MESSAGE("error: ", e);
        }
    }
    return found;
}

// The JSON form gives `config` back whole (worker_files included).
void check_json_round_trip(const ci::config::Config& config) {
    const auto json = ci::config::parse_config_json(ci::config::to_json(config), "json");
    REQUIRE(json.ok());
    CHECK(*json.config == config);
}

} // namespace

TEST_CASE("worker file destinations: absolute or relative, never escaping") {
    CHECK_OK(check_worker_file_destination("/root/.ssh/id_rsa"));
    CHECK_OK(check_worker_file_destination("acceptance.yml"));
    CHECK_OK(check_worker_file_destination("secrets/github-token"));
    CHECK_OK(check_worker_file_destination(".hidden/..x/x.."));
    for (const char* bad : {"",
                            "/",
                            "..",
                            "../x",
                            "a/../../x",
                            "/etc/../root/x",
                            "./x",
                            "a/./b",
                            "a//b",
                            "a/",
                            "//x",
                            "a\nb",
                            "a\tb"}) {
        INFO(bad);
        const auto checked = check_worker_file_destination(bad);
        REQUIRE_FALSE(checked);
        CHECK(checked.error().code == ci::ErrorCode::InvalidArgument);
    }
    CHECK_FALSE(check_worker_file_destination(std::string(1025, 'a')));
    CHECK_OK(check_worker_file_destination(std::string(1024, 'a')));

    CHECK_OK(
        ci::config::check_worker_file_destinations({{"a", "x"}, {"a-b/c", "x"}, {"ab/c", "x"}}));
    const auto nested = ci::config::check_worker_file_destinations(
        {{"a", "x"}, {"a-b", "x"}, {"a.c", "x"}, {"a/b", "x"}});
    REQUIRE_FALSE(nested);
    CHECK(nested.error().message == "\"a\" is a directory of \"a/b\": a file cannot be both");
}

TEST_CASE("worker_files in config text: destinations checked at their line, classes that may "
          "have them") {
    SUBCASE("a static class keeps them as written (no file read without a config file)") {
        const auto checked = ci::config::parse_config(
            config_with("  osx:\n"
                        "    passwords: [pw-long-enough]\n"
                        "    worker_files:\n"
                        "      /home/ci/.ssh/id_rsa: keys/ci\n"
                        "      acceptance.yml: /etc/libci/acceptance.yml\n"),
            "c.yml");
        REQUIRE(checked.ok());
        const auto& fixed = std::get<ci::config::StaticWorkers>(checked.config->slaves.at("osx"));
        CHECK(fixed.worker_files ==
              std::map<std::string, std::string>{{"/home/ci/.ssh/id_rsa", "keys/ci"},
                                                 {"acceptance.yml", "/etc/libci/acceptance.yml"}});
        check_json_round_trip(*checked.config);
    }
    SUBCASE("an EC2 class may have them") {
        const auto checked =
            ci::config::parse_config("slaves:\n"
                                     "  aws:\n"
                                     "    ami: ubuntu\n"
                                     "    worker_files: {token: /srv/token}\n"
                                     "builders:\n"
                                     "  b: {workers: [aws], steps: [{name: s, run: [true]}]}\n",
                                     "c.yml");
        REQUIRE(checked.ok());
        CHECK(std::get<ci::config::Ec2Workers>(checked.config->slaves.at("aws")).worker_files ==
              std::map<std::string, std::string>{{"token", "/srv/token"}});
        check_json_round_trip(*checked.config);
    }
    SUBCASE("a local class may not") {
        const auto checked =
            ci::config::parse_config(config_with("  osx:\n"
                                                 "    local: true\n"
                                                 "    worker_files: {token: /srv/token}\n"),
                                     "c.yml");
        CHECK(has_error(checked,
                        "c.yml:4:5: slaves.osx.worker_files: not valid for a local worker class"));
    }
    SUBCASE("escapes, duplicates, nesting, missing sources and wrong types are errors at their "
            "place") {
        const auto checked =
            ci::config::parse_config(config_with("  osx:\n"
                                                 "    passwords: [pw-long-enough]\n"
                                                 "    worker_files:\n"
                                                 "      ../etc/passwd: a\n"
                                                 "      /srv/../etc/x: a\n"
                                                 "      token: b\n"
                                                 "      token: c\n"
                                                 "      empty:\n"
                                                 "      list: [a]\n"),
                                     "c.yml");
        REQUIRE_FALSE(checked.ok());
        CHECK(has_error(checked, "c.yml:5:7: slaves.osx.worker_files.../etc/passwd: has a \"..\""));
        CHECK(has_error(checked, "c.yml:6:7: slaves.osx.worker_files./srv/../etc/x: has a \"..\""));
        CHECK(has_error(checked, "c.yml:8:7: slaves.osx.worker_files"));
        CHECK(has_error(checked, "duplicate"));
        CHECK(has_error(checked,
                        "c.yml:9:7: slaves.osx.worker_files.empty: needs a SOURCE: the file on "
                        "the master"));
        CHECK(has_error(checked, "c.yml:10:13: slaves.osx.worker_files.list"));
    }
    SUBCASE("a file that is another's directory") {
        const auto checked =
            ci::config::parse_config(config_with("  osx:\n"
                                                 "    passwords: [pw-long-enough]\n"
                                                 "    worker_files: {a: x, a/b: y}\n"),
                                     "c.yml");
        CHECK(has_error(checked,
                        "c.yml:4:5: slaves.osx.worker_files: \"a\" is a directory of \"a/b\""));
    }
    SUBCASE("not a mapping") {
        const auto checked =
            ci::config::parse_config(config_with("  osx:\n"
                                                 "    passwords: [pw-long-enough]\n"
                                                 "    worker_files: [a, b]\n"),
                                     "c.yml");
        CHECK(has_error(checked, "c.yml:4:19: slaves.osx.worker_files"));
    }
}

TEST_CASE("load_config resolves worker_files sources against the config's directory and reads "
          "them") {
    const ci::test::TempDir dir;
    const auto config = dir / "conf/config.yml";
    const auto write_config = [&](const std::string& files) {
        ci::test::write_file(config,
                             config_with("  osx:\n"
                                         "    passwords: [pw-long-enough]\n"
                                         "    worker_files:\n" +
                                         files));
    };
    ci::test::write_file(dir / "conf/secrets/token", "ghp_0123456789abcdef0123456789\n");
    ci::test::write_file(dir / "elsewhere/key", "KEY");

    SUBCASE("relative and absolute sources") {
        write_config("      .config/token: secrets/token\n"
                     "      /home/ci/key: " +
                     (dir / "elsewhere/key").string() + "\n");
        auto loaded = ci::config::load_config(config);
        REQUIRE_OK(loaded);
        REQUIRE(loaded->ok());
        const auto& files =
            std::get<ci::config::StaticWorkers>(loaded->config->slaves.at("osx")).worker_files;
        CHECK(files.at(".config/token") == (dir / "conf/secrets/token").string());
        CHECK(files.at("/home/ci/key") == (dir / "elsewhere/key").string());
        auto read = ci::config::read_worker_files("osx", files);
        REQUIRE_OK(read);
        REQUIRE(read->size() == 2);
        CHECK((*read)[0] ==
              ci::config::WorkerFileContent{".config/token", "ghp_0123456789abcdef0123456789\n"});
        CHECK((*read)[1] == ci::config::WorkerFileContent{"/home/ci/key", "KEY"});
    }
    SUBCASE("a missing source: an error at its line, naming the key and the file") {
        write_config("      token: secrets/token\n"
                     "      key: secrets/missing\n");
        auto loaded = ci::config::load_config(config);
        REQUIRE_OK(loaded);
        REQUIRE_FALSE(loaded->ok());
        const auto errors = errors_of(*loaded);
        REQUIRE(errors.size() == 1);
        CHECK(errors[0] == config.string() + ":6:12: slaves.osx.worker_files.key: read " +
                               (dir / "conf/secrets/missing").string() +
                               ": No such file or directory");
    }
    SUBCASE("a directory, an unreadable file") {
        write_config("      dir: secrets\n");
        auto loaded = ci::config::load_config(config);
        REQUIRE_OK(loaded);
        CHECK(has_error(*loaded,
                        "slaves.osx.worker_files.dir: " + (dir / "conf/secrets").string() +
                            " is not a regular file"));
    }
    SUBCASE("over 1 MiB, and over 4 MiB together") {
        ci::test::write_file(dir / "conf/big",
                             std::string(ci::config::max_worker_file_size + 1, 'x'));
        write_config("      big: big\n");
        auto loaded = ci::config::load_config(config);
        REQUIRE_OK(loaded);
        CHECK(has_error(*loaded,
                        ":5:12: slaves.osx.worker_files.big: " + (dir / "conf/big").string() +
                            " is larger than 1048576 bytes (1 MiB)"));

        std::string files;
        for (int i = 0; i < 5; ++i) {
            ci::test::write_file(dir / ("conf/mib" + std::to_string(i)),
                                 std::string(ci::config::max_worker_file_size, 'x'));
            files += "      f" + std::to_string(i) + ": mib" + std::to_string(i) + "\n";
        }
        write_config(files);
        loaded = ci::config::load_config(config);
        REQUIRE_OK(loaded);
        REQUIRE_FALSE(loaded->ok());
        CHECK(has_error(*loaded,
                        ":9:11: slaves.osx.worker_files.f4: the class's worker files are larger "
                        "than 4194304 bytes (4 MiB) together"));
        CHECK(errors_of(*loaded).size() == 1);
        // Exactly 4 MiB is accepted.
        files.resize(files.rfind("      f4"));
        write_config(files);
        loaded = ci::config::load_config(config);
        REQUIRE_OK(loaded);
        CHECK(loaded->ok());
    }
}

TEST_CASE("read_worker_files: errors name the key and the source, never the content") {
    const ci::test::TempDir dir;
    ci::test::write_file(dir / "big", std::string(ci::config::max_worker_file_size + 1, 's'));
    auto read = ci::config::read_worker_files("aws", {{"t", (dir / "missing").string()}});
    REQUIRE_FALSE(read);
    CHECK(read.error().code == ci::ErrorCode::NotFound);
    CHECK(read.error().message.starts_with("slaves.aws.worker_files.t: read "));
    read = ci::config::read_worker_files("aws", {{"t", (dir / "big").string()}});
    REQUIRE_FALSE(read);
    CHECK(read.error().message.find("sss") == std::string::npos);
    read = ci::config::read_worker_files("aws", {{"t", "/dev/null"}});
    REQUIRE_FALSE(read);
    CHECK(read.error().message == "slaves.aws.worker_files.t: /dev/null is not a regular file");
}

TEST_CASE("worker_file_secrets: the whole content and its token-like lines") {
    CHECK(ci::config::worker_file_secrets("") == std::vector<std::string>{});
    CHECK(ci::config::worker_file_secrets("ghp_abcdefghijklmnop\n") ==
          std::vector<std::string>{"ghp_abcdefghijklmnop"});
    const std::string key = "-----BEGIN OPENSSH PRIVATE KEY-----\r\n"
                            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\r\n"
                            "short\n"
                            "a line with spaces that is long\n";
    CHECK(ci::config::worker_file_secrets(key) ==
          std::vector<std::string>{key.substr(0, key.size() - 1),
                                   "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU="});
    // At most 128 lines besides the whole content.
    std::string many;
    for (int i = 0; i < 200; ++i) {
        many += fmt::format("line-{:012}-of-many\n", i);
    }
    const auto secrets = ci::config::worker_file_secrets(many);
    REQUIRE(secrets.size() == 129);
    CHECK(secrets[1] == "line-000000000000-of-many");
    CHECK(secrets[128] == "line-000000000127-of-many");
}
