// GitHub push payloads (sched/github: parse_github_webhook) against a config with one
// repository: what an unsigned hook (no webhook_secret) takes from anyone.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <ci/config/load.h>
#include <ci/sched/github.h>

namespace {

const ci::config::Config& config() {
    static const ci::config::Config* c = [] {
        auto parsed = ci::config::parse_config(R"(
repositories: {demo: {url: "https://github.com/libci/demo"}}
slaves: {local: {local: true}}
builders: {tests: {repository: demo, workers: [local], steps: [{name: t, run: "true"}]}}
schedulers:
  branches: {type: branch, repository: demo, builders: [tests], branches: ["*"]}
)",
                                               "fuzz.yml")
                          .to_result();
        if (!parsed) {
            std::abort(); // the fuzz target's own config must load
        }
        return new ci::config::Config(std::move(*parsed));
    }();
    return *c;
}

} // namespace

// libFuzzer calls it with each input; the name is libFuzzer's, hence the NOLINT.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    (void)ci::sched::parse_github_webhook(body, config());
    return 0;
}
