#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <ci/build/runner.h>
#include <ci/config/load.h>
#include <ci/core/log.h>

#include "config/reader.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"

using ci::config::CheckedConfig;
using ci::config::Config;
using ci::config::Diagnostic;

namespace {

std::filesystem::path source_dir() {
    const char* dir = std::getenv("LIBCI_SOURCE_DIR");
    REQUIRE_MESSAGE(dir != nullptr, "LIBCI_SOURCE_DIR is not set (run through meson test)");
    return dir;
}

CheckedConfig load(const std::filesystem::path& path) {
    auto checked = ci::config::load_config(path);
    REQUIRE_OK(checked);
    return std::move(*checked);
}

std::string all_diagnostics(const CheckedConfig& checked) {
    std::string text;
    for (const auto& diagnostic : checked.diagnostics) {
        text += diagnostic.to_string() + "\n";
    }
    return text;
}

// Parses text that must be valid and returns its Config.
Config parse_ok(const std::string& yaml) {
    auto checked = ci::config::parse_config(yaml, "test.yml");
    INFO(all_diagnostics(checked));
    REQUIRE(checked.ok());
    return *checked.config;
}

// Parses text that must be invalid and returns its errors.
std::vector<Diagnostic> parse_errors(const std::string& yaml) {
    auto checked = ci::config::parse_config(yaml, "test.yml");
    INFO(all_diagnostics(checked));
    REQUIRE_FALSE(checked.ok());
    return checked.errors();
}

// True when some error is at `path` and its message contains `text`.
bool has_error(const std::vector<Diagnostic>& errors,
               const std::string& path,
               const std::string& text) {
    return std::ranges::any_of(errors, [&](const Diagnostic& d) {
        return d.key_path == path && d.message.find(text) != std::string::npos;
    });
}

const char* minimal_pipeline = R"(
slaves:
  local: {local: true}
repositories:
  app: {url: /srv/app.git}
builders:
  app-tests:
    repository: app
    workers: [local]
    steps:
      - {name: test, run: make check}
)";

} // namespace

TEST_CASE(
    "config: the old deployment's config.yml loads as is, with warnings for what is ignored") {
    const auto checked = load(source_dir() / "tests/data/config/config.yml");
    INFO(all_diagnostics(checked));
    REQUIRE(checked.ok());
    const Config& config = *checked.config;

    REQUIRE(config.auth.has_value());
    CHECK(config.auth->user == "admin");
    CHECK(config.auth->password == "example-web-password");
    REQUIRE(config.zulip.has_value());
    CHECK(config.zulip->stream == "BuildBot");
    CHECK(config.zulip->critical_stream == "Engineering");
    CHECK(config.github.report_status);
    CHECK(config.github.token == "ghp_exampletokenexampletokenexample0000");
    CHECK(config.buildmaster.host == "ci.example.org");
    CHECK(config.buildmaster.web_port == 8010);
    CHECK(config.buildmaster.worker_port == 9989);
    CHECK(config.aws.identifier == "AKIAEXAMPLEEXAMPLE00");
    CHECK(config.aws.image_tags == std::map<std::string, std::string>{{"production", "true"}});
    CHECK(config.failing_builders.empty());

    // Eight classes in the file; the Rackspace one is dropped.
    CHECK(config.slaves.size() == 7);
    CHECK_FALSE(config.slaves.contains("rackspace/centos-7"));
    const auto& spot = std::get<ci::config::Ec2Workers>(config.slaves.at("aws/centos-7"));
    CHECK(spot.ami == "buildslave-centos-7");
    CHECK(spot.count == 3);
    CHECK(spot.instance_type == "c3.large");
    CHECK(spot.max_builds == 2);
    CHECK(spot.max_spot_price == 0.10);
    const auto& on_demand = std::get<ci::config::Ec2Workers>(config.slaves.at("aws/ubuntu-14.04"));
    CHECK_FALSE(on_demand.max_spot_price.has_value());
    const auto& rhel = std::get<ci::config::StaticWorkers>(config.slaves.at("aws/rhel-7.2/0"));
    CHECK(rhel.distribution == "rhel-7.2");
    CHECK(rhel.passwords == std::vector<std::string>{"example-worker-password-1"});
    const auto& openstack =
        std::get<ci::config::StaticWorkers>(config.slaves.at("redhat-openstack/centos-7"));
    CHECK(openstack.passwords.size() == 2);

    const auto warnings = checked.warnings();
    REQUIRE(warnings.size() == 4);
    // The old plain password loads, with a warning that says what to do instead.
    CHECK(warnings[0].key_path == "auth.password");
    CHECK(warnings[0].message.find("ci-master hash-password") != std::string::npos);
    CHECK(warnings[1].key_path == "manhole");
    CHECK(warnings[1].line == 11);
    CHECK(warnings[2].key_path == "rackspace");
    // The EC2 classes are used as they are (the master launches their instances): no warning.
    CHECK(warnings[3].key_path == "slaves.rackspace/centos-7");
    CHECK(warnings[3].to_string().find("config.yml:55:5: warning: slaves.rackspace/centos-7: ") !=
          std::string::npos);
}

TEST_CASE("config: staging.yml is the same file with staging's host, tag and reporting") {
    const auto checked = load(source_dir() / "tests/data/config/staging.yml");
    INFO(all_diagnostics(checked));
    REQUIRE(checked.ok());
    CHECK(checked.config->buildmaster.host == "54.191.9.106");
    CHECK(checked.config->buildmaster.docker_tag == "staging");
    CHECK_FALSE(checked.config->github.report_status);
}

TEST_CASE("config: the example config loads and uses every section") {
    const auto checked = load(source_dir() / "examples/config.yml");
    INFO(all_diagnostics(checked));
    REQUIRE(checked.ok());
    CHECK(checked.diagnostics.empty());
    const Config& config = *checked.config;
    CHECK(std::holds_alternative<ci::config::LocalWorkers>(config.slaves.at("local")));
    CHECK(config.repositories.at("demo").poll_interval == std::chrono::seconds(10));
    const auto& builder = config.builders.at("demo-tests");
    REQUIRE(builder.steps.size() == 2);
    CHECK(builder.steps[0].command ==
          std::vector<std::string>{"/bin/sh", "-c", "git log --oneline -n 3"});
    CHECK(builder.steps[1].command == std::vector<std::string>{"/bin/sh", "./test.sh"});
    // What `ci-deploy check examples/config.yml` needs: a runtime with what it requires.
    CHECK(config.deploy.runtime == ci::config::Deploy::Runtime::Process);
    CHECK(config.deploy.binary == "/usr/local/bin/ci-master");
    CHECK(builder.steps[1].timeout == std::chrono::minutes(10));
    CHECK(builder.timeout == std::chrono::minutes(30));
    CHECK(config.schedulers.at("branches").max_wait == std::chrono::minutes(2));
    CHECK(config.schedulers.at("nightly").type == ci::config::Scheduler::Type::Periodic);
    CHECK(config.schedulers.at("nightly").at == "03:00");
}

TEST_CASE("config: an empty file is the documented defaults") {
    CHECK(parse_ok("") == Config{});
    CHECK(parse_ok("# nothing but a comment\n") == Config{});
    const Config defaults{};
    CHECK(defaults.buildmaster.web_port == 8010);
    CHECK(defaults.buildmaster.worker_port == 9989);
    CHECK(defaults.buildmaster.state == "state.sqlite");
    CHECK(defaults.buildmaster.max_retries == 3);
}

TEST_CASE("config: aws.image_tags is missing, null, empty or a map") {
    CHECK(parse_ok("aws: {}\n").aws.image_tags ==
          std::map<std::string, std::string>{{"production", "true"}});
    CHECK(parse_ok("aws:\n  image_tags:\n").aws.image_tags.empty());
    CHECK(parse_ok("aws:\n  image_tags: {}\n").aws.image_tags.empty());
    CHECK(parse_ok("aws:\n  image_tags: {stage: beta, production: true}\n").aws.image_tags ==
          std::map<std::string, std::string>{{"production", "true"}, {"stage", "beta"}});
}

TEST_CASE("config: zulip.critical_stream null disables critical notifications") {
    const auto config = parse_ok("zulip: {user: u, password: p, stream: s, critical_stream: }\n");
    REQUIRE(config.zulip.has_value());
    CHECK_FALSE(config.zulip->critical_stream.has_value());
    const auto errors = parse_errors("zulip: {user: u}\n");
    CHECK(has_error(errors, "zulip.password", "missing required key"));
    CHECK(has_error(errors, "zulip.stream", "missing required key"));
}

TEST_CASE("config: buildmaster.web_hosts") {
    auto config = parse_ok("buildmaster: {}\n");
    CHECK(config.buildmaster.web_hosts.empty());
    config = parse_ok("buildmaster: {web_hosts: [ci.example.org, Proxy-1.example.NET]}\n");
    CHECK(config.buildmaster.web_hosts ==
          std::vector<std::string>{"ci.example.org", "Proxy-1.example.NET"});
    auto back = ci::config::parse_config_json(ci::config::to_json(config), "j");
    REQUIRE(back.config);
    CHECK(*back.config == config);
    for (const char* bad : {"'ci.example.org:8010'",
                            "'https://ci.example.org'",
                            "'a b'",
                            "'.example.org'",
                            "'-x'",
                            "'a..b'",
                            "''"}) {
        CAPTURE(bad);
        const auto errors =
            parse_errors(fmt::format("buildmaster: {{web_hosts: [ok, {}]}}\n", bad));
        CHECK(has_error(errors, "buildmaster.web_hosts[1]", "expected a host name"));
    }
    CHECK(has_error(
        parse_errors("buildmaster: {web_hosts: ci.example.org}\n"), "buildmaster.web_hosts", ""));
}

TEST_CASE("config: zulip.site, ops_stream and give_up") {
    auto config = parse_ok("zulip: {user: u, password: p, stream: s}\n");
    CHECK(config.zulip->site == "https://api.zulip.com");
    CHECK_FALSE(config.zulip->ops_stream.has_value());
    CHECK(config.zulip->give_up == std::chrono::hours(6));
    config = parse_ok("zulip: {user: u, password: p, stream: s, ops_stream: ops,\n"
                      "        site: \"https://chat.example.org\", give_up: 10m}\n");
    CHECK(config.zulip->ops_stream == "ops");
    CHECK(config.zulip->site == "https://chat.example.org");
    CHECK(config.zulip->give_up == std::chrono::minutes(10));
    auto back = ci::config::parse_config_json(ci::config::to_json(config), "j");
    REQUIRE(back.config);
    CHECK(*back.config == config);
    const auto errors =
        parse_errors("zulip: {user: u, password: p, stream: s, site: chat.example.org,\n"
                     "        give_up: 0, ops_streem: x}\n");
    CHECK(has_error(errors, "zulip.site", "http"));
    CHECK(has_error(errors, "zulip.give_up", "at least 1s"));
    CHECK(has_error(errors, "zulip.ops_streem", "did you mean \"ops_stream\""));
}

