// The web UI's logins (master/sessions.h) and the pure parts of its forms (master/forms.h):
// passwords of both kinds of user, HTTP basic, session ids and their expiry with a manual
// clock, the cookie, the urlencoded form parser under hostile input, and where a form may send
// the browser afterwards.

#include <doctest/doctest.h>

#include <ci/config/load.h>
#include <ci/core/clock.h>
#include <ci/core/crypto.h>

#include "master/forms.h"
#include "master/sessions.h"

using namespace std::chrono_literals;
using ci::master::Sessions;

namespace {

// alice's password is "correct horse é" (hashed by Python's hashlib, see password_test.cpp);
// bob's is the same with PBKDF2; admin is the old plain single user.
ci::config::Config auth_config(const std::string& extra = {}) {
    auto checked = ci::config::parse_config(
        "auth:\n"
        "  user: admin\n"
        "  password: plain-pw\n"
        "  users:\n"
        "    - user: alice\n"
        "      password_hash: '$scrypt$ln=10,r=8,p=2$bGliY2ktdGVzdC1zYWx0IQ$"
        "zJSXuDWJ2HWCHbh2FAZdqz/l4j52LTu/k13XSAMC/gI'\n"
        "    - user: bob\n"
        "      password_hash: '$pbkdf2-sha256$i=1000$bGliY2ktdGVzdC1zYWx0IQ$"
        "jWA1e9l7C7RRKOusxmO0R/B9A3iPnx1AlgRc1AVbc1E'\n" +
            extra,
        "test.yml");
    REQUIRE(checked.ok());
    return *checked.config;
}

const std::string alice_password = "correct horse \xc3\xa9";

ci::http::ServerRequest with_header(const std::string& name, const std::string& value) {
    ci::http::ServerRequest request;
    request.headers.emplace_back(name, value);
    return request;
}

ci::http::ServerRequest with_cookie(const std::string& id) {
    return with_header("cookie", "theme=dark; libci_session=" + id + "; other=1");
}

} // namespace

TEST_CASE("sessions: passwords of hashed users and of the old plain user") {
    const auto config = auth_config();
    const ci::ManualClock clock;
    const Sessions sessions(config, clock);
    CHECK(sessions.check_password("alice", alice_password) == "alice");
    CHECK(sessions.check_password("bob", alice_password) == "bob");
    CHECK(sessions.check_password("admin", "plain-pw") == "admin");
    CHECK_FALSE(sessions.check_password("alice", "plain-pw"));
    CHECK_FALSE(sessions.check_password("admin", alice_password));
    CHECK_FALSE(sessions.check_password("mallory", alice_password));
    CHECK_FALSE(sessions.check_password("", ""));
    CHECK_FALSE(sessions.check_password("ALICE", alice_password));

    const ci::config::Config none;
    const Sessions nobody(none, clock);
    CHECK_FALSE(nobody.enabled());
    CHECK_FALSE(nobody.check_password("admin", "plain-pw"));
}

TEST_CASE("sessions: HTTP basic, remembered for a while") {
    const auto config = auth_config();
    ci::ManualClock clock;
    const Sessions sessions(config, clock);
    const auto basic = [](const std::string& pair) {
        return with_header("authorization", "Basic " + ci::crypto::base64_encode(pair));
    };
    CHECK(sessions.basic_user(basic("alice:" + alice_password)) == "alice");
    CHECK(sessions.basic_user(basic("alice:" + alice_password)) == "alice"); // remembered
    clock.advance(10min);
    CHECK(sessions.basic_user(basic("alice:" + alice_password)) == "alice"); // checked again
    CHECK(sessions.basic_user(basic("admin:plain-pw")) == "admin");
    CHECK(sessions.basic_user(basic("admin:plain-pw:x")) == std::nullopt); // ':' in a password
    CHECK_FALSE(sessions.basic_user(basic("alice:wrong")));
    CHECK_FALSE(sessions.basic_user(basic("alice")));
    CHECK_FALSE(sessions.basic_user(with_header("authorization", "Basic !!!")));
    CHECK_FALSE(sessions.basic_user(with_header("authorization", "Bearer abc")));
    CHECK_FALSE(sessions.basic_user(with_header("authorization", "Basic")));
    CHECK_FALSE(sessions.basic_user({}));
}

