// A program outside the libci tree that embeds the installed library through pkg-config.
// It sees only the installed public headers, so it also proves they need nothing private.
#include <cstdio>

#include <ci/core/crypto.h>
#include <ci/core/error.h>
#include <ci/core/log.h>
#include <ci/version.h>

int main() {
    if (auto status = ci::initialize(); !status) {
        std::fprintf(stderr, "error: %s\n", status.error().to_string().c_str());
        return 1;
    }
    const ci::Result<std::string> token = ci::crypto::random_token(8);
    if (!token) {
        return 1;
    }
    std::printf("libci %s\n", std::string(ci::version()).c_str());
    std::printf("sha256(abc) %s\n", ci::crypto::to_hex(ci::crypto::sha256("abc")).c_str());
    std::printf("redacted %s\n", ci::log::redact("https://user:pw@host/x").c_str());
    return 0;
}