TEST_CASE("config: three mistakes are all reported with line, column and key path") {
    const std::string text = "buildmaster:\n"
                             "  web_port: eighty\n"      // a wrong type
                             "  hostt: ci.example.org\n" // an unknown key
                             "auth:\n"
                             "  user: admin\n"; // auth.password missing
    auto checked = ci::config::parse_config(text, "config.yml");
    REQUIRE_FALSE(checked.ok());
    const auto errors = checked.errors();
    REQUIRE(errors.size() == 3);
    CHECK(errors[0].to_string() ==
          "config.yml:2:13: buildmaster.web_port: expected an integer, got \"eighty\"");
    CHECK(errors[1].to_string() ==
          "config.yml:3:3: buildmaster.hostt: unknown key (did you mean \"host\"?)");
    CHECK(errors[2].to_string() == "config.yml:5:3: auth.password: missing required key");
    auto result = std::move(checked).to_result();
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().code == ci::ErrorCode::ConfigInvalid);
    CHECK(std::ranges::count(result.error().message, '\n') == 2);
}

TEST_CASE("config: unknown keys are errors, with a suggestion only when one is close") {
    auto errors = parse_errors("builder: {}\nzzz: 1\n");
    CHECK(has_error(errors, "builder", "did you mean \"builders\"?"));
    CHECK(has_error(errors, "zzz", "unknown key"));
    CHECK_FALSE(has_error(errors, "zzz", "did you mean"));
    errors = parse_errors("buildmaster: {web_prot: 1}\n");
    CHECK(has_error(errors, "buildmaster.web_prot", "did you mean \"web_port\"?"));
}

TEST_CASE("config: a duplicate key is an error naming the first definition") {
    const auto errors = parse_errors("buildmaster:\n  host: a\n  host: b\n");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].key_path == "buildmaster.host");
    CHECK(errors[0].line == 3);
    CHECK(errors[0].message == "duplicate key (first defined on line 2)");
}

TEST_CASE("config: a YAML syntax error is one ConfigSyntax error with its position") {
    auto checked = ci::config::parse_config("a: [1, 2\nb: c\n", "broken.yml");
    REQUIRE_FALSE(checked.ok());
    REQUIRE(checked.errors().size() == 1);
    CHECK(checked.errors()[0].line > 0);
    auto result = std::move(checked).to_result();
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().code == ci::ErrorCode::ConfigSyntax);
    CHECK(result.error().message.starts_with("broken.yml:"));
}

TEST_CASE("config: scalars are checked") {
    SUBCASE("ports") {
        auto errors = parse_errors("buildmaster: {web_port: 70000, worker_port: -1}\n");
        CHECK(has_error(errors, "buildmaster.web_port", "from 0 to 65535, got 70000"));
        CHECK(has_error(errors, "buildmaster.worker_port", "from 0 to 65535, got -1"));
        // 0 is a free port; both may be 0.
        CHECK(ci::config::parse_config("buildmaster: {web_port: 0, worker_port: 0}\n", "t.yml")
                  .errors()
                  .empty());
        errors = parse_errors("buildmaster: {web_port: 9000, worker_port: 9000}\n");
        CHECK(has_error(errors, "buildmaster.worker_port", "must differ from web_port"));
    }
    SUBCASE("retries") {
        CHECK(parse_ok("buildmaster: {max_retries: 0}\n").buildmaster.max_retries == 0);
        CHECK(parse_ok("buildmaster: {max_retries: 10}\n").buildmaster.max_retries == 10);
        auto errors = parse_errors("buildmaster: {max_retries: -1}\n");
        CHECK(has_error(errors, "buildmaster.max_retries", "from 0 to 100, got -1"));
        errors = parse_errors("buildmaster: {max_retries: many}\n");
        CHECK(has_error(errors, "buildmaster.max_retries", "expected an integer"));
    }
    SUBCASE("tls: on by default, false, or a certificate and its key") {
        CHECK(parse_ok("buildmaster: {host: ci}\n").buildmaster.tls ==
              ci::config::WorkerTls{true, "", ""});
        CHECK_FALSE(parse_ok("buildmaster: {tls: false}\n").buildmaster.tls.enabled);
        CHECK(parse_ok("buildmaster: {tls: true}\n").buildmaster.tls.enabled);
        const auto files = parse_ok("buildmaster: {tls: {cert: c.pem, key: k.pem}}\n");
        CHECK(files.buildmaster.tls == ci::config::WorkerTls{true, "c.pem", "k.pem"});
        // The JSON form keeps them.
        auto back = ci::config::parse_config_json(ci::config::to_json(files), "j");
        REQUIRE(back.ok());
        CHECK(back.config->buildmaster.tls == files.buildmaster.tls);
        auto off = ci::config::parse_config_json(
            ci::config::to_json(parse_ok("buildmaster: {tls: false}\n")), "j");
        REQUIRE(off.ok());
        CHECK_FALSE(off.config->buildmaster.tls.enabled);
        CHECK(has_error(parse_errors("buildmaster: {tls: {cert: c.pem}}\n"),
                        "buildmaster.tls.key",
                        "cert and key go together"));
        CHECK(has_error(parse_errors("buildmaster: {tls: {key: k.pem}}\n"),
                        "buildmaster.tls.cert",
                        "cert and key go together"));
        CHECK(has_error(parse_errors("buildmaster: {tls: {cert: c.pem, key: k.pem, ca: x}}\n"),
                        "buildmaster.tls.ca",
                        "unknown key"));
        CHECK(has_error(parse_errors("buildmaster: {tls: maybe}\n"),
                        "buildmaster.tls",
                        "expected true or false"));
        CHECK(has_error(parse_errors("buildmaster: {tls: [a]}\n"), "buildmaster.tls", ""));
    }
    SUBCASE("booleans in the spellings of YAML 1.2") {
        CHECK(parse_ok("github: {token: t, report_status: True}\n").github.report_status);
        CHECK_FALSE(parse_ok("github: {report_status: false}\n").github.report_status);
        CHECK(has_error(parse_errors("github: {report_status: maybe}\n"),
                        "github.report_status",
                        "expected true or false"));
        CHECK(has_error(parse_errors("github: {report_status: true}\n"),
                        "github.report_status",
                        "needs github.token"));
    }
    SUBCASE("durations") {
        const auto duration_of = [](const std::string& text) {
            const auto config = parse_ok(std::string(minimal_pipeline) +
                                         "      - {name: t2, run: x, timeout: " + text + "}\n");
            return *config.builders.at("app-tests").steps[1].timeout;
        };
        CHECK(duration_of("30s") == std::chrono::seconds(30));
        CHECK(duration_of("5m") == std::chrono::minutes(5));
        CHECK(duration_of("2h") == std::chrono::hours(2));
        CHECK(duration_of("1h30m") == std::chrono::minutes(90));
        CHECK(duration_of("1h0m5s") == std::chrono::seconds(3605));
        CHECK(duration_of("45") == std::chrono::seconds(45));
        for (const char* bad : {"5x", "m5", "-3", "5m1h", "1m1m", "\"\"", "1.5h"}) {
            CAPTURE(bad);
            const auto errors = parse_errors(std::string(minimal_pipeline) +
                                             "      - {name: t2, run: x, timeout: " + bad + "}\n");
            CHECK(has_error(errors, "builders.app-tests.steps[1].timeout", "expected a duration"));
        }
    }
    SUBCASE("a mapping where a string belongs") {
        CHECK(has_error(parse_errors("buildmaster: {host: {a: b}}\n"),
                        "buildmaster.host",
                        "expected a string, got a mapping"));
    }
    SUBCASE("aws credentials come in pairs") {
        CHECK(has_error(parse_errors("aws: {identifier: AKIA}\n"),
                        "aws.secret_identifier",
                        "required when aws.identifier is set"));
    }
}

TEST_CASE("config: worker classes") {
    SUBCASE("a class needs a kind") {
        CHECK(has_error(
            parse_errors("slaves:\n  x: {max_builds: 2}\n"), "slaves.x", "needs one of ami"));
        CHECK(has_error(parse_errors("slaves:\n  x: {ami: a, passwords: [p]}\n"),
                        "slaves.x",
                        "exactly one of"));
    }
    SUBCASE("keys that belong to another kind are refused") {
        const auto errors = parse_errors("slaves:\n  x: {passwords: [p], instance_type: c3}\n");
        CHECK(has_error(errors, "slaves.x.instance_type", "not valid for a static worker class"));
    }
    SUBCASE("counts and prices") {
        const auto errors = parse_errors(
            "slaves:\n  x: {ami: a, slaves: 0, max_builds: -1, max_spot_price: -0.5}\n");
        CHECK(has_error(errors, "slaves.x.slaves", "from 1 to"));
        CHECK(has_error(errors, "slaves.x.max_builds", "from 1 to"));
        CHECK(has_error(errors, "slaves.x.max_spot_price", "positive"));
    }
    SUBCASE("step_user: local classes only, a name (issue 15)") {
        const auto config = parse_ok("slaves:\n  l: {local: true, slaves: 2, step_user: nobody}\n");
        const auto& local = std::get<ci::config::LocalWorkers>(config.slaves.at("l"));
        CHECK(local.step_user == "nobody");
        CHECK(local.count == 2);
        auto back = ci::config::parse_config_json(ci::config::to_json(config), "j");
        REQUIRE(back.config);
        CHECK(*back.config == config);
        CHECK(has_error(parse_errors("slaves:\n  l: {local: true, step_user: \"\"}\n"),
                        "slaves.l.step_user",
                        "must name a user"));
        CHECK(has_error(parse_errors("slaves:\n  s: {passwords: [p], step_user: nobody}\n"),
                        "slaves.s.step_user",
                        "not valid for a static worker class (only local classes have it"));
        CHECK(has_error(parse_errors("slaves:\n  e: {ami: a, step_user: nobody}\n"),
                        "slaves.e.step_user",
                        "not valid for an EC2 worker class (only local classes have it"));
    }
    SUBCASE("static workers need passwords") {
        CHECK(has_error(
            parse_errors("slaves:\n  x: {passwords: []}\n"), "slaves.x.passwords", "at least one"));
    }
}

