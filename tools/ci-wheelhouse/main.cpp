// ci-wheelhouse: builds Python wheels, writes a PEP 503 index for them and publishes both
// to S3, where workers install from.

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <ci/aws/credentials.h>
#include <ci/aws/s3.h>
#include <ci/core/clock.h>
#include <ci/core/log.h>
#include <ci/core/process.h>
#include <ci/http/client.h>
#include <ci/wheelhouse/index.h>
#include <ci/wheelhouse/publish.h>

#include "common/tool.h"

namespace {

using namespace ci;
using ci::tools::ExitError;
using ci::tools::ExitFailure;
using ci::tools::ExitOk;
using ci::tools::ExitUsage;

// The wheels of `dir` (sorted by name); bad ones are reported on standard error and counted in
// `bad`, and so is what is named like a wheel but cannot be one (a directory, a FIFO, "*.WHL").
// Fails when `dir` cannot be listed: it is then no wheelhouse at all, not one bad wheel.
Result<std::vector<wheelhouse::LocalWheel>> read_wheels(const std::filesystem::path& dir,
                                                        int& bad) {
    std::vector<std::filesystem::path> paths;
    std::error_code error;
    std::filesystem::directory_iterator entries(dir, error);
    for (; !error && entries != std::filesystem::directory_iterator(); entries.increment(error)) {
        const auto& entry = *entries;
        const std::string name = entry.path().filename().string();
        std::string suffix = name.substr(name.size() - std::min<std::size_t>(name.size(), 4));
        std::ranges::transform(
            suffix, suffix.begin(), [](char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; });
        if (suffix != ".whl") {
            continue; // the index's own files, and anything else that is not meant as a wheel
        }
        std::error_code type_error;
        const auto type = entry.status(type_error).type(); // follows a symbolic link
        std::string_view why;
        if (!name.ends_with(".whl")) {
            why = "a wheel's name ends in \".whl\", in lower case (PEP 427)";
        } else if (type_error) {
            why = "it cannot be read (a dangling symbolic link?)";
        } else if (type == std::filesystem::file_type::directory) {
            why = "a directory";
        } else if (type != std::filesystem::file_type::regular) {
            why = "not a regular file (a FIFO, socket or device)";
        }
        if (!why.empty()) {
            std::fprintf(stderr,
                         "bad wheel, left out: %s: %s\n",
                         entry.path().c_str(),
                         std::string(why).c_str());
            ++bad;
            continue;
        }
        paths.push_back(entry.path());
    }
    if (error) {
        return fail(ErrorCode::Io,
                    fmt::format("read directory {}: {}", dir.string(), error.message()));
    }
    std::ranges::sort(paths);
    std::vector<wheelhouse::LocalWheel> wheels;
    for (const auto& path : paths) {
        auto wheel = wheelhouse::read_wheel(path);
        if (!wheel) {
            std::fprintf(stderr, "bad wheel, left out: %s\n", wheel.error().message.c_str());
            ++bad;
            continue;
        }
        wheels.push_back(std::move(*wheel));
    }
    return wheels;
}

// ---- index -----------------------------------------------------------------------------------

struct IndexCommand {
    std::string dir;
    std::string base_url;
};

int run_index(const IndexCommand& command) {
    const std::filesystem::path dir = command.dir;
    int bad = 0;
    // DIR must be there: it is never created (a mistyped name would get an empty index).
    auto wheels = read_wheels(dir, bad);
    if (!wheels) {
        tools::print_error(wheels.error());
        return ExitError;
    }
    auto errors = wheelhouse::write_local_index(dir, *wheels, command.base_url);
    if (!errors) {
        tools::print_error(errors.error());
        return ExitError;
    }
    for (const auto& error : *errors) {
        tools::print_error(error);
    }
    if (!errors->empty()) {
        std::fprintf(stderr,
                     "error: the index of %s is incomplete: %zu file(s) could not be written\n",
                     command.dir.c_str(),
                     errors->size());
        return ExitError;
    }
    std::printf("indexed %zu wheel(s) in %s (flat page: index; PEP 503: simple/)%s\n",
                wheels->size(),
                command.dir.c_str(),
                bad > 0 ? fmt::format("; {} bad wheel(s) left out", bad).c_str() : "");
    return bad > 0 ? ExitFailure : ExitOk;
}

// ---- publish ---------------------------------------------------------------------------------

struct PublishCommand {
    std::string dir;
    std::string destination;
    std::string endpoint_url; ///< empty: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, AWS's own
    std::string region;       ///< empty: $AWS_REGION, $AWS_DEFAULT_REGION, us-east-1
    std::string profile;
    std::string acl;
    bool dry_run = false;
    bool overwrite = false;
    bool rescan = false;
    int jobs = 8;
};

int run_publish(const PublishCommand& command) {
    constexpr std::string_view scheme = "s3://";
    if (!command.destination.starts_with(scheme) || command.destination.size() == scheme.size()) {
        std::fprintf(stderr,
                     "error: the destination must be s3://BUCKET/PREFIX, not '%s'\n",
                     command.destination.c_str());
        return ExitUsage;
    }
    std::string_view rest = std::string_view(command.destination).substr(scheme.size());
    const std::size_t slash = rest.find('/');
    wheelhouse::PublishOptions options;
    options.bucket = std::string(rest.substr(0, slash));
    if (slash != std::string_view::npos) {
        std::string_view prefix = rest.substr(slash + 1);
        while (prefix.ends_with('/')) {
            prefix.remove_suffix(1);
        }
        options.prefix = std::string(prefix);
    }
    options.acl = command.acl;
    options.dry_run = command.dry_run;
    options.overwrite = command.overwrite;
    options.jobs = command.jobs;
    options.rescan = command.rescan;

    int bad = 0;
    auto wheels = read_wheels(command.dir, bad);
    if (!wheels) {
        tools::print_error(wheels.error());
        return ExitError;
    }

    std::shared_ptr<http::Client> http = http::make_client();
    aws::CredentialsChainOptions chain;
    chain.http = http;
    if (!command.profile.empty()) {
        auto environment = aws::process_environment();
        chain.environment = [environment, profile = command.profile](const std::string& name) {
            return name == "AWS_PROFILE" ? std::optional<std::string>(profile) : environment(name);
        };
    }
    // As the AWS CLI and SDKs: the option, else the first of these variables that is set.
    const auto option_or_environment = [](const std::string& option,
                                          std::initializer_list<const char*> variables,
                                          std::string fallback) -> std::string {
        if (!option.empty()) {
            return option;
        }
        for (const char* variable : variables) {
            if (const char* value = std::getenv(variable); value != nullptr && *value != '\0') {
                return value;
            }
        }
        return fallback;
    };
    aws::S3Endpoint endpoint;
    endpoint.region =
        option_or_environment(command.region, {"AWS_REGION", "AWS_DEFAULT_REGION"}, "us-east-1");
    endpoint.endpoint_url = option_or_environment(
        command.endpoint_url, {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}, "");
    aws::S3Client s3(
        http, aws::make_credentials_chain(std::move(chain)), SystemClock::instance(), endpoint);

    const bool terminal = ::isatty(STDERR_FILENO) != 0;
    if (terminal) {
        options.on_progress = [](const wheelhouse::PublishProgress& progress) {
            static constexpr std::array<const char*, 3> stages = {
                "listing", "uploading wheels", "uploading the index"};
            constexpr std::size_t width = 30;
            const std::size_t filled =
                progress.total == 0 ? width : width * progress.done / progress.total;
            std::fprintf(stderr,
                         "\r%-20s [%s%s] %zu/%zu\033[K",
                         stages[static_cast<int>(progress.stage)],
                         std::string(filled, '#').c_str(),
                         std::string(width - filled, '.').c_str(),
                         progress.done,
                         progress.total);
        };
    }
    auto report = wheelhouse::publish(s3, *wheels, options);
    if (terminal) {
        std::fprintf(stderr, "\r\033[K");
    }
    if (!report) {
        tools::print_error(report.error());
        return report.error().code == ErrorCode::Conflict ? ExitFailure : ExitError;
    }
    std::printf("%s%s: %zu wheel(s) uploaded, %zu already there; index of %zu wheel(s): %zu "
                "page(s) uploaded, %zu unchanged%s\n",
                command.dry_run ? "dry run, nothing uploaded: " : "",
                command.destination.c_str(),
                report->uploaded.size(),
                report->skipped.size(),
                report->wheels_indexed,
                report->pages_uploaded,
                report->pages_unchanged,
                bad > 0 ? fmt::format("; {} bad wheel(s) left out", bad).c_str() : "");
    if (command.dry_run) {
        for (const auto& name : report->uploaded) {
            std::printf("would upload %s\n", name.c_str());
        }
    }
    return bad > 0 ? ExitFailure : ExitOk;
}

// ---- build -----------------------------------------------------------------------------------

struct BuildCommand {
    std::string python = "python3";
    std::string wheel_dir = "wheelhouse";
    std::vector<std::string> inputs;
    std::vector<std::string> pip_args;
};

std::vector<std::string>& pip_args_after_separator() {
    static std::vector<std::string> args;
    return args;
}

int run_checked(const ProcessSpec& spec) {
    auto result = run_process(spec);
    if (!result) {
        tools::print_error(result.error());
        return ExitError;
    }
    if (!result->success()) {
        std::fprintf(stderr,
                     "error: '%s' %s\n",
                     fmt::format("{}", fmt::join(spec.argv, " ")).c_str(),
                     result->describe().c_str());
        return ExitFailure;
    }
    return ExitOk;
}

int run_build(BuildCommand command) {
    const auto echo = [](OutputStream, std::string_view text) {
        std::fwrite(text.data(), 1, text.size(), stderr);
    };
    const std::filesystem::path wheel_dir = std::filesystem::absolute(command.wheel_dir);
    const auto sdist_dir = wheel_dir / ".sdist";
    std::filesystem::create_directories(sdist_dir);
    std::vector<std::string> pip{command.python,
                                 "-m",
                                 "pip",
                                 "wheel",
                                 "-w",
                                 wheel_dir.string(),
                                 "--find-links",
                                 sdist_dir.string()};
    for (const auto& input : command.inputs) {
        const std::filesystem::path project = input;
        if (std::filesystem::is_directory(project) &&
            std::filesystem::exists(project / "setup.py")) {
            // An sdist first, as the old procedure did (python setup.py sdist), then its wheel.
            ProcessSpec sdist;
            sdist.argv = {command.python, "setup.py", "-q", "sdist", "-d", sdist_dir.string()};
            sdist.cwd = project.string();
            sdist.merge_stderr = true;
            sdist.on_output = echo;
            if (const int status = run_checked(sdist); status != ExitOk) {
                return status;
            }
            ProcessSpec name;
            name.argv = {command.python, "setup.py", "-q", "--name", "--version"};
            name.cwd = project.string();
            std::string out;
            name.on_output = [&](OutputStream stream, std::string_view text) {
                if (stream == OutputStream::Stdout) {
                    out += text;
                }
            };
            if (const int status = run_checked(name); status != ExitOk) {
                return status;
            }
            const std::size_t newline = out.find('\n');
            const std::string project_name = out.substr(0, newline);
            std::string version = newline == std::string::npos ? "" : out.substr(newline + 1);
            while (!version.empty() && (version.back() == '\n' || version.back() == '\r')) {
                version.pop_back();
            }
            pip.push_back(fmt::format("{}=={}", project_name, version));
        } else {
            pip.push_back(input);
        }
    }
    pip.insert(pip.end(), command.pip_args.begin(), command.pip_args.end());
    ProcessSpec spec;
    spec.argv = pip;
    spec.merge_stderr = true;
    spec.on_output = echo;
    return run_checked(spec);
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"ci-wheelhouse: builds Python wheels, indexes them (flat find-links page and\n"
                 "PEP 503 simple repository) and publishes them to S3."};
    ci::tools::setup_common(app, "ci-wheelhouse");
    app.require_subcommand(1);
    ci::tools::Runner runner;

