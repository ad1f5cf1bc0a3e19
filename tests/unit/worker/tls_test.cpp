// The worker port's TLS pieces that need no connection: the self-signed certificate (created
// once, key 0600, reused; the openssl CLI reads it and agrees on its fingerprint and name), the
// checks of configured files (errors name the key and the file), fingerprint arguments, ticket
// keys, and the challenge a proof covers.

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include <doctest/doctest.h>
#include <sys/stat.h>

#include "master/protocol.h"
#include "support/temp_dir.h"
#include "worker/tls.h"

namespace {

namespace tls = ci::worker::tls;

// What the openssl CLI prints for `command` (stdout).
std::string openssl(const std::string& command) {
    std::string out;
    FILE* pipe = ::popen(("openssl " + command + " 2>&1").c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::array<char, 512> buffer{};
    while (std::fgets(buffer.data(), static_cast<int>(buffer.size()), pipe) != nullptr) {
        out += buffer.data();
    }
    ::pclose(pipe);
    return out;
}

} // namespace

TEST_CASE("tls: a self-signed certificate for the host, created once, its key 0600") {
    ci::test::TempDir dir{"libci-tls"};
    auto files = tls::ensure_self_signed(dir / "tls", "ci.example.org");
    REQUIRE(files.has_value());
    struct stat key_stat {};
    REQUIRE(::stat(files->key.c_str(), &key_stat) == 0);
    CHECK((key_stat.st_mode & 0777) == 0600);
    auto fingerprint = tls::fingerprint_of_file(files->cert);
    REQUIRE(fingerprint.has_value());
    CHECK(fingerprint->starts_with("sha256:"));
    CHECK(fingerprint->size() == 7 + 64);
    // openssl (another reader) sees the same certificate, for the host, with an EC P-256 key.
    const auto shown = openssl("x509 -noout -fingerprint -sha256 -ext subjectAltName -text -in " +
                               files->cert.string());
    std::string hex;
    const auto at = shown.find("Fingerprint=");
    REQUIRE(at != std::string::npos);
    for (auto i = at + 12; i < shown.size() && shown[i] != '\n'; ++i) {
        if (shown[i] != ':') {
            hex += static_cast<char>(std::tolower(static_cast<unsigned char>(shown[i])));
        }
    }
    CHECK("sha256:" + hex == *fingerprint);
    CHECK(shown.find("DNS:ci.example.org") != std::string::npos);
    CHECK(shown.find("prime256v1") != std::string::npos);
    CHECK(tls::check_certificate(*files, "cert", "key").has_value());

    // Reused as it is.
    auto again = tls::ensure_self_signed(dir / "tls", "other.example.org");
    REQUIRE(again.has_value());
    CHECK(tls::fingerprint_of_file(again->cert).value() == *fingerprint);

    // An IP address as the host: an IP SAN.
    auto ip = tls::ensure_self_signed(dir / "ip", "10.1.2.3");
    REQUIRE(ip.has_value());
    CHECK(openssl("x509 -noout -ext subjectAltName -in " + ip->cert.string())
              .find("IP Address:10.1.2.3") != std::string::npos);

    // A key of another certificate, a missing file, a file that is no certificate.
    auto mismatch = tls::check_certificate(
        {files->cert, ip->key}, "buildmaster.tls.cert", "buildmaster.tls.key");
    REQUIRE_FALSE(mismatch.has_value());
    CHECK(mismatch.error().message.find("buildmaster.tls.key") != std::string::npos);
    CHECK(mismatch.error().message.find("does not belong") != std::string::npos);
    auto missing = tls::check_certificate(
        {dir / "none.pem", ip->key}, "buildmaster.tls.cert", "buildmaster.tls.key");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().message.find("buildmaster.tls.cert: cannot read") == 0);
    CHECK(missing.error().message.find("none.pem") != std::string::npos);
    auto garbage =
        tls::check_certificate({ip->key, ip->key}, "buildmaster.tls.cert", "buildmaster.tls.key");
    REQUIRE_FALSE(garbage.has_value());
    CHECK(garbage.error().message.find("holds no PEM certificate") != std::string::npos);
}

TEST_CASE("tls: fingerprint arguments") {
    const std::string hex(64, 'a');
    CHECK(tls::parse_fingerprint("sha256:" + hex).value() == "sha256:" + hex);
    std::string colons; // as openssl prints it
    for (int i = 0; i < 32; ++i) {
        colons += (i > 0 ? ":" : "") + std::string("AA");
    }
    CHECK(tls::parse_fingerprint("sha256:" + colons).value() == "sha256:" + hex);
    CHECK_FALSE(tls::parse_fingerprint(hex).has_value());
    CHECK_FALSE(tls::parse_fingerprint("sha1:" + hex).has_value());
    CHECK_FALSE(tls::parse_fingerprint("sha256:" + hex.substr(2)).has_value());
    CHECK_FALSE(tls::parse_fingerprint("sha256:" + hex.substr(1) + "g").has_value());
}

TEST_CASE("tls: session ticket keys are made once, 0600, and kept") {
    ci::test::TempDir dir{"libci-tls"};
    auto keys = tls::ticket_keys(dir / "tls" / "tickets.key");
    REQUIRE(keys.has_value());
    CHECK(keys->size() == 80);
    CHECK(tls::ticket_keys(dir / "tls" / "tickets.key").value() == *keys);
    struct stat key_stat {};
    REQUIRE(::stat((dir / "tls" / "tickets.key").c_str(), &key_stat) == 0);
    CHECK((key_stat.st_mode & 0777) == 0600);
}

TEST_CASE("protocol: a proof over TLS covers the connection's exporter value") {
    namespace protocol = ci::master::protocol;
    CHECK(protocol::bound_challenge("n1", "") == "n1");
    CHECK(protocol::bound_challenge("n1", "ab12") == "n1:ab12");
    CHECK(protocol::proof("pw", protocol::bound_challenge("n1", "ab12")) !=
          protocol::proof("pw", protocol::bound_challenge("n1", "ab13")));
}