TEST_CASE("config: the keys of an EC2 pool") {
    const auto config = parse_ok(R"(
aws:
    endpoint_url: http://127.0.0.1:5000
slaves:
    e:
        ami: base
        max_spot_price: 0.2
        key_name: ops
        security_groups: [sg-1, sg-2]
        subnet_id: subnet-9
        iam_instance_profile: ci-worker
        tags: {team: ci}
        region: eu-west-1
        missing_timeout: 10m
        build_wait_timeout: 60
        max_lifetime: 24h
        spot_fallback: true
        idle_action: stop
        stopped_max: 2
    d:
        ami: other
)");
    CHECK(config.aws.endpoint_url == "http://127.0.0.1:5000");
    const auto& e = std::get<ci::config::Ec2Workers>(config.slaves.at("e"));
    CHECK(e.key_name == "ops");
    CHECK(e.security_groups == std::vector<std::string>{"sg-1", "sg-2"});
    CHECK(e.subnet_id == "subnet-9");
    CHECK(e.iam_instance_profile == "ci-worker");
    CHECK(e.tags == std::map<std::string, std::string>{{"team", "ci"}});
    CHECK(e.region == "eu-west-1");
    CHECK(e.missing_timeout == std::chrono::minutes(10));
    CHECK(e.build_wait_timeout == std::chrono::seconds(60));
    CHECK(e.max_lifetime == std::chrono::hours(24));
    CHECK(e.spot_fallback);
    CHECK(e.idle_action == ci::config::Ec2Workers::IdleAction::Stop);
    CHECK(e.stopped_max == 2);
    // The defaults: the old deployment's 50 minutes idle, 20 minutes to connect, terminate.
    const auto& d = std::get<ci::config::Ec2Workers>(config.slaves.at("d"));
    CHECK(d.build_wait_timeout == std::chrono::seconds(3000));
    CHECK(d.missing_timeout == std::chrono::seconds(1200));
    CHECK_FALSE(d.max_lifetime.has_value());
    CHECK_FALSE(d.spot_fallback);
    CHECK(d.idle_action == ci::config::Ec2Workers::IdleAction::Terminate);
    CHECK(d.region.empty());
    // And the JSON form carries every one of them.
    auto back = ci::config::parse_config_json(ci::config::to_json(config), "j");
    REQUIRE(back.ok());
    CHECK(*back.config == config);
}

TEST_CASE("config: idle_action stop needs stopped_max, and applies to on-demand instances") {
    // On-demand: used, no warning.
    const auto on_demand = ci::config::parse_config(
        "slaves:\n  e: {ami: a, idle_action: stop, stopped_max: 2}\n", "t.yml");
    INFO(all_diagnostics(on_demand));
    REQUIRE(on_demand.ok());
    CHECK(on_demand.diagnostics.empty());
    // Without stopped_max (0): nothing would ever be stopped, an error naming the key.
    const auto none = parse_errors("slaves:\n  e: {ami: a, idle_action: stop}\n");
    REQUIRE(none.size() == 1);
    CHECK(none[0].key_path == "slaves.e.stopped_max");
    CHECK(none[0].message.find("at least 1 with idle_action: stop") != std::string::npos);
    // A spot class: accepted with a warning (its spot instances are terminated when idle).
    const auto spot = ci::config::parse_config(
        "slaves:\n  e: {ami: a, max_spot_price: 0.1, idle_action: stop, stopped_max: 1}\n",
        "t.yml");
    REQUIRE(spot.ok());
    REQUIRE(spot.warnings().size() == 1);
    CHECK(spot.warnings()[0].key_path == "slaves.e.idle_action");
    CHECK(spot.warnings()[0].message.starts_with("stop applies to on-demand instances only"));
    const auto fallback =
        ci::config::parse_config("slaves:\n  e: {ami: a, max_spot_price: 0.1, spot_fallback: "
                                 "true, idle_action: stop, stopped_max: 1}\n",
                                 "t.yml");
    REQUIRE(fallback.warnings().size() == 1);
    CHECK(fallback.warnings()[0].message.find("spot_fallback launches are stopped") !=
          std::string::npos);
    // stopped_max without idle_action stop: said to do nothing.
    const auto unused =
        ci::config::parse_config("slaves:\n  e: {ami: a, stopped_max: 3}\n", "t.yml");
    REQUIRE(unused.ok());
    REQUIRE(unused.warnings().size() == 1);
    CHECK(unused.warnings()[0].key_path == "slaves.e.stopped_max");
    CHECK(unused.warnings()[0].message.find("no effect without idle_action: stop") !=
          std::string::npos);
    CHECK(ci::config::parse_config("slaves:\n  e: {ami: a}\n", "t.yml").warnings().empty());
    // Nothing says "not used yet" any more.
    for (const auto* checked : {&on_demand, &spot, &fallback, &unused}) {
        for (const auto& diagnostic : checked->diagnostics) {
            CHECK_FALSE(diagnostic.message.starts_with("not used yet"));
        }
    }
}

TEST_CASE("config: wrong EC2 pool keys are errors naming the key") {
    const auto errors = parse_errors(R"(
aws:
    endpoint_url: 127.0.0.1:5000
slaves:
    e:
        ami: base
        security_groups: sg-1
        tags: {Name: x, "ci:class": y, ok: z}
        missing_timeout: 0
        build_wait_timeout: soon
        spot_fallback: true
        idle_action: hibernate
        stopped_max: -1
    s:
        passwords: [p]
        idle_action: stop
    l:
        local: true
        subnet_id: subnet-1
)");
    CHECK(has_error(errors, "aws.endpoint_url", "http:// or https://"));
    CHECK(has_error(errors, "slaves.e.security_groups", "list"));
    CHECK(has_error(errors, "slaves.e.tags.Name", "set by the master"));
    CHECK(has_error(errors, "slaves.e.tags.ci:class", "set by the master"));
    CHECK_FALSE(has_error(errors, "slaves.e.tags.ok", ""));
    CHECK(has_error(errors, "slaves.e.missing_timeout", "at least 1s"));
    CHECK(has_error(errors, "slaves.e.build_wait_timeout", ""));
    CHECK(has_error(errors, "slaves.e.spot_fallback", "needs max_spot_price"));
    CHECK(has_error(errors, "slaves.e.idle_action", R"(got "hibernate")"));
    CHECK(has_error(errors, "slaves.e.stopped_max", "from 0 to"));
    CHECK(has_error(errors, "slaves.s.idle_action", "not valid for a static worker class"));
    CHECK(has_error(errors, "slaves.l.subnet_id", "not valid for a local worker class"));
}

TEST_CASE("config: the EC2 endpoint from the config, else the environment") {
    ci::config::Aws aws;
    ::unsetenv("AWS_ENDPOINT_URL_EC2");
    ::unsetenv("AWS_ENDPOINT_URL");
    CHECK(ci::config::ec2_endpoint_url(aws).empty());
    ::setenv("AWS_ENDPOINT_URL", "http://all:1", 1);
    CHECK(ci::config::ec2_endpoint_url(aws) == "http://all:1");
    ::setenv("AWS_ENDPOINT_URL_EC2", "http://ec2:2", 1);
    CHECK(ci::config::ec2_endpoint_url(aws) == "http://ec2:2");
    aws.endpoint_url = "http://config:3";
    CHECK(ci::config::ec2_endpoint_url(aws) == "http://config:3");
    ::unsetenv("AWS_ENDPOINT_URL_EC2");
    ::unsetenv("AWS_ENDPOINT_URL");
}

TEST_CASE("config: references between sections are checked") {
    const auto errors = parse_errors(R"(
slaves:
  local: {local: true}
  rack: {openstack-image: img}
repositories:
  app: {url: /srv/app.git}
locks:
  cpu: {max_count: 2}
builders:
  one:
    repository: ap
    workers: [locl, rack]
    locks: [gpu]
    steps: [{name: s, run: x}]
schedulers:
  main: {type: branch, repository: app, builders: [one, two]}
)");
    CHECK(has_error(errors, "builders.one.repository", "no repository named \"ap\" (did you mean"));
    CHECK(has_error(errors, "builders.one.workers[0]", "(did you mean \"local\"?)"));
    CHECK(has_error(errors, "builders.one.workers[1]", "\"rack\" is not supported"));
    CHECK(has_error(errors, "builders.one.locks[0]", "no lock named \"gpu\""));
    CHECK(has_error(errors, "schedulers.main.builders[1]", "no builder named \"two\""));
    CHECK_FALSE(has_error(errors, "schedulers.main.builders[0]", ""));
}

TEST_CASE("config: builders and steps") {
    SUBCASE("a string is a shell command, a list is an argv") {
        const auto config = parse_ok(minimal_pipeline);
        const auto& steps = config.builders.at("app-tests").steps;
        REQUIRE(steps.size() == 1);
        CHECK(steps[0].command == std::vector<std::string>{"/bin/sh", "-c", "make check"});
        CHECK(steps[0].grace == std::chrono::seconds(10));
        CHECK(steps[0].halt_on_failure);
    }
    SUBCASE("merge targets") {
        auto text = std::string(minimal_pipeline);
        const auto with_target = [&](const std::string& target) {
            return parse_ok(text + "    merge_target: " + target + "\n")
                .builders.at("app-tests")
                .merge_target;
        };
        CHECK(with_target("auto").mode == ci::config::MergeTarget::Mode::Auto);
        CHECK(with_target("none").mode == ci::config::MergeTarget::Mode::None);
        const auto branch = with_target("develop");
        CHECK(branch.mode == ci::config::MergeTarget::Mode::Branch);
        CHECK(branch.branch == "develop");
    }
    SUBCASE("required keys, empty lists and escaping workdirs") {
        const auto errors = parse_errors(R"(
builders:
  b:
    workers: []
    steps:
      - {name: a, run: x, workdir: ../elsewhere}
      - {name: a, run: []}
      - {run: x, workdir: /abs}
)");
        CHECK_FALSE(has_error(errors, "builders.b.repository", "")); // absent: no repository
        CHECK(has_error(errors, "builders.b.workers", "at least one worker class"));
        CHECK(has_error(errors, "builders.b.steps[0].workdir", "inside the checkout"));
        CHECK(has_error(errors, "builders.b.steps[1].run", "needs a command"));
        CHECK(has_error(errors, "builders.b.steps[1].name", "another step"));
        CHECK(has_error(errors, "builders.b.steps[2].name", "missing required key"));
        CHECK(has_error(errors, "builders.b.steps[2].workdir", "inside the checkout"));
    }
}

