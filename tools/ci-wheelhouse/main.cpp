// ci-wheelhouse: builds Python wheels, writes a PEP 503 index for them and publishes both
// to S3, where workers install from.

#include <CLI/CLI.hpp>

#include "common/tool.h"

int main(int argc, char** argv) {
    CLI::App app{"ci-wheelhouse: builds Python wheels, indexes them (flat find-links page and\n"
                 "PEP 503 simple repository) and publishes them to S3."};
    ci::tools::setup_common(app, "ci-wheelhouse");
    app.require_subcommand(1);
    ci::tools::Runner runner;
    if (auto status = ci::tools::parse_command_line(app, argc, argv)) {
        return *status;
    }
    if (!ci::tools::initialize_library()) {
        return ci::tools::ExitError;
    }
    return runner ? runner() : ci::tools::ExitUsage;
}
