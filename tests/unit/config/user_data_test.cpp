// User-data templates (pure): placeholders checked and filled in, hostile values refused, and the
// default template rendered into YAML whose files are what a worker needs.

#include <algorithm>
#include <string>

#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include <ci/config/load.h>
#include <ci/config/user_data.h>

#include "support/require_ok.h"
#include "support/temp_dir.h"

using ci::config::check_user_data_template;
using ci::config::render_user_data;
using ci::config::UserDataValues;

namespace {

UserDataValues values() {
    UserDataValues v;
    v.master_host = "ci.example.org";
    v.worker_port = 9989;
    v.master_fingerprint = "sha256:" + std::string(64, 'a');
    v.worker_name = "aws/ubuntu/i-0123456789abcdef0";
    v.worker_token = std::string(64, 'f');
    v.worker_class = "aws/ubuntu";
    v.unreachable_timeout = std::chrono::seconds(900);
    return v;
}

// The write_files entry for `path`, or a null node.
YAML::Node written_file(const YAML::Node& root, const std::string& path) {
    for (const auto& file : root["write_files"]) {
        if (file["path"].as<std::string>() == path) {
            return file;
        }
    }
    return {};
}

} // namespace

TEST_CASE("user data: each placeholder is filled in, spaces inside the braces allowed") {
    auto out =
        render_user_data("{{master}} {{ master_host }}:{{worker_port}} {{master_fingerprint}}"
                         " {{worker_name}} {{worker_token}} {{class}} {{unreachable_timeout}}",
                         values());
    REQUIRE_OK(out);
    CHECK(*out == "ci.example.org:9989 ci.example.org:9989 sha256:" + std::string(64, 'a') +
                      " aws/ubuntu/i-0123456789abcdef0 " + std::string(64, 'f') +
                      " aws/ubuntu 900");
    CHECK(render_user_data("no placeholders { } }} {x}", values()) == "no placeholders { } }} {x}");
}

TEST_CASE("user data: an IPv6 master host is bracketed in {{master}} only") {
    auto v = values();
    v.master_host = "2001:db8::1";
    CHECK(render_user_data("{{master}} {{master_host}}", v) == "[2001:db8::1]:9989 2001:db8::1");
}

TEST_CASE("user data: an unknown or unclosed placeholder is an error with its line and column") {
    const auto unknown =
        check_user_data_template("#cloud-config\nruncmd:\n  - [echo, {{mastr}}]\n");
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().code == ci::ErrorCode::InvalidArgument);
    CHECK(unknown.error().message.starts_with("3:12: unknown placeholder {{mastr}}"));
    CHECK(unknown.error().message.find("{{master}}") != std::string::npos); // the known ones
    const auto unclosed = check_user_data_template("a\nb {{master\n}}");
    REQUIRE_FALSE(unclosed);
    CHECK(unclosed.error().message.starts_with("2:3: a placeholder without its closing }}"));
    CHECK_FALSE(render_user_data("{{}}", values()));
    CHECK_FALSE(render_user_data("{{{master}}}", values())); // "{master" is no name
    // A long unknown name is shortened in the message.
    const auto long_name = check_user_data_template("{{" + std::string(5000, 'x') + "}}");
    REQUIRE_FALSE(long_name);
    CHECK(long_name.error().message.size() < 400);
}

TEST_CASE("user data: a value that could break out of YAML or shell text is refused, unshown") {
    for (const std::string bad : {"a\nb", "a\"b", "a'b", "a\\b", "$(id)", "`id`", "a\rb"}) {
        auto v = values();
        v.worker_token = bad;
        const auto out = render_user_data("{{class}}", v);
        REQUIRE_FALSE(out);
        CHECK(out.error().message.find("{{worker_token}}") != std::string::npos);
        CHECK(out.error().message.find(bad) == std::string::npos);
    }
}