TEST_CASE("config: schedulers") {
    const std::string base = std::string(minimal_pipeline) + "schedulers:\n";
    SUBCASE("branch defaults") {
        const auto config =
            parse_ok(base + "  s: {type: branch, repository: app, builders: [app-tests]}\n");
        const auto& scheduler = config.schedulers.at("s");
        CHECK(scheduler.branches == std::vector<std::string>{"master", "release/*"});
        CHECK(scheduler.tree_stable_timer == std::chrono::seconds(5));
        CHECK(scheduler.max_wait == std::chrono::minutes(10));
        CHECK_FALSE(scheduler.collapse_requests);
    }
    SUBCASE("keys of other types are refused") {
        const auto errors =
            parse_errors(base + "  s: {type: force, builders: [app-tests], max_wait: 5m}\n" +
                         "  p: {type: periodic, repository: app, builders: [app-tests],\n" +
                         "      branches: [x], interval: 1h}\n");
        CHECK(has_error(errors, "schedulers.s.max_wait", "not valid for a force scheduler"));
        CHECK(has_error(errors, "schedulers.p.branches", "not valid for a periodic scheduler"));
    }
    SUBCASE("periodic needs exactly one of interval and at") {
        auto errors =
            parse_errors(base + "  p: {type: periodic, repository: app, builders: [app-tests]}\n");
        CHECK(has_error(errors, "schedulers.p", "exactly one of interval and at"));
        errors = parse_errors(base + "  p: {type: periodic, repository: app, builders: "
                                     "[app-tests], at: \"25:00\"}\n");
        CHECK(has_error(errors, "schedulers.p.at", "HH:MM"));
    }
    SUBCASE("a cap shorter than the wait, a bad expression, a bad type") {
        const auto errors =
            parse_errors(base + "  s: {type: branch, repository: app, builders: [app-tests],\n" +
                         "      tree_stable_timer: 1m, max_wait: 30s, branches: ['/feat(/']}\n" +
                         "  t: {type: nightly, builders: [app-tests]}\n");
        CHECK(has_error(errors, "schedulers.s.max_wait", "at least tree_stable_timer (60s)"));
        CHECK(has_error(errors, "schedulers.s.branches[0]", "invalid regular expression"));
        CHECK(has_error(
            errors, "schedulers.t.type", "expected branch, force, periodic or triggerable"));
    }
}

TEST_CASE("config: failing_builders naming no builder is a warning, not an error") {
    auto checked = ci::config::parse_config(
        std::string(minimal_pipeline) + "failing_builders: [app-tests, gone]\n", "test.yml");
    REQUIRE(checked.ok());
    REQUIRE(checked.warnings().size() == 1);
    CHECK(checked.warnings()[0].key_path == "failing_builders[1]");
}

TEST_CASE("config: commit-status keys are read and checked") {
    SUBCASE("defaults") {
        const auto config = parse_ok("github: {token: t, report_status: true}\n");
        CHECK(config.github.api_url == "https://api.github.com");
        CHECK(config.github.context_prefix == "libci/");
        CHECK(config.github.strip_prefix.empty());
        CHECK(config.github.builders.empty());
        CHECK(config.github.give_up == std::chrono::hours(6));
        CHECK(config.buildmaster.url.empty());
    }
    SUBCASE("every key set") {
        const auto config = parse_ok(std::string(minimal_pipeline) + R"(
buildmaster: {url: "https://ci.example.org/"}
github:
  token: t
  report_status: true
  api_url: http://127.0.0.1:9999/api/v3
  context_prefix: ""
  strip_prefix: flocker-
  builders: ["flocker*"]
  give_up: 30m
)");
        CHECK(config.buildmaster.url == "https://ci.example.org/");
        CHECK(config.github.api_url == "http://127.0.0.1:9999/api/v3");
        CHECK(config.github.context_prefix.empty());
        CHECK(config.github.strip_prefix == "flocker-");
        CHECK(config.github.builders == std::vector<std::string>{"flocker*"});
        CHECK(config.github.give_up == std::chrono::minutes(30));
    }
    SUBCASE("mistakes name the key") {
        auto errors = parse_errors(std::string(minimal_pipeline) + R"(
buildmaster: {url: "ci.example.org"}
github: {api_url: "ftp://x", give_up: 0, builders: flocker}
)");
        CHECK(has_error(errors, "buildmaster.url", "expected an http:// or https:// URL"));
        CHECK(has_error(errors, "github.api_url", "expected an http:// or https:// URL"));
        CHECK(has_error(errors, "github.give_up", "at least 1s"));
        CHECK(has_error(errors, "github.builders", "expected a list"));
        errors = parse_errors("repositories: {app: {url: /srv/app.git, github: app}}\n");
        CHECK(has_error(errors, "repositories.app.github", "expected OWNER/REPO"));
    }
    SUBCASE("a repository with no OWNER/REPO is a warning when statuses are reported") {
        auto checked = ci::config::parse_config(
            std::string(minimal_pipeline) + "github: {token: t, report_status: true}\n", "t.yml");
        REQUIRE(checked.ok());
        REQUIRE(checked.warnings().size() == 1);
        CHECK(checked.warnings()[0].key_path == "repositories.app");
        CHECK(checked.warnings()[0].message.find("not reported") != std::string::npos);
        const auto config =
            parse_ok("github: {token: t, report_status: true}\n"
                     "repositories: {app: {url: /srv/app.git, github: ClusterHQ/flocker}}\n");
        CHECK(ci::config::github_repository(config.repositories.at("app")) == "ClusterHQ/flocker");
    }
}

TEST_CASE("config: OWNER/REPO from a repository's URL") {
    const auto of = [](std::string url) {
        ci::config::Repository repository;
        repository.url = std::move(url);
        return ci::config::github_repository(repository);
    };
    CHECK(of("https://github.com/ClusterHQ/flocker.git") == "ClusterHQ/flocker");
    CHECK(of("https://github.com/ClusterHQ/flocker") == "ClusterHQ/flocker");
    CHECK(of("https://GitHub.com/ClusterHQ/flocker/") == "ClusterHQ/flocker");
    CHECK(of("http://www.github.com/o/r.js.git") == "o/r.js");
    CHECK(of("git@github.com:ClusterHQ/flocker.git") == "ClusterHQ/flocker");
    CHECK(of("ssh://git@github.com/ClusterHQ/flocker.git") == "ClusterHQ/flocker");
    CHECK(of("ssh://git@github.com:22/ClusterHQ/flocker.git") == "ClusterHQ/flocker");
    CHECK(of("https://x-access-token:secret@github.com/o/r.git") == "o/r");
    CHECK(of("git://github.com/o/r") == "o/r");
    // Not GitHub's, or not a repository.
    CHECK(of("https://gitlab.com/o/r.git").empty());
    CHECK(of("https://github.com.evil.org/o/r.git").empty());
    CHECK(of("https://github.com/o").empty());
    CHECK(of("https://github.com/o/r/tree/master").empty());
    CHECK(of("/srv/git/r.git").empty());
    CHECK(of("").empty());
    CHECK(ci::config::is_github_repository_name("a-b/c_d.e"));
    CHECK_FALSE(ci::config::is_github_repository_name("a/b/c"));
    CHECK_FALSE(ci::config::is_github_repository_name("/b"));
    CHECK_FALSE(ci::config::is_github_repository_name("a/.."));
}

TEST_CASE("config: the JSON form round-trips every config") {
    for (const char* name :
         {"tests/data/config/config.yml", "tests/data/config/staging.yml", "examples/config.yml"}) {
        CAPTURE(name);
        const auto checked = load(source_dir() / name);
        REQUIRE(checked.ok());
        const std::string json = ci::config::to_json(*checked.config);
        auto back = ci::config::parse_config_json(json, "round-trip.json");
        INFO(all_diagnostics(back));
        REQUIRE(back.ok());
        // Only the warnings for keys not used yet (EC2 classes) and for a plain password, as
        // from the YAML.
        const auto kept = [](const ci::config::Diagnostic& d) {
            return d.message.starts_with("not used yet: ") ||
                   d.message.starts_with("a plain password: ");
        };
        for (const auto& diagnostic : back.diagnostics) {
            CAPTURE(diagnostic.to_string());
            CHECK(diagnostic.severity == ci::config::Diagnostic::Severity::Warning);
            CHECK(kept(diagnostic));
        }
        CHECK(back.diagnostics.size() ==
              static_cast<std::size_t>(std::ranges::count_if(checked.diagnostics, kept)));
        CHECK(*back.config == *checked.config);
        // And it is stable: writing the result again gives the same text.
        CHECK(ci::config::to_json(*back.config) == json);
    }
    // Defaults, absent optional sections and a null critical_stream survive too.
    Config config;
    config.zulip = ci::config::Zulip{};
    config.zulip->user = "u";
    config.zulip->password = "p";
    config.zulip->stream = "s";
    config.aws.image_tags.clear();
    config.github.builders = {"flocker*"};
    config.github.give_up = std::chrono::minutes(5);
    config.buildmaster.url = "https://ci.example.org";
    config.repositories["r"] = ci::config::Repository{"/srv/r.git", "master", {}, "o/r"};
    auto back = ci::config::parse_config_json(ci::config::to_json(config), "j");
    REQUIRE(back.ok());
    CHECK(*back.config == config);
}

TEST_CASE("config: the JSON form round-trips a deploy section") {
    for (const char* yaml : {"deploy: {target: local, runtime: process, binary: /opt/ci-master, "
                             "data_dir: /var/lib/libci}\n",
                             "buildmaster: {host: ci.example.org}\n"
                             "deploy: {image: registry.example.org:5000/libci/master}\n",
                             "deploy: {target: 'ssh://ci@[::1]:2222', runtime: podman, image: "
                             "libci}\n"}) {
        CAPTURE(yaml);
        const Config config = parse_ok(yaml);
        auto back = ci::config::parse_config_json(ci::config::to_json(config), "j");
        INFO(all_diagnostics(back));
        REQUIRE(back.ok());
        CHECK(back.config->deploy == config.deploy);
    }
}