TEST_CASE("sessions: a session is a 256-bit id in a cookie, with its own CSRF token") {
    const auto config = auth_config();
    ci::ManualClock clock;
    ci::master::SessionPolicy policy;
    policy.idle_timeout = 1h;
    policy.max_age = 5h;
    Sessions sessions(config, clock, policy);
    CHECK_FALSE(sessions.viewer({}).logged_in());

    auto first = sessions.open("alice");
    REQUIRE(first);
    CHECK(first->id.size() == 64);
    CHECK(first->viewer.user == "alice");
    CHECK(first->viewer.csrf_token.size() == 64);
    auto second = sessions.open("alice");
    REQUIRE(second);
    CHECK(second->id != first->id);
    CHECK(second->viewer.csrf_token != first->viewer.csrf_token);
    CHECK(sessions.size() == 2);

    const auto viewer = sessions.viewer(with_cookie(first->id));
    CHECK(viewer.user == "alice");
    CHECK(viewer.csrf_token == first->viewer.csrf_token);
    // A forged or altered id is nobody.
    auto altered = first->id;
    altered[10] = altered[10] == 'a' ? 'b' : 'a';
    CHECK_FALSE(sessions.viewer(with_cookie(altered)).logged_in());
    CHECK_FALSE(sessions.viewer(with_cookie(first->id.substr(1))).logged_in());
    CHECK_FALSE(sessions.viewer(with_cookie(first->viewer.csrf_token)).logged_in());
    // Two cookies of the name (one planted by another path): the live one counts.
    CHECK(sessions
              .viewer(with_header("cookie",
                                  "libci_session=" + altered + "; libci_session=" + first->id))
              .user == "alice");

    SUBCASE("idle timeout: each request keeps it alive; max_age ends it anyway") {
        for (int i = 0; i < 4; ++i) {
            clock.advance(59min);
            CHECK(sessions.viewer(with_cookie(first->id)).logged_in());
        }
        clock.advance(1h + 1min); // 4 h 57 min, but idle for more than an hour
        CHECK_FALSE(sessions.viewer(with_cookie(first->id)).logged_in());
        CHECK_FALSE(sessions.viewer(with_cookie(second->id)).logged_in());
        auto third = sessions.open("bob");
        REQUIRE(third);
        for (int i = 0; i < 5; ++i) {
            clock.advance(59min);
            CHECK(sessions.viewer(with_cookie(third->id)).logged_in());
        }
        clock.advance(6min); // used 6 min ago, but logged in 5 h 1 min ago
        CHECK_FALSE(sessions.viewer(with_cookie(third->id)).logged_in());
    }
    SUBCASE("close ends only that session") {
        sessions.close(with_cookie(first->id));
        CHECK_FALSE(sessions.viewer(with_cookie(first->id)).logged_in());
        CHECK(sessions.viewer(with_cookie(second->id)).logged_in());
        CHECK(sessions.size() == 1);
    }
    SUBCASE("the cookie: HttpOnly, SameSite=Strict, Path=/, Secure over HTTPS") {
        const auto cookie = sessions.set_cookie({}, first->id);
        CHECK(cookie ==
              "libci_session=" + first->id + "; Path=/; HttpOnly; SameSite=Strict; Max-Age=18000");
        CHECK(sessions.set_cookie(with_header("x-forwarded-proto", "https"), first->id)
                  .ends_with("; Secure"));
        CHECK(sessions.set_cookie({}, "") ==
              "libci_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
        auto https = auth_config("buildmaster: {url: 'https://ci.example.org/'}\n");
        Sessions secure(https, clock);
        CHECK(secure.set_cookie({}, first->id) == "__Host-libci_session=" + first->id +
                                                      "; Path=/; HttpOnly; SameSite=Strict; "
                                                      "Max-Age=604800; Secure");
        // Over HTTPS only the __Host- cookie is read (a plain one could be planted by a
        // sibling host or a plain-HTTP page).
        auto opened = secure.open("alice");
        REQUIRE(opened.has_value());
        CHECK_FALSE(secure.viewer(with_cookie(opened->id)).logged_in());
        CHECK(
            secure.viewer(with_header("cookie", "__Host-libci_session=" + opened->id)).logged_in());
    }
}

TEST_CASE("sessions: their number is bounded (the least recently used ends)") {
    const auto config = auth_config();
    ci::ManualClock clock;
    ci::master::SessionPolicy policy;
    policy.max_sessions = 3;
    Sessions sessions(config, clock, policy);
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
        auto opened = sessions.open("alice");
        REQUIRE(opened);
        ids.push_back(opened->id);
        clock.advance(1s);
    }
    CHECK(sessions.viewer(with_cookie(ids[0])).logged_in()); // used: ids[1] is now the oldest
    clock.advance(1s);
    REQUIRE(sessions.open("bob"));
    CHECK(sessions.size() == 3);
    CHECK(sessions.viewer(with_cookie(ids[0])).logged_in());
    CHECK_FALSE(sessions.viewer(with_cookie(ids[1])).logged_in());
    CHECK(sessions.viewer(with_cookie(ids[2])).logged_in());
}