TEST_CASE("user data: the default template renders into cloud-config YAML a worker boots with") {
    const auto text = ci::config::default_user_data_template();
    CHECK(text.starts_with("#cloud-config\n"));
    CHECK_OK(check_user_data_template(text));
    auto rendered = render_user_data(text, values());
    REQUIRE_OK(rendered);
    CHECK(rendered->starts_with("#cloud-config\n"));
    CHECK(rendered->find("{{") == std::string::npos);
    const YAML::Node root = YAML::Load(*rendered);
    REQUIRE(root.IsMap());

    const auto env = written_file(root, "/etc/libci/worker.env");
    REQUIRE(env.IsMap());
    CHECK(env["permissions"].as<std::string>() == "0600");
    CHECK(env["content"].as<std::string>() ==
          "CI_MASTER=ci.example.org:9989\n"
          "CI_WORKER_NAME=aws/ubuntu/i-0123456789abcdef0\n"
          "CI_WORKER_SECRET=" +
              std::string(64, 'f') + "\nCI_MASTER_FINGERPRINT=sha256:" + std::string(64, 'a') +
              "\n");
    // The token appears in that file only.
    const auto token = std::string(64, 'f');
    CHECK(rendered->find(token) == rendered->rfind(token));

    const auto unit = written_file(root, "/etc/systemd/system/ci-worker.service");
    REQUIRE(unit.IsMap());
    const auto unit_text = unit["content"].as<std::string>();
    CHECK(unit_text.find("EnvironmentFile=/etc/libci/worker.env\n") != std::string::npos);
    CHECK(unit_text.find("ExecStart=/usr/local/bin/ci-worker start ") != std::string::npos);

    const auto watchdog = written_file(root, "/usr/local/lib/libci/master-watchdog");
    REQUIRE(watchdog.IsMap());
    CHECK(watchdog["content"].as<std::string>().find("limit=900\n") != std::string::npos);
    CHECK(written_file(root, "/etc/systemd/system/libci-watchdog.timer").IsMap());

    // Nothing installed at boot: no packages, no downloads.
    CHECK_FALSE(root["packages"]);
    CHECK(rendered->find("apt-get") == std::string::npos);
    CHECK(rendered->find("curl ") == std::string::npos);
    const auto runcmd = root["runcmd"];
    REQUIRE(runcmd.IsSequence());
    CHECK(runcmd.size() == 3);
}

TEST_CASE("user data: a template path is relative to the config file; check-config reads it") {
    const ci::test::TempDir dir;
    const auto config_text = std::string("buildmaster: {host: ci.example.org}\n"
                                         "slaves:\n"
                                         "  aws/ubuntu:\n"
                                         "    ami: ubuntu\n"
                                         "    user_data_template: templates/worker.yml\n"
                                         "    unreachable_timeout: 10m\n"
                                         "builders:\n"
                                         "  b: {workers: [aws/ubuntu], steps: [{name: s, run: "
                                         "[true]}]}\n");
    ci::test::write_file(dir / "conf/config.yml", config_text);
    ci::test::write_file(dir / "conf/templates/worker.yml",
                         "#cloud-config\n# {{class}}\nbootcmd: [{{bogus}}]\n");
    auto loaded = ci::config::load_config(dir.path() / "conf/config.yml");
    REQUIRE_OK(loaded);
    REQUIRE(loaded->ok());
    const auto& ec2 = std::get<ci::config::Ec2Workers>(loaded->config->slaves.at("aws/ubuntu"));
    CHECK(ec2.user_data_template == (dir.path() / "conf/templates/worker.yml").string());
    CHECK(ec2.unreachable_timeout == std::chrono::minutes(10));
    const auto checked = ci::config::check_user_data_templates(*loaded->config);
    REQUIRE_FALSE(checked);
    CHECK(checked.error().message ==
          (dir.path() / "conf/templates/worker.yml").string() +
              ":3:11: unknown placeholder {{bogus}} (known: {{master}}, {{master_host}}, "
              "{{worker_port}}, {{master_fingerprint}}, {{worker_name}}, {{worker_token}}, "
              "{{class}}, {{unreachable_timeout}}) (slaves.aws/ubuntu.user_data_template)");

    ci::test::write_file(dir / "conf/templates/worker.yml", "#cloud-config\n# {{class}}\n");
    CHECK_OK(ci::config::check_user_data_templates(*loaded->config));
    std::filesystem::remove(dir.path() / "conf/templates/worker.yml");
    const auto missing = ci::config::check_user_data_templates(*loaded->config);
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == ci::ErrorCode::NotFound);
    CHECK(missing.error().message.starts_with("slaves.aws/ubuntu.user_data_template: read user "
                                              "data template "));

    // The JSON form keeps the resolved path; a short unreachable_timeout is refused.
    const auto json = ci::config::parse_config_json(ci::config::to_json(*loaded->config), "json");
    REQUIRE(json.ok());
    CHECK(json.config->slaves == loaded->config->slaves);
    const auto too_short = ci::config::parse_config(
        "slaves: {aws: {ami: x, unreachable_timeout: 5s}}\n", "config.yml");
    REQUIRE_FALSE(too_short.ok());
    CHECK(too_short.errors().at(0).to_string().find(
              "slaves.aws.unreachable_timeout: must be at least 60s") != std::string::npos);
    const auto on_static = ci::config::parse_config(
        "slaves: {s: {passwords: [p], user_data_template: x}}\n", "config.yml");
    CHECK_FALSE(on_static.ok());
}
