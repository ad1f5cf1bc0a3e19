// load_config: how a program embedding libci reads a master's configuration.
//
//   load_config CONFIG.yml
//
// Prints what the configuration defines (worker classes, builders and their steps, schedulers)
// and every warning; on errors, prints them all and exits 1.

#include <cstdio>
#include <string>
#include <variant>

#include <ci/config/load.h>
#include <ci/core/log.h>

namespace {

const char* kind_of(const ci::config::WorkerClass& worker_class) {
    if (std::holds_alternative<ci::config::Ec2Workers>(worker_class)) {
        return "EC2 latent";
    }
    if (std::holds_alternative<ci::config::StaticWorkers>(worker_class)) {
        return "static";
    }
    return "local";
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CONFIG.yml\n", argv[0]);
        return 2;
    }
    auto checked = ci::config::load_config(argv[1]);
    if (!checked) {
        std::fprintf(stderr, "error: %s\n", checked.error().to_string().c_str());
        return 3;
    }
    for (const auto& diagnostic : checked->diagnostics) {
        std::fprintf(stderr, "%s\n", diagnostic.to_string().c_str());
    }
    if (!checked->ok()) {
        return 1;
    }
    const ci::config::Config& config = *checked->config;
    // Whatever the program logs from now on, the config's secrets are redacted from it.
    for (const auto& secret : ci::config::secrets(config)) {
        (void)ci::log::add_secret(secret);
    }
    std::printf("master %s: web port %u, worker port %u, state %s\n",
                config.buildmaster.host.c_str(),
                config.buildmaster.web_port,
                config.buildmaster.worker_port,
                config.buildmaster.state.c_str());
    for (const auto& [name, worker_class] : config.slaves) {
        std::printf("worker class %s: %s\n", name.c_str(), kind_of(worker_class));
    }
    for (const auto& [name, builder] : config.builders) {
        std::printf("builder %s (repository %s, %zu steps)\n",
                    name.c_str(),
                    builder.repository.c_str(),
                    builder.steps.size());
        for (const auto& step : builder.steps) {
            // A trigger or upload step has no command: say what it does instead.
            const std::string what = !step.command.empty() ? step.command.back()
                                     : step.trigger        ? std::string("(trigger)")
                                                           : std::string("(no command)");
            std::printf("  step %s: %s\n", step.name.c_str(), what.c_str());
        }
    }
    for (const auto& [name, scheduler] : config.schedulers) {
        std::printf("scheduler %s -> %zu builder(s)\n", name.c_str(), scheduler.builders.size());
    }
    return 0;
}