TEST_CASE("sessions: one user's logins end that user's oldest session, not another's") {
    // The hostile tester: with only the cap of all, one account logging in 10,000 times ended
    // every other user's session.
    const auto config = auth_config();
    ci::ManualClock clock;
    ci::master::SessionPolicy policy;
    policy.max_sessions = 5;
    policy.max_sessions_per_user = 2;
    Sessions sessions(config, clock, policy);
    auto bob = sessions.open("bob");
    REQUIRE(bob);
    std::vector<std::string> alice;
    for (int i = 0; i < 10; ++i) {
        clock.advance(1s);
        auto opened = sessions.open("alice");
        REQUIRE(opened);
        alice.push_back(opened->id);
    }
    CHECK(sessions.size() == 3);
    CHECK(sessions.viewer(with_cookie(bob->id)).logged_in());
    CHECK(sessions.viewer(with_cookie(alice[9])).logged_in());
    CHECK(sessions.viewer(with_cookie(alice[8])).logged_in());
    CHECK_FALSE(sessions.viewer(with_cookie(alice[7])).logged_in());
}

TEST_CASE("forms: urlencoded bodies, hostile ones refused with the field named") {
    auto form = ci::master::parse_form("user=al%C3%A9+x&password=p%26w%3D&next=%2Fbuilders%2Fa&"
                                       "&empty=&flag");
    REQUIRE(form);
    CHECK(form->get("user") == "al\xc3\xa9 x");
    CHECK(form->get("password") == "p&w=");
    CHECK(form->get("next") == "/builders/a");
    CHECK(form->has("empty"));
    CHECK(form->get("empty").empty());
    CHECK(form->has("flag"));
    CHECK_FALSE(form->has("missing"));
    CHECK(form->get("missing").empty());
    // Text areas send CR LF; a '%' that starts no escape stays as it is.
    form = ci::master::parse_form("properties=a%3D1%0D%0Ab%3D2%09x&reason=100%+sure");
    REQUIRE(form);
    CHECK(form->get("properties") == "a=1\r\nb=2\tx");
    CHECK(form->get("reason") == "100% sure");

    SUBCASE("a repeated field only where the route allows it") {
        auto twice = ci::master::parse_form("csrf=a&csrf=b");
        REQUIRE_FALSE(twice);
        CHECK(twice.error().message == "form field csrf is sent more than once");
        auto builders = ci::master::parse_form("builder=a&builder=b&csrf=x", {"builder"});
        REQUIRE(builders);
        CHECK(builders->all("builder") == std::vector<std::string_view>{"a", "b"});
        CHECK_FALSE(ci::master::parse_form("builder=a&csrf=x&csrf=x", {"builder"}));
    }
    SUBCASE("invalid UTF-8, control characters, NUL") {
        auto invalid = ci::master::parse_form("reason=%C3%28");
        REQUIRE_FALSE(invalid);
        CHECK(invalid.error().message.find("form field reason: not UTF-8") == 0);
        CHECK_FALSE(ci::master::parse_form("reason=a%00b"));
        CHECK_FALSE(ci::master::parse_form("reason=a%1Bb"));
        CHECK_FALSE(ci::master::parse_form("reason=%7F"));
        CHECK_FALSE(ci::master::parse_form("re%FFason=1"));
        CHECK_FALSE(ci::master::parse_form("a%00=1"));
    }
    SUBCASE("huge: many fields, long values") {
        std::string many;
        for (std::size_t i = 0; i <= ci::master::max_form_fields; ++i) {
            many += "f" + std::to_string(i) + "=1&";
        }
        auto refused = ci::master::parse_form(many);
        REQUIRE_FALSE(refused);
        CHECK(refused.error().message.find("more than 256 fields") != std::string::npos);
        const std::string long_value(std::size_t{64} * 1024, 'x');
        auto long_form = ci::master::parse_form("reason=" + long_value);
        REQUIRE(long_form);
        CHECK(long_form->get("reason").size() == long_value.size());
        CHECK(ci::master::parse_form(std::string(10000, '&'))->fields.empty());
        CHECK(ci::master::parse_form(std::string(10000, '='))->get("").size() == 9999);
    }
}