    // Arguments after "--" of `build` go to pip untouched.
    for (int i = 1; i < argc; ++i) {
        if (std::string_view(argv[i]) == "--") {
            bool building = false;
            for (int j = 1; j < i; ++j) {
                building = building || std::string_view(argv[j]) == "build";
            }
            if (building) {
                pip_args_after_separator().assign(argv + i + 1, argv + argc);
                argc = i;
            }
            break;
        }
    }

    auto build = std::make_shared<BuildCommand>();
    auto* build_cmd = app.add_subcommand(
        "build",
        "Build wheels with PY -m pip wheel into DIR: each PROJECT_DIR holding a setup.py is made\n"
        "into an sdist first (as 'python setup.py sdist' did), then built with its dependencies;\n"
        "a REQUIREMENT ('Flocker[doc]==1.0') is built as pip resolves it. Arguments after '--'\n"
        "go to pip (e.g. -- --no-index --find-links other/).");
    ci::tools::set_usage(
        *build_cmd, "ci-wheelhouse build [OPTIONS] [PROJECT_DIR | REQUIREMENT]... [-- PIP_ARGS]");
    build_cmd->add_option("--python", build->python, "The Python to build with")
        ->default_str("python3");
    build_cmd->add_option("-w,--wheel-dir", build->wheel_dir, "Where the wheels go")
        ->default_str("wheelhouse");
    build_cmd->add_option("inputs", build->inputs, "Project directories or requirements")
        ->required();
    build_cmd->callback([&runner, build] {
        build->pip_args = pip_args_after_separator();
        runner = [build] { return run_build(*build); };
    });

