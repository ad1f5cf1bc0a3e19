// The Host check against DNS rebinding (master/guards.h): the names a master is served as, and
// which Host headers pass, are refused (421) or are malformed (400).

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "master/guards.h"

using ci::master::refuse_wrong_host;
using ci::master::served_host_names;

namespace {

ci::http::ServerRequest with_hosts(const std::vector<std::string>& hosts) {
    ci::http::ServerRequest request;
    request.method = "GET";
    request.path = "/";
    for (const auto& host : hosts) {
        request.headers.emplace_back("host", host);
    }
    return request;
}

int status_of(const std::vector<std::string>& names, const std::vector<std::string>& hosts) {
    const auto refused = refuse_wrong_host(with_hosts(hosts), names);
    return refused ? refused->status : 200;
}

} // namespace

TEST_CASE("served_host_names: localhost, host, url's host and web_hosts, lower-cased, once") {
    CHECK(served_host_names("CI.example.org", "https://user@Proxy.Example.org:8443/ci/?x", {}) ==
          std::vector<std::string>{"localhost", "ci.example.org", "proxy.example.org"});
    CHECK(served_host_names("localhost", "", {"Alias.example.", "alias.example"}) ==
          std::vector<std::string>{"localhost", "alias.example"});
    CHECK(served_host_names("10.0.0.1", "http://[::1]:8010/", {}) ==
          std::vector<std::string>{"localhost", "10.0.0.1", "[::1]"});
}

TEST_CASE("refuse_wrong_host: the master's names and IP addresses pass, other names are 421") {
    const auto names = served_host_names("ci.example.org", "", {"proxy.example.net"});
    for (const char* host : {"localhost",
                             "localhost:8010",
                             "LOCALHOST:1",
                             "ci.example.org",
                             "CI.Example.Org.:443",
                             "proxy.example.net:80",
                             "127.0.0.1:8010",
                             "10.0.0.7",
                             "[::1]:8010",
                             "[::1]",
                             "[fe80::1]:80"}) {
        CAPTURE(host);
        CHECK(status_of(names, {host}) == 200);
    }
    CHECK(status_of(names, {}) == 200); // no Host: HTTP/1.0, not a browser
    for (const char* host : {"evil.example",
                             "evil.example:8010",
                             "ci.example.org.evil.example",
                             "localhost.evil",
                             "sub.ci.example.org",
                             "127.0.0.1.nip.io"}) {
        CAPTURE(host);
        CHECK(status_of(names, {host}) == 421);
    }
    const auto refused = refuse_wrong_host(with_hosts({"evil.example:80"}), names);
    REQUIRE(refused);
    CHECK(refused->body.find("\\\"evil.example\\\"") != std::string::npos);
    CHECK(refused->body.find("buildmaster.web_hosts") != std::string::npos);
    for (const char* host :
         {"", ":80", "a:b", "a:80:80", "a:123456", "[::1", "[::1]x", "[evil]:80", "[::1]:x"}) {
        CAPTURE(host);
        CHECK(status_of(names, {host}) == 400);
    }
    CHECK(status_of(names, {"localhost", "evil.example"}) == 400);
}