TEST_CASE("config: the deploy section") {
    SUBCASE("absent: the defaults, docker to root@buildmaster.host") {
        const Config config = parse_ok("buildmaster: {host: ci.example.org}\n");
        CHECK(config.deploy == ci::config::Deploy{});
        auto target =
            ci::config::parse_deploy_target(config.deploy.target, config.buildmaster.host);
        REQUIRE_OK(target);
        CHECK(target->user == "root");
        CHECK(target->host == "ci.example.org");
        CHECK(target->port == 0);
        CHECK_FALSE(target->local);
    }
    SUBCASE("every key") {
        const Config config = parse_ok("deploy:\n"
                                       "  target: ssh://deploy@ci.example.org:2222\n"
                                       "  runtime: process\n"
                                       "  data_dir: /opt/libci\n"
                                       "  binary: build/tools/ci-master/ci-master\n");
        CHECK(config.deploy.runtime == ci::config::Deploy::Runtime::Process);
        CHECK(config.deploy.data_dir == "/opt/libci");
        CHECK(config.deploy.binary == "build/tools/ci-master/ci-master");
        auto target = ci::config::parse_deploy_target(config.deploy.target, "unused");
        REQUIRE_OK(target);
        CHECK(*target == ci::config::DeployTarget{false, "deploy", "ci.example.org", 2222});
    }
    SUBCASE("mistakes name their key") {
        auto errors = parse_errors("deploy:\n"
                                   "  target: ci.example.org\n"
                                   "  runtime: dokcer\n");
        CHECK(has_error(errors,
                        "deploy.target",
                        "expected \"local\" or an ssh:// URL naming USER@HOST[:PORT]"));
        CHECK(has_error(errors, "deploy.runtime", "did you mean \"docker\"?"));
        errors = parse_errors("deploy: {runtime: process, image: x}\n");
        CHECK(has_error(errors, "deploy.image", "not valid for runtime process"));
        CHECK(has_error(errors, "deploy.binary", "required for runtime process"));
        errors = parse_errors("deploy: {binary: /x}\n");
        CHECK(has_error(errors, "deploy.binary", "not valid for runtime docker"));
        CHECK(has_error(errors, "deploy.image", "required for runtime docker"));
        errors = parse_errors("deploy: {image: 'libci/master:2.0', data_dir: relative/dir}\n");
        CHECK(has_error(errors, "deploy.image", "without a tag"));
        CHECK(has_error(errors, "deploy.data_dir", "expected an absolute path"));
        errors = parse_errors("deploy: {image: x, data_dir: '/srv/$(reboot)'}\n");
        CHECK(has_error(errors, "deploy.data_dir", "expected an absolute path"));
        errors = parse_errors("deploy: {image: x, data_dir: /srv/../etc}\n");
        CHECK(has_error(errors, "deploy.data_dir", "expected an absolute path"));
        errors = parse_errors("deploy: {image: [x]}\n");
        CHECK(has_error(errors, "deploy.image", "expected a string"));
        errors = parse_errors("buildmaster: {docker_tag: 'a b'}\n");
        CHECK(has_error(errors, "buildmaster.docker_tag", "expected an image tag"));
        errors = parse_errors("deploy: {image: x, targte: local}\n");
        CHECK(has_error(errors, "deploy.targte", "did you mean \"target\"?"));
        // The default target is ssh://root@<buildmaster.host>: a host ssh would take as an
        // option is refused where it is written.
        errors = parse_errors("buildmaster: {host: -oProxyCommand=x}\ndeploy: {image: x}\n");
        CHECK(has_error(
            errors, "deploy.target", "the default target (ssh to root at buildmaster.host)"));
    }
    SUBCASE("targets") {
        const auto ok = [](std::string_view text) {
            auto target = ci::config::parse_deploy_target(text, "default.example.org");
            INFO(text);
            REQUIRE_OK(target);
            return *target;
        };
        CHECK(ok("local").local);
        CHECK(ok("").host == "default.example.org");
        CHECK(ok("ssh://a@h").port == 0);
        CHECK(ok("ssh://a_b.c-d@10.0.0.1:22/") ==
              ci::config::DeployTarget{false, "a_b.c-d", "10.0.0.1", 22});
        CHECK(ok("ssh://root@[fe80::1]:2200") ==
              ci::config::DeployTarget{false, "root", "fe80::1", 2200});
        for (const char* bad : {"ssh://host",
                                "http://root@host",
                                "ssh://-oProxyCommand=x@host",
                                "ssh://root@-oProxyCommand=x",
                                "ssh://root@host:0",
                                "ssh://root@host:65536",
                                "ssh://root@host:22x",
                                "ssh://root@host:",
                                "ssh://root@ho st",
                                "ssh://root@host;reboot",
                                "ssh://root@[zz]:22",
                                "ssh://root@[::1",
                                "ssh://r$(x)@host",
                                "ssh://root@"}) {
            CAPTURE(bad);
            auto target = ci::config::parse_deploy_target(bad, "default.example.org");
            REQUIRE_FALSE(target.has_value());
            CHECK(target.error().code == ci::ErrorCode::InvalidArgument);
        }
    }
}

TEST_CASE("config: the JSON form is checked by the same rules") {
    auto checked =
        ci::config::parse_config_json(R"({"buildmaster": {"web_prot": 1, "host": 3}})", "$X");
    REQUIRE_FALSE(checked.ok());
    CHECK(has_error(checked.errors(), "buildmaster.web_prot", "did you mean \"web_port\"?"));
    CHECK(checked.errors()[0].to_string().starts_with("$X: buildmaster.web_prot"));

    checked = ci::config::parse_config_json("{\n  \"a\": [1,\n}", "bad.json");
    REQUIRE(checked.errors().size() == 1);
    CHECK(checked.errors()[0].line == 3);
    CHECK(checked.errors()[0].origin == "bad.json");

    // Nesting is limited before anything recursive (the parse, the YAML tree) sees it.
    checked = ci::config::parse_config_json(
        "{\"a\":\n" + std::string(200000, '[') + std::string(200000, ']') + "}", "deep.json");
    REQUIRE(checked.errors().size() == 1);
    CHECK(checked.errors()[0].line == 2);
    CHECK(checked.errors()[0].column == 64);
    CHECK(checked.errors()[0].message == "nested deeper than 64 arrays and objects");
}

TEST_CASE("config: the master takes its config from the environment and removes it") {
    const std::string name = "LIBCI_CONFIG_TEST_VARIABLE";
    ::unsetenv(name.c_str());
    auto absent = ci::config::take_config_from_environment(name);
    REQUIRE_OK(absent);
    CHECK_FALSE(absent->has_value());

    Config config;
    config.github.token = "ghp_token_from_environment";
    ::setenv(name.c_str(), ci::config::to_json(config).c_str(), 1);
    auto taken = ci::config::take_config_from_environment(name);
    REQUIRE_OK(taken);
    REQUIRE(taken->has_value());
    CHECK(**taken == config);
    CHECK(std::getenv(name.c_str()) == nullptr);

    ::setenv(name.c_str(), "{\"nope\": 1}", 1);
    auto bad = ci::config::take_config_from_environment(name);
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().code == ci::ErrorCode::ConfigInvalid);
    CHECK(bad.error().message.find("$LIBCI_CONFIG_TEST_VARIABLE: nope: unknown key") !=
          std::string::npos);
    CHECK(std::getenv(name.c_str()) == nullptr);
}

TEST_CASE("config: the JSON file is written 0600 and refused when others can read it") {
    ci::test::TempDir dir;
    const auto path = dir / "master.json";
    auto checked = load(source_dir() / "examples/config.yml");
    REQUIRE_OK(ci::config::write_config_json_file(path, *checked.config));
    struct stat info {};
    REQUIRE(::stat(path.c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0600);
    auto loaded = ci::config::load_config_json_file(path);
    REQUIRE_OK(loaded);
    CHECK(*loaded == *checked.config);
    // Rewriting replaces the file and leaves no temporary behind.
    REQUIRE_OK(ci::config::write_config_json_file(path, Config{}));
    CHECK(std::distance(std::filesystem::directory_iterator(dir.path()),
                        std::filesystem::directory_iterator()) == 1);

    REQUIRE(::chmod(path.c_str(), 0644) == 0);
    auto refused = ci::config::load_config_json_file(path);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code == ci::ErrorCode::PermissionDenied);
    CHECK(refused.error().message.find("chmod 600") != std::string::npos);

    auto missing = ci::config::load_config_json_file(dir / "absent.json");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code == ci::ErrorCode::NotFound);
    CHECK(ci::config::write_config_json_file(dir / "no/such/dir/x.json", Config{}).error().code ==
          ci::ErrorCode::NotFound);
}

TEST_CASE("config: an unreadable file is an error, not a diagnostic") {
    ci::test::TempDir dir;
    auto missing = ci::config::load_config(dir / "nope.yml");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code == ci::ErrorCode::NotFound);
    CHECK(missing.error().message.find("nope.yml") != std::string::npos);
    auto directory = ci::config::load_config(dir.path());
    REQUIRE_FALSE(directory.has_value());
    CHECK(directory.error().code == ci::ErrorCode::Io);
}

TEST_CASE("config: every secret is listed for redaction") {
    const auto checked = load(source_dir() / "tests/data/config/config.yml");
    REQUIRE(checked.ok());
    auto secrets = ci::config::secrets(*checked.config);
    std::ranges::sort(secrets);
    CHECK(secrets == std::vector<std::string>{
                         "example-web-password",
                         "example-worker-password-1",
                         "example-worker-password-2",
                         "example-worker-password-3",
                         "example-worker-password-4",
                         "example-worker-password-5",
                         "example-zulip-api-key",
                         "exampleSecretKeyexampleSecretKeyexample0",
                         "ghp_exampletokenexampletokenexample0000",
                     });
}

TEST_CASE("config: release tags follow the old deployment's rule") {
    // flocker_bb/steps.py (MergeForward._RELEASE_TAG_RE) and its VersionTests in
    // ClusterHQ/build.clusterhq.com, plus the forms the rule names.
    for (const char* release : {"1.2.3",
                                "1.2.3.dev1",
                                "1.2.3dev1",
                                "1.2.3pre1",
                                "1.2.3rc1",
                                "1.2.3+doc1",
                                "1.2.3.post1",
                                "0.3.2",
                                "0.3.2dev1",
                                "0.3.2.dev1",
                                "0.3.2pre1",
                                "0.3.2rc1",
                                "0.3.2.post11",
                                "10.200.3000rc42"}) {
        CAPTURE(release);
        CHECK(ci::config::is_release_tag(release));
    }
    for (const char* other : {"1.2",
                              "v1.2.3",
                              "1.2.3.4",
                              "0.3.2+1.gf661a6a",
                              "0.3.2dev1+1.gf661a6a",
                              "0.3.2pre1+1.gf661a6a",
                              "0.3.2.post1+1.gf661a6a",
                              "1.2.3.pre1",
                              "1.2.3.rc1",
                              "1.2.3post1",
                              "1.2.3doc1",
                              "1.2.3rc",
                              "1.2.3\n",
                              " 1.2.3",
                              "",
                              "release/1.2.3"}) {
        CAPTURE(other);
        CHECK_FALSE(ci::config::is_release_tag(other));
    }
    // The default tags pattern is the same rule, between slashes.
    const ci::config::Scheduler scheduler;
    CHECK(scheduler.tags ==
          std::vector<std::string>{"/" + std::string(ci::config::release_tag_regex) + "/"});
}