    auto index = std::make_shared<IndexCommand>();
    auto* index_cmd = app.add_subcommand(
        "index",
        "Write the index of the wheels in DIR into DIR: 'index' (the flat find-links page),\n"
        "simple/ (PEP 503 HTML and PEP 691 JSON pages) and a <wheel>.metadata file per wheel.\n"
        "Bad wheels (name, zip, METADATA; a directory, FIFO or *.WHL named like a wheel) are\n"
        "reported and left out (exit status 1). Each file is written to a temporary file and\n"
        "renamed: a symbolic link of its name is replaced, never written through; a link where\n"
        "a directory of the index goes (simple/, simple/PROJECT/) is refused. Exit status 3:\n"
        "DIR cannot be read (it is never created), or a file could not be written (the pages\n"
        "then advertise no .metadata file that is not there).");
    index_cmd->add_option("DIR", index->dir, "A directory of wheels")->required();
    index_cmd->add_option("--base-url",
                          index->base_url,
                          "Where the wheels will be served; links are relative without it");
    index_cmd->callback([&runner, index] { runner = [index] { return run_index(*index); }; });

    auto publish = std::make_shared<PublishCommand>();
    auto* publish_cmd = app.add_subcommand(
        "publish",
        "Upload the wheels of DIR that s3://BUCKET/PREFIX lacks (same name and sha256: skipped;\n"
        "same name, other content: refused unless --overwrite), then rebuild the index from\n"
        "every wheel under the prefix: wheels and their .metadata files first, then project\n"
        "pages, the root and the flat 'index' last, so that a failed upload leaves the previous\n"
        "index (the next publish finishes it).\n"
        "What is under the prefix is what the manifest of earlier publishes records\n"
        "(PREFIX/.libci-wheelhouse.json); the prefix is listed when there is none, or "
        "with\n"
        "--rescan after another tool added or removed wheels.\n"
        "Credentials as the AWS CLI finds them (environment, ~/.aws/credentials, instance role).\n"
        "Exit status: 0 published; 1 bad wheels left out or a published wheel differs; 3 an\n"
        "S3 error.");
    publish_cmd->add_option("DIR", publish->dir, "A directory of wheels")->required();
    publish_cmd->add_option("DESTINATION", publish->destination, "s3://BUCKET/PREFIX")->required();
    publish_cmd->add_option("--endpoint-url",
                            publish->endpoint_url,
                            "An S3-compatible endpoint, as the AWS CLI's; default: "
                            "$AWS_ENDPOINT_URL_S3, else $AWS_ENDPOINT_URL, else AWS");
    publish_cmd->add_option("--region",
                            publish->region,
                            "The bucket's region; default: $AWS_REGION, else "
                            "$AWS_DEFAULT_REGION, else us-east-1");
    publish_cmd->add_option("--profile", publish->profile, "A profile of ~/.aws/credentials");
    publish_cmd->add_option("--acl", publish->acl, "x-amz-acl of every object, e.g. public-read");
    publish_cmd->add_flag(
        "--dry-run", publish->dry_run, "Say what would be uploaded; upload nothing");
    publish_cmd->add_flag(
        "--overwrite", publish->overwrite, "Replace published wheels whose content differs");
    publish_cmd->add_flag("--rescan",
                          publish->rescan,
                          "List the prefix instead of trusting the manifest of earlier publishes "
                          "(after another tool added or removed wheels)");
    publish_cmd->add_option("--jobs", publish->jobs, "Uploads in flight")->default_str("8");
    publish_cmd->callback(
        [&runner, publish] { runner = [publish] { return run_publish(*publish); }; });

    auto conf_url = std::make_shared<std::string>();
    auto* conf_cmd = app.add_subcommand(
        "pip-conf",
        "Print the pip.conf a worker needs to install from the wheelhouse whose flat index is\n"
        "at URL (e.g. https://s3-us-west-2.amazonaws.com/BUCKET/PREFIX/index).");
    conf_cmd->add_option("URL", *conf_url, "The wheelhouse's flat index page")->required();
    conf_cmd->callback([&runner, conf_url] {
        runner = [conf_url] {
            std::fputs(wheelhouse::pip_conf(*conf_url).c_str(), stdout);
            return ExitOk;
        };
    });

    if (auto status = ci::tools::parse_command_line(app, argc, argv)) {
        return *status;
    }
    if (!ci::tools::initialize_library()) {
        return ci::tools::ExitError;
    }
    return runner ? runner() : ci::tools::ExitUsage;
}
