// Reads one version per line and prints ci::wheelhouse::parse_version's normalized form, or
// INVALID: the integration test compares it with the `packaging` library pip vendors.

#include <iostream>
#include <string>

#include <ci/wheelhouse/wheel.h>

int main() {
    std::string line;
    while (std::getline(std::cin, line)) {
        auto version = ci::wheelhouse::parse_version(line);
        std::cout << (version ? version->to_string() : std::string("INVALID")) << '\n';
    }
    return 0;
}