TEST_CASE("config: trigger steps, triggerable schedulers, builders without a repository") {
    const std::string base = R"(
slaves:
  local: {local: true}
repositories:
  app: {url: /srv/app.git}
  other: {url: /srv/other.git}
locks:
  functional: {scope: worker}
  cpu: {max_count: 2, scope: master}
builders:
  package:
    repository: app
    workers: [local]
    steps:
      - {name: build, run: make}
      - {name: acceptance, trigger: {builders: [acceptance], wait: true}, timeout: 1h}
  acceptance:
    repository: app
    workers: [local]
    locks: [functional]
    steps: [{name: test, run: make check}]
  cleanup:
    workers: [local]
    steps: [{name: prune, run: "rm -rf old"}]
)";
    SUBCASE("a valid pipeline, and its JSON form") {
        const auto config = parse_ok(base + R"(schedulers:
  triggered: {type: triggerable, builders: [acceptance]}
  nightly: {type: periodic, builders: [cleanup], interval: 1h}
)");
        const auto& steps = config.builders.at("package").steps;
        REQUIRE(steps.size() == 2);
        CHECK_FALSE(steps[0].trigger.has_value());
        REQUIRE(steps[1].trigger.has_value());
        CHECK(steps[1].trigger->builders == std::vector<std::string>{"acceptance"});
        CHECK(steps[1].trigger->wait);
        CHECK(steps[1].command.empty());
        CHECK(steps[1].timeout == std::chrono::hours(1));
        CHECK(config.builders.at("cleanup").repository.empty());
        CHECK(config.schedulers.at("triggered").type == ci::config::Scheduler::Type::Triggerable);
        CHECK(config.schedulers.at("nightly").repository.empty());
        CHECK(config.locks.at("functional").scope == ci::config::Lock::Scope::Worker);
        CHECK(config.locks.at("cpu").scope == ci::config::Lock::Scope::Master);
        const auto json = ci::config::to_json(config);
        auto back = ci::config::parse_config_json(json, "master.json");
        INFO(all_diagnostics(back));
        REQUIRE(back.ok());
        CHECK(*back.config == config);
    }
    SUBCASE("what check-config refuses, naming the key") {
        const auto errors = parse_errors(base + R"(  wrong:
    repository: other
    workers: [local]
    merge_target: none
    steps:
      - {name: a, trigger: {builders: [package, acceptanse, cleanup, wrong]}, run: x}
      - {name: b, trigger: {builders: []}}
      - {name: c, trigger: {builders: [acceptance], wait: maybe}, env: {A: b}}
      - {name: d, trigger: [acceptance]}
  bare:
    workers: [local]
    merge_target: master
    steps: [{name: t, trigger: {builders: [acceptance]}}]
  nulled:
    repository:
    workers: [local]
    steps: [{name: t, run: x}]
schedulers:
  triggered: {type: triggerable, builders: [acceptance, cleanup], tags: [x]}
  nightly: {type: periodic, builders: [cleanup, package], interval: 1h}
  weird: {type: triggerabel, builders: [cleanup]}
)");
        CHECK(has_error(errors, "builders.wrong.steps[0].run", "not valid for a trigger step"));
        CHECK(has_error(errors, "builders.wrong.steps[0].trigger.builders[0]", "not triggerable"));
        CHECK(has_error(errors,
                        "builders.wrong.steps[0].trigger.builders[1]",
                        "no builder named \"acceptanse\" (did you mean \"acceptance\"?)"));
        CHECK(has_error(errors,
                        "builders.wrong.steps[0].trigger.builders[2]",
                        "builder \"cleanup\" has no repository, not \"other\""));
        CHECK(has_error(
            errors, "builders.wrong.steps[0].trigger.builders[3]", "cannot trigger itself"));
        CHECK(has_error(errors, "builders.wrong.steps[1].trigger.builders", "at least one"));
        CHECK(has_error(errors, "builders.wrong.steps[2].trigger.wait", "expected true or false"));
        CHECK(has_error(errors, "builders.wrong.steps[2].env", "not valid for a trigger step"));
        CHECK(has_error(errors, "builders.wrong.steps[3].trigger", ""));
        CHECK(has_error(errors, "builders.bare.merge_target", "without a repository"));
        CHECK(has_error(errors,
                        "builders.bare.steps[0].trigger.builders[0]",
                        "a builder without a repository cannot trigger"));
        CHECK(has_error(errors, "builders.nulled.repository", "leave the key out"));
        CHECK(has_error(errors, "schedulers.triggered.tags", "not valid for a triggerable"));
        CHECK(has_error(errors,
                        "schedulers.nightly.builders[1]",
                        "builder \"package\" checks out repository \"app\": this scheduler "
                        "needs a repository"));
        CHECK_FALSE(has_error(errors, "schedulers.nightly.builders[0]", ""));
        CHECK(has_error(errors, "schedulers.weird.type", "(did you mean \"triggerable\"?)"));
        const auto scope = parse_errors("locks:\n  bad: {scope: workers}\n");
        CHECK(has_error(scope, "locks.bad.scope", "expected master or worker, got \"workers\""));
        CHECK(has_error(scope, "locks.bad.scope", "(did you mean \"worker\"?)"));
    }
}