TEST_CASE("forms: cookies, local paths and the page a form came from") {
    using ci::master::cookie_values;
    CHECK(cookie_values("a=1; libci_session=abc; b=2", "libci_session") ==
          std::vector<std::string_view>{"abc"});
    CHECK(cookie_values("libci_session=\"q\";libci_session=r", "libci_session") ==
          std::vector<std::string_view>{"q", "r"});
    CHECK(cookie_values("xlibci_session=1; libci_sessionx=2; libci_session", "libci_session")
              .empty());
    CHECK(cookie_values("", "libci_session").empty());
    CHECK(cookie_values(";;; ; =", "libci_session").empty());

    using ci::master::local_path;
    CHECK(local_path("/builders/a?branch=b") == "/builders/a?branch=b");
    CHECK(local_path("//evil.example/") == "/");
    CHECK(local_path("/\\evil.example/") == "/");
    CHECK(local_path("https://evil.example/") == "/");
    CHECK(local_path("/a\r\nSet-Cookie: x") == "/");
    CHECK(local_path("/a\\b") == "/");
    CHECK(local_path("") == "/");
    CHECK(local_path("builders", "/home") == "/home");

    ci::http::ServerRequest request;
    request.headers = {{"host", "ci.example.org:8010"},
                       {"referer", "http://ci.example.org:8010/builds/4?x=1#step-2"}};
    CHECK(ci::master::came_from(request, "/") == "/builds/4?x=1");
    request.headers[1].second = "http://evil.example/builds/4";
    CHECK(ci::master::came_from(request, "/fallback") == "/fallback");
    request.headers[1].second = "http://ci.example.org:8010//evil.example/";
    CHECK(ci::master::came_from(request, "/fallback") == "/fallback");
    request.headers.pop_back();
    CHECK(ci::master::came_from(request, "/fallback") == "/fallback");

    const auto response = ci::master::see_other("/builders/a");
    CHECK(response.status == 303);
    REQUIRE(response.headers.size() == 1);
    CHECK(response.headers[0] == std::pair<std::string, std::string>{"Location", "/builders/a"});
}

TEST_CASE("sessions: HTTP basic credentials decoded, and remembered only once right") {
    const auto config = auth_config();
    const ci::ManualClock clock;
    const Sessions sessions(config, clock);
    const auto basic = [](const std::string& pair) {
        return with_header("authorization", "Basic " + ci::crypto::base64_encode(pair));
    };
    const auto sent = Sessions::basic_password(basic("alice:pa:ss"));
    REQUIRE(sent.has_value());
    CHECK(sent->user == "alice");
    CHECK(sent->password == "pa:ss");
    CHECK_FALSE(Sessions::basic_password(basic("no colon")));
    CHECK_FALSE(Sessions::basic_password(with_header("authorization", "Basic !!!")));
    CHECK_FALSE(Sessions::basic_password(with_header("authorization", "Bearer x")));
    const auto right = basic("alice:" + alice_password);
    CHECK_FALSE(sessions.remembered_user(right));
    CHECK_FALSE(sessions.basic_user(basic("alice:wrong")));
    CHECK_FALSE(sessions.remembered_user(basic("alice:wrong")));
    CHECK(sessions.basic_user(right) == "alice");
    CHECK(sessions.remembered_user(right) == "alice");
    // The plain user is checked after a dummy hash too, and still only by its password.
    CHECK(sessions.basic_user(basic("admin:plain-pw")) == "admin");
    CHECK_FALSE(sessions.basic_user(basic("admin:plain-p")));
}
