// Reads one version per line and prints ci::wheelhouse::parse_version's normalized form, or
// INVALID; with --sort, prints the valid ones in libci's PEP 440 order (a stable sort of the
// input). The integration test compares both with the `packaging` library pip vendors.

#include <algorithm>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <ci/wheelhouse/wheel.h>

int main(int argc, char** argv) {
    const bool sort = argc > 1 && std::string_view(argv[1]) == "--sort";
    std::vector<ci::wheelhouse::Version> valid;
    std::string line;
    while (std::getline(std::cin, line)) {
        auto version = ci::wheelhouse::parse_version(line);
        if (sort) {
            if (version) {
                valid.push_back(std::move(*version));
            }
            continue;
        }
        std::cout << (version ? version->to_string() : std::string("INVALID")) << '\n';
    }
    std::ranges::stable_sort(valid);
    for (const auto& version : valid) {
        std::cout << version.to_string() << '\n';
    }
    return 0;
}