TEST_CASE("config: step controls, properties and test results") {
    SUBCASE("defaults") {
        const auto step = parse_ok(minimal_pipeline).builders.at("app-tests").steps.at(0);
        CHECK_FALSE(step.always_run);
        CHECK(step.flunk_on_failure);
        CHECK_FALSE(step.warn_on_failure);
        CHECK(step.inactivity_timeout == std::chrono::minutes(20));
        CHECK(step.set_property.empty());
        CHECK(step.test_results.empty());
    }
    SUBCASE("every key read, placeholders in argv, env and workdir") {
        const auto config = parse_ok(std::string(minimal_pipeline) + R"(
      - name: version
        run: ["python", "setup.py", "--version"]
        set_property: version
        always_run: true
        flunk_on_failure: false
        warn_on_failure: true
        inactivity_timeout: 90s
        test_results: "_trial_temp/*.xml"
        logfiles: {test.log: _trial_temp/test.log}
      - name: use
        run: ["make", "V=${prop:version}", "$${literal}", "${branch}${revision}${build_id}"]
        env: {V: "${prop:version}"}
        workdir: "out/${prop:version}"
      - {name: shell, run: "echo ${HOME}"}
)");
        const auto& steps = config.builders.at("app-tests").steps;
        REQUIRE(steps.size() == 4);
        CHECK(steps[1].set_property == "version");
        // Not flunking, so not halting unless the file says so.
        CHECK_FALSE(steps[1].halt_on_failure);
        CHECK(steps[2].halt_on_failure);
        CHECK(steps[1].always_run);
        CHECK_FALSE(steps[1].flunk_on_failure);
        CHECK(steps[1].warn_on_failure);
        CHECK(steps[1].inactivity_timeout == std::chrono::seconds(90));
        CHECK(steps[1].test_results == "_trial_temp/*.xml");
        CHECK(steps[1].logfiles ==
              std::map<std::string, std::string>{{"test.log", "_trial_temp/test.log"}});
        CHECK(steps[2].workdir == "out/${prop:version}");
        // And through the JSON form unchanged.
        auto back = ci::config::parse_config_json(ci::config::to_json(config), "j");
        INFO(all_diagnostics(back));
        REQUIRE(back.ok());
        CHECK(*back.config == config);
    }
    SUBCASE("wrong values are errors naming the key") {
        const auto errors = parse_errors(std::string(minimal_pipeline) + R"(
      - name: a
        run: ["echo", "${prop:}", "${nope}", "${branch"]
        env: {X: "${prop:a b}"}
        workdir: "${revision"
        set_property: "not a name"
        always_run: maybe
        inactivity_timeout: forever
        test_results: "../outside/*.xml"
      - {name: b, run: x, test_results: /abs/*.xml, warn_on_failure: 1,
         logfiles: {"a b": x.log, up: ../x.log, abs: /x.log, empty: ""}}
)");
        CHECK(has_error(errors, "builders.app-tests.steps[1].run[1]", "property name"));
        CHECK(has_error(errors, "builders.app-tests.steps[1].run[2]", "unknown placeholder"));
        CHECK(has_error(errors, "builders.app-tests.steps[1].run[3]", "closing"));
        CHECK(has_error(errors, "builders.app-tests.steps[1].env.X", "property name"));
        CHECK(has_error(errors, "builders.app-tests.steps[1].workdir", "closing"));
        CHECK(has_error(errors, "builders.app-tests.steps[1].set_property", "property name"));
        CHECK(
            has_error(errors, "builders.app-tests.steps[1].always_run", "expected true or false"));
        CHECK(has_error(
            errors, "builders.app-tests.steps[1].inactivity_timeout", "expected a duration"));
        CHECK(has_error(errors, "builders.app-tests.steps[1].test_results", "inside the checkout"));
        CHECK(has_error(errors, "builders.app-tests.steps[2].test_results", "inside the checkout"));
        CHECK(has_error(
            errors, "builders.app-tests.steps[2].warn_on_failure", "expected true or false"));
        CHECK(has_error(errors, "builders.app-tests.steps[2].logfiles.a b", "a log name"));
        CHECK(has_error(errors, "builders.app-tests.steps[2].logfiles.up", "inside the checkout"));
        CHECK(has_error(errors, "builders.app-tests.steps[2].logfiles.abs", "inside the checkout"));
        CHECK(
            has_error(errors, "builders.app-tests.steps[2].logfiles.empty", "inside the checkout"));
    }
    SUBCASE("placeholders in a shell command are a warning: the shell gets its text as is") {
        auto checked = ci::config::parse_config(
            std::string(minimal_pipeline) + "      - {name: s, run: \"make V=${prop:version}\"}\n",
            "test.yml");
        REQUIRE(checked.ok());
        CHECK(all_diagnostics(checked).find("builders.app-tests.steps[1].run: placeholders") !=
              std::string::npos);
        CHECK(checked.config->builders.at("app-tests").steps[1].command.back() ==
              "make V=${prop:version}");
    }
}

// Issue 15: hostile config texts get one clear error at their place, in bounded time and memory.
TEST_CASE("config: nesting beyond the limit is refused in both forms, through aliases too") {
    const std::string deep = std::string(25000, '[') + std::string(25000, ']');
    auto checked = ci::config::parse_config("a:\n  b: " + deep + "\n", "deep.yml");
    REQUIRE(checked.errors().size() == 1);
    CHECK(checked.errors()[0].to_string() ==
          "deep.yml:2:68: nested deeper than 64 mappings and lists");

    std::string block;
    for (int i = 0; i < 2000; ++i) {
        block += std::string(static_cast<std::size_t>(i), ' ') + "k:\n";
    }
    checked = ci::config::parse_config(block, "block.yml");
    REQUIRE(checked.errors().size() == 1);
    CHECK(checked.errors()[0].line == 65);
    CHECK(checked.errors()[0].message == "nested deeper than 64 mappings and lists");

    // 63 levels under an anchor, used three levels down (the root mapping, two lists): 66.
    const std::string sixty_three = std::string(63, '[') + std::string(63, ']');
    checked = ci::config::parse_config("a: &x " + sixty_three + "\nb: [[*x]]\n", "alias.yml");
    REQUIRE(checked.errors().size() == 1);
    CHECK(checked.errors()[0].to_string() ==
          "alias.yml:2:6: nested deeper than 64 mappings and lists");
    // At the limit (the root mapping is a level): no nesting error (the schema then says what it
    // thinks of the keys).
    checked = ci::config::parse_config("a: &x " + sixty_three + "\nb: *x\n", "alias.yml");
    CHECK(all_diagnostics(checked).find("nested") == std::string::npos);

    checked = ci::config::parse_config_json(deep, "$LIBCI_CONFIG");
    REQUIRE(checked.errors().size() == 1);
    CHECK(checked.errors()[0].to_string() ==
          "$LIBCI_CONFIG:1:65: nested deeper than 64 arrays and objects");
}

TEST_CASE("config: aliases that multiply a text (billion laughs) are refused, not expanded") {
    std::string yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int i = 1; i < 9; ++i) {
        yaml += fmt::format("a{}: &a{} [", i, i);
        for (int j = 0; j < 10; ++j) {
            yaml += fmt::format("{}*a{}", j == 0 ? "" : ", ", i - 1);
        }
        yaml += "]\n";
    }
    auto checked = ci::config::parse_config(yaml, "laughs.yml");
    REQUIRE(checked.errors().size() == 1);
    // a5 stands for 1,111,111 values.
    CHECK(checked.errors()[0].line == 6);
    CHECK(checked.errors()[0].message == "more than 1000000 values with aliases expanded");

    checked = ci::config::parse_config("a: &a [1, *a]\n", "cycle.yml");
    REQUIRE_FALSE(checked.ok());
    CHECK(all_diagnostics(checked).find("cycle.yml:1:") != std::string::npos);
}

TEST_CASE("config: NUL bytes and invalid UTF-8 are refused, not read as an empty config") {
    for (const auto& [text, where, what] :
         {std::tuple{std::string("\0buildmaster: {}\n", 17), "x.yml:1:1: ", "a NUL byte"},
          std::tuple{std::string("\0", 1), "x.yml:1:1: ", "a NUL byte"},
          std::tuple{std::string("\0\0\0\0", 4), "x.yml:1:1: ", "a NUL byte"},
          std::tuple{std::string("a: 1\nb: \xff\n"), "x.yml:2:4: ", "invalid UTF-8 (byte 0xff)"},
          std::tuple{std::string("a: \xc0\xaf\n"), "x.yml:1:4: ", "invalid UTF-8 (byte 0xc0)"}}) {
        CAPTURE(what);
        auto checked = ci::config::parse_config(text, "x.yml");
        REQUIRE(checked.errors().size() == 1);
        CHECK(checked.errors()[0].to_string().starts_with(where));
        CHECK(checked.errors()[0].message.find(what) != std::string::npos);
        auto json = ci::config::parse_config_json(text, "x.yml");
        REQUIRE(json.errors().size() == 1);
        CHECK(json.errors()[0].to_string().starts_with(where));
    }
    // Escapes that make a NUL or a lone surrogate inside a value or a key.
    CHECK(has_error(parse_errors("buildmaster:\n  host: \"a\\0b\"\n"),
                    "buildmaster.host",
                    "contains a NUL character"));
    CHECK(parse_errors("buildmaster:\n  host: \"\\uD800\"\n")[0].to_string() ==
          "test.yml:2:16: invalid unicode: 55296"); // yaml-cpp's own check
    CHECK(has_error(parse_errors("buildmaster:\n  \"ho\\0st\": x\n"),
                    "buildmaster",
                    "a key contains a NUL character"));
    auto json = ci::config::parse_config_json(R"({"buildmaster": {"host": "a\u0000b"}})", "$C");
    CHECK(has_error(json.errors(), "buildmaster.host", "contains a NUL character"));
}

TEST_CASE("config: a key written twice is an error naming it, in both forms") {
    CHECK(has_error(parse_errors("buildmaster:\n  host: a\n  host: b\n"),
                    "buildmaster.host",
                    "duplicate key (first defined on line 2)"));
    auto checked = ci::config::parse_config_json(
        R"({"buildmaster": {"host": "a", "web_port": 1, "host": "b"}, "github": {}})", "$C");
    REQUIRE_FALSE(checked.ok());
    REQUIRE(checked.errors().size() == 1);
    CHECK(checked.errors()[0].to_string() == "$C: buildmaster.host: duplicate key");
    checked = ci::config::parse_config_json(R"({"github": {}, "github": {}})", "$C");
    CHECK(has_error(checked.errors(), "github", "duplicate key"));
}

TEST_CASE("config: a text over the size limit is refused; reading a file stops at it") {
    auto checked = ci::config::parse_config(
        "# " + std::string(ci::config::max_config_size, 'x') + "\n", "big.yml");
    REQUIRE(checked.errors().size() == 1);
    CHECK(checked.errors()[0].to_string() == "big.yml: longer than 4 MiB, the limit for a config");
    // The largest text allowed is read (a comment: an empty config).
    CHECK(ci::config::parse_config("#" + std::string(ci::config::max_config_size - 2, 'x') + "\n",
                                   "max.yml")
              .ok());

    // An endless file: reading stops after the limit.
    auto zero = ci::config::load_config("/dev/zero");
    REQUIRE_OK(zero);
    REQUIRE(zero->errors().size() == 1);
    CHECK(zero->errors()[0].message == "longer than 4 MiB, the limit for a config");
    ci::test::TempDir dir;
    const auto json = dir / "big.json";
    {
        std::ofstream out(json);
        out << "{" << std::string(ci::config::max_config_size, ' ') << "}";
    }
    std::filesystem::permissions(json, std::filesystem::perms::owner_read);
    auto refused = ci::config::load_config_json_file(json);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().message.find("longer than 4 MiB") != std::string::npos);
}

TEST_CASE("config: many keys and long names are checked in linear memory and time") {
    // Two 25,000-character names: no suggestion (beyond max_suggestion_length), no matrix of
    // their product (5 GB).
    const std::string a(25000, 'a');
    const std::string b = std::string(24999, 'a') + "b";
    auto errors = ci::config::parse_config_json(
                      fmt::format(R"({{"repositories": {{"{}": {{"url": "https://example.org/x"}}}},
                            "builders": {{"one": {{"repository": "{}", "steps": []}}}}}})",
                                  a,
                                  b),
                      "$C")
                      .errors();
    CHECK(has_error(errors, "builders.one.repository", "no repository named"));
    CHECK_FALSE(has_error(errors, "builders.one.repository", "did you mean"));
    CHECK(ci::config::detail::closest_match(std::string(2'000'000, 'h'), {"host"}) == std::nullopt);
    CHECK(ci::config::detail::closest_match("hots", {"host", "port"}) == "host");
    const std::string limit(ci::config::max_suggestion_length, 'p');
    CHECK(ci::config::detail::closest_match(limit.substr(1) + "q", {limit}) == limit);

    // 50,000 keys in one mapping, each an unknown key: duplicates are found by hashing (comparing
    // each with those before took 10 s of CPU for 100,000).
    std::string many = "buildmaster:\n";
    for (int i = 0; i < 50000; ++i) {
        many += fmt::format("  k{}: 1\n", i);
    }
    many += "  k7: 2\n";
    auto checked = ci::config::parse_config(many, "many.yml");
    CHECK(checked.errors().size() == 50001);
    CHECK(has_error(checked.errors(), "buildmaster.k7", "duplicate key (first defined on line 9)"));
    std::string many_json = "{\"buildmaster\": {";
    for (int i = 0; i < 50000; ++i) {
        many_json += fmt::format("\"k{}\": 1, ", i);
    }
    many_json += "\"k7\": 2}}";
    checked = ci::config::parse_config_json(many_json, "$C");
    CHECK(checked.errors().size() == 50001);
}

TEST_CASE("config: upload steps, after_upload and buildmaster.max_upload_size") {
    SUBCASE("read, with the defaults") {
        const auto config = parse_ok(std::string(minimal_pipeline) + R"(
      - name: upload
        upload: {from: out/repo, to: repo/deb}
        after_upload: "dpkg-scanpackages . | gzip > Packages.gz"
      - {name: argv, upload: {from: dist, to: python}, after_upload: [createrepo_c, .]}
)");
        CHECK(config.buildmaster.max_upload_size == std::uint64_t{2} << 30);
        const auto& steps = config.builders.at("app-tests").steps;
        REQUIRE(steps[1].upload.has_value());
        CHECK(steps[1].upload->from == "out/repo");
        CHECK(steps[1].upload->to == "repo/deb");
        CHECK(steps[1].command.empty());
        CHECK(
            steps[1].after_upload ==
            std::vector<std::string>{"/bin/sh", "-c", "dpkg-scanpackages . | gzip > Packages.gz"});
        CHECK(steps[2].after_upload == std::vector<std::string>{"createrepo_c", "."});
        const auto specs = ci::build::step_specs(config.builders.at("app-tests"));
        REQUIRE(specs[1].upload.has_value());
        CHECK(specs[1].upload->to == "repo/deb");
    }
    SUBCASE("sizes") {
        for (const auto& [text, bytes] :
             std::vector<std::pair<std::string, std::uint64_t>>{{"1048576", 1048576},
                                                                {"500MiB", 500ull << 20},
                                                                {"\"10 KiB\"", 10240},
                                                                {"1TiB", 1ull << 40}}) {
            const auto config = parse_ok(std::string("buildmaster: {max_upload_size: ") + text +
                                         "}\n" + minimal_pipeline);
            CHECK(config.buildmaster.max_upload_size == bytes);
        }
        for (const char* text :
             {"0", "-1", "2TiB", "5 GB", "lots", "[1]", "99999999999999999999"}) {
            const auto errors = parse_errors(std::string("buildmaster: {max_upload_size: ") + text +
                                             "}\n" + minimal_pipeline);
            INFO(text);
            CHECK(has_error(errors, "buildmaster.max_upload_size", "expected a size"));
        }
    }
    SUBCASE("hostile names and misplaced keys are errors naming the key") {
        const auto errors = parse_errors(std::string(minimal_pipeline) + R"(
      - {name: a, upload: {from: ../x, to: "../up"}}
      - {name: b, upload: {from: /abs, to: /abs}}
      - {name: c, upload: {from: ok, to: "a//b"}}
      - {name: d, upload: {from: ok, to: "x\u0001y"}}
      - {name: e, upload: {from: ok, to: ""}}
      - {name: f, upload: {from: ok}, run: make, env: {A: b}}
      - {name: g, run: make, after_upload: "echo"}
      - {name: h, upload: {from: ok, to: ok, extra: 1}, after_upload: []}
      - {name: i, upload: {from: ok, to: "s3://Bad_Bucket/x"}}
      - {name: j, upload: {from: ok, to: "s3://good-bucket/p"}, after_upload: x}
)");
        CHECK(has_error(errors, "builders.app-tests.steps[1].upload.from", "inside the checkout"));
        CHECK(has_error(errors, "builders.app-tests.steps[1].upload.to", "\"..\" segment"));
        CHECK(has_error(errors, "builders.app-tests.steps[2].upload.from", "inside the checkout"));
        CHECK(has_error(errors, "builders.app-tests.steps[2].upload.to", "absolute"));
        CHECK(has_error(errors, "builders.app-tests.steps[3].upload.to", "empty segment"));
        CHECK(has_error(errors, "builders.app-tests.steps[4].upload.to", "control character"));
        CHECK(has_error(errors, "builders.app-tests.steps[5].upload.to", "is empty"));
        CHECK(has_error(errors, "builders.app-tests.steps[6].upload.to", "missing"));
        CHECK(has_error(errors, "builders.app-tests.steps[6].run", "upload step"));
        CHECK(has_error(errors, "builders.app-tests.steps[6].env", "upload step"));
        CHECK(has_error(errors, "builders.app-tests.steps[7].after_upload", "without upload"));
        CHECK(has_error(errors, "builders.app-tests.steps[8].upload.extra", ""));
        CHECK(has_error(errors, "builders.app-tests.steps[8].after_upload", "needs a command"));
        CHECK(has_error(errors, "builders.app-tests.steps[9].upload.to", "bucket name"));
        CHECK(has_error(errors, "builders.app-tests.steps[10].after_upload", "not for an S3"));
    }
    SUBCASE("an S3 destination is accepted without a diagnostic (the worker sends it)") {
        auto checked = ci::config::parse_config(
            std::string(minimal_pipeline) +
                "      - {name: s3, upload: {from: docs, to: \"s3://docs-bucket/v1/\"}}\n",
            "test.yml");
        REQUIRE(checked.ok());
        CHECK(all_diagnostics(checked).find("upload.to") == std::string::npos);
        const auto& steps = checked.config->builders.at("app-tests").steps;
        REQUIRE(steps.size() == 2);
        REQUIRE(steps[1].upload.has_value());
        CHECK(steps[1].upload->to == "s3://docs-bucket/v1/");
    }
}

TEST_CASE("config: repositories.<r>.allow_local_submodules is accepted and said to be unused") {
    auto checked = ci::config::parse_config(
        "repositories:\n  app:\n    url: /srv/app.git\n    allow_local_submodules: true\n",
        "test.yml");
    INFO(all_diagnostics(checked));
    REQUIRE(checked.ok());
    CHECK(checked.config->repositories.at("app").allow_local_submodules);
    REQUIRE(checked.diagnostics.size() == 1);
    CHECK(checked.diagnostics[0].key_path == "repositories.app.allow_local_submodules");
    CHECK(checked.diagnostics[0].message.starts_with("not used yet: "));
    CHECK_FALSE(parse_ok("repositories:\n  app:\n    url: x\n")
                    .repositories.at("app")
                    .allow_local_submodules);
    const auto wrong =
        parse_errors("repositories:\n  app:\n    url: x\n    allow_local_submodules: sometimes\n");
    REQUIRE(wrong.size() == 1);
    CHECK(wrong[0].key_path == "repositories.app.allow_local_submodules");
    // The JSON form writes it and reads it back.
    const auto json = ci::config::to_json(*checked.config);
    auto back = ci::config::parse_config_json(json, "round-trip.json");
    REQUIRE(back.ok());
    CHECK(back.config->repositories.at("app").allow_local_submodules);
}
TEST_CASE("config: buildmaster.results_retention is a duration in days too, 0 or never disables") {
    using namespace std::chrono_literals;
    CHECK(parse_ok("buildmaster: {}\n").buildmaster.results_retention == 14 * 24h);
    CHECK(parse_ok("buildmaster: {results_retention: 7d}\n").buildmaster.results_retention ==
          7 * 24h);
    CHECK(parse_ok("buildmaster: {results_retention: 1d12h}\n").buildmaster.results_retention ==
          36h);
    CHECK(parse_ok("buildmaster: {results_retention: 90m}\n").buildmaster.results_retention ==
          90min);
    CHECK(parse_ok("buildmaster: {results_retention: 0}\n").buildmaster.results_retention == 0s);
    CHECK(parse_ok("buildmaster: {results_retention: never}\n").buildmaster.results_retention ==
          0s);
    for (const auto* bad : {"fortnight", "-1d", "1h1d", "[1]", "2w"}) {
        CAPTURE(bad);
        auto errors = parse_errors(std::string("buildmaster: {results_retention: ") + bad + "}\n");
        CHECK(has_error(errors, "buildmaster.results_retention", "expected a duration"));
    }
}

TEST_CASE("locate: an error found after the check is placed at its key, or its nearest parent") {
    ci::test::TempDir dir;
    const auto path = dir / "config.yml";
    std::ofstream(path) << "buildmaster:\n  host: ci\n  web_port: 0\ndeploy:\n  runtime: docker\n";
    const auto at = [&](const std::string& key) {
        const auto found = ci::config::locate(path, key, "m");
        return std::pair(found.line, found.column);
    };
    CHECK(at("buildmaster.web_port") == std::pair(3, 3));
    CHECK(at("deploy.image") == std::pair(4, 1)); // absent: its section
    CHECK(at("zulip.user") == std::pair(1, 1));   // nothing of it: the start
    CHECK(ci::config::locate(path, "deploy.image", "required").to_string() ==
          path.string() + ":4:1: deploy.image: required");
    std::ofstream(path) << "a: [unclosed\n";
    CHECK(at("a") == std::pair(0, 0));
    CHECK(at("missing") == std::pair(0, 0));
    CHECK(ci::config::locate(dir / "none.yml", "a", "m").line == 0);
}

TEST_CASE("config: auth.users with password hashes, auth.view, and the old single user") {
    const std::string hash =
        "$scrypt$ln=10,r=8,p=2$bGliY2ktdGVzdC1zYWx0IQ$zJSXuDWJ2HWCHbh2FAZdqz/l4j52LTu/k13XSAMC/gI";
    const std::string pbkdf2 =
        "$pbkdf2-sha256$i=1000$bGliY2ktdGVzdC1zYWx0IQ$jWA1e9l7C7RRKOusxmO0R/B9A3iPnx1AlgRc1AVbc1E";
    SUBCASE("users only, view: login; the JSON form round-trips them") {
        const auto config = parse_ok(fmt::format("auth:\n  view: login\n  users:\n"
                                                 "    - {{user: alice, password_hash: '{}'}}\n"
                                                 "    - user: bob\n      password_hash: '{}'\n",
                                                 hash,
                                                 pbkdf2));
        REQUIRE(config.auth);
        CHECK(config.auth->user.empty());
        CHECK(config.auth->view == ci::config::AuthView::Login);
        REQUIRE(config.auth->users.size() == 2);
        CHECK(config.auth->users[0].user == "alice");
        CHECK(config.auth->users[0].password_hash == hash);
        CHECK(config.auth->users[1].user == "bob");
        auto back = ci::config::parse_config_json(ci::config::to_json(config), "j");
        REQUIRE(back.ok());
        CHECK(*back.config == config);
        // The hashes never reach a log.
        const auto secrets = ci::config::secrets(config);
        CHECK(std::ranges::find(secrets, hash) != secrets.end());
        CHECK(std::ranges::find(secrets, pbkdf2) != secrets.end());
    }
    SUBCASE("the old single user is accepted with a warning; view defaults to anonymous") {
        auto checked = ci::config::parse_config("auth: {user: admin, password: pw}\n", "c.yml");
        REQUIRE(checked.ok());
        CHECK(checked.config->auth->view == ci::config::AuthView::Anonymous);
        CHECK(all_diagnostics(checked).find("c.yml:1:21: warning: auth.password: a plain "
                                            "password") != std::string::npos);
        const auto both = parse_ok(fmt::format(
            "auth:\n  user: admin\n  password: pw\n  users: [{{user: alice, password_hash: "
            "'{}'}}]\n",
            hash));
        CHECK(both.auth->user == "admin");
        CHECK(both.auth->users.size() == 1);
    }
    SUBCASE("mistakes name their key") {
        auto errors = parse_errors(
            "auth:\n  view: everyone\n  users:\n    - {user: alice, password_hash: hunter2}\n"
            "    - {user: 'a:b', password_hash: hunter2}\n    - {user: alice}\n"
            "    - {user: bob, password: x}\n");
        CHECK(has_error(errors, "auth.view", "expected anonymous or login"));
        CHECK(has_error(errors, "auth.users[0].password_hash", "not a password hash"));
        CHECK(has_error(errors, "auth.users[0].password_hash", "auth.password"));
        CHECK(has_error(errors, "auth.users[1].user", "without ':'"));
        CHECK(has_error(errors, "auth.users[2].password_hash", "missing required key"));
        CHECK(has_error(errors, "auth.users[2].user", "listed twice"));
        CHECK(has_error(errors, "auth.users[3].password", "unknown key"));
        // The plain text is not repeated in the error.
        for (const auto& error : errors) {
            CHECK(error.message.find("hunter2") == std::string::npos);
        }
        errors = parse_errors("auth: {users: {alice: x}}\n");
        CHECK(has_error(errors, "auth.users", "expected a list"));
        errors = parse_errors("auth: {view: login}\n");
        CHECK(has_error(errors, "auth.user", "missing required key"));
        errors = parse_errors(fmt::format("auth:\n  password: pw\n  users: [{{user: a, "
                                          "password_hash: '{}'}}]\n",
                                          hash));
        CHECK(has_error(errors, "auth.user", "missing required key"));
        errors = parse_errors("auth:\n  users:\n    - {user: a, password_hash: "
                              "'$scrypt$ln=30,r=8,p=1$bGliY2ktdGVzdC1zYWx0IQ$"
                              "zJSXuDWJ2HWCHbh2FAZdqz/l4j52LTu/k13XSAMC/gI'}\n");
        CHECK(has_error(errors, "auth.users[0].password_hash", "out of range"));
    }
}

TEST_CASE("config: buildmaster.trusted_proxies, each an address or a network at its line") {
    const auto config = parse_ok(
        std::string("buildmaster: {trusted_proxies: [127.0.0.1, 10.0.0.0/8, 'fd00::/8']}\n") +
        minimal_pipeline);
    CHECK(config.buildmaster.trusted_proxies ==
          std::vector<std::string>{"127.0.0.1", "10.0.0.0/8", "fd00::/8"});
    const auto errors = parse_errors(std::string("buildmaster:\n"
                                                 "  trusted_proxies:\n"
                                                 "    - 127.0.0.1\n"
                                                 "    - 10.0.0.0/33\n"
                                                 "    - proxy.example.org\n") +
                                     minimal_pipeline);
    CHECK(has_error(errors, "buildmaster.trusted_proxies[1]", "prefix length"));
    CHECK(has_error(errors, "buildmaster.trusted_proxies[2]", "expected an IP address"));
    const auto at = std::ranges::find_if(errors, [](const auto& error) {
        return error.key_path == "buildmaster.trusted_proxies[2]";
    });
    REQUIRE(at != errors.end());
    CHECK(at->line == 5);
    CHECK_FALSE(
        parse_errors(std::string("buildmaster: {trusted_proxies: 10.0.0.0/8}\n") + minimal_pipeline)
            .empty());
}
