// The web UI's rendering: escaping on by default, the embedded assets and the page layout.

#include <string>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "web/assets.h"
#include "web/page.h"
#include "web/render.h"

namespace {

bool contains(const std::string& text, std::string_view part) {
    return text.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("web render: a value is HTML-escaped unless the template says {{{ }}}") {
    ci::web::Data data;
    data.set("branch", std::string("<script>alert(1)</script> & \"'"));
    const auto escaped = ci::web::render_text("<td>{{branch}}</td>", data);
    REQUIRE(escaped.has_value());
    // libci's one escape (core/html.h), not kainjow's own (&apos;, which HTML 4 lacks).
    CHECK(*escaped == "<td>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;&#39;</td>");
    CHECK_FALSE(contains(*escaped, "<script>"));
    // The reviewed exception: triple braces keep HTML as it is.
    const auto raw = ci::web::render_text("{{{branch}}}", data);
    REQUIRE(raw.has_value());
    CHECK(contains(*raw, "<script>"));
    // A control character or invalid UTF-8 in a value cannot reach the page as it is.
    data.set("branch", std::string("a\x1b[31m\xff"));
    const auto controls = ci::web::render_text("{{branch}}", data);
    REQUIRE(controls.has_value());
    CHECK(*controls == "a&#x1b;[31m\xEF\xBF\xBD");
}

TEST_CASE("web render: an attribute value cannot be broken out of") {
    ci::web::Data data;
    data.set("name", std::string(R"x(x" onmouseover="alert(1))x"));
    const auto out = ci::web::render_text(R"(<a href="/builders/{{name}}">)", data);
    REQUIRE(out.has_value());
    CHECK(*out == R"x(<a href="/builders/x&quot; onmouseover=&quot;alert(1)">)x");
}

TEST_CASE("web render: unknown and broken templates are errors naming them") {
    const auto unknown = ci::web::render("nope.mustache", ci::web::Data());
    REQUIRE_FALSE(unknown.has_value());
    CHECK(contains(unknown.error().message, "nope.mustache"));
    const auto broken = ci::web::render_text("{{#open}} never closed", ci::web::Data());
    CHECK_FALSE(broken.has_value());
}

TEST_CASE("web assets: embedded with a content type and a content hash") {
    const auto* css = ci::web::find_asset("style.css");
    REQUIRE(css != nullptr);
    CHECK(css->content_type == "text/css; charset=utf-8");
    CHECK(css->hash.size() == 16);
    CHECK(contains(std::string(css->bytes), "body"));
    const auto* js = ci::web::find_asset("app.js");
    REQUIRE(js != nullptr);
    CHECK(js->content_type == "text/javascript; charset=utf-8");
    CHECK(js->hash != css->hash);
    CHECK(ci::web::find_asset("missing.css") == nullptr);
    CHECK(ci::web::static_url("style.css") == "/static/style.css?v=" + std::string(css->hash));
    CHECK(ci::web::static_url("missing.css") == "/static/missing.css");
}

TEST_CASE("web page: the layout escapes the title and the user, and shows forms per viewer") {
    ci::web::Frame frame;
    frame.title = "<b>title</b>";
    frame.nav = ci::web::Nav::Workers;
    frame.path = "/workers?x=<y>";
    ci::web::Data data;
    data.set("status", std::string("404"));
    data.set("message", std::string("<script>alert(1)</script>"));

    SUBCASE("anonymous: a login link back to the page, no logout form") {
        const auto page = ci::web::render_page(frame, "error.mustache", data);
        REQUIRE(page.has_value());
        CHECK(page->starts_with("<!DOCTYPE html>"));
        CHECK(contains(*page, "<title>&lt;b&gt;title&lt;/b&gt; · libci</title>"));
        CHECK(contains(*page, "&lt;script&gt;alert(1)&lt;/script&gt;"));
        CHECK_FALSE(contains(*page, "<script>alert"));
        CHECK(contains(*page, R"(<a href="/workers" aria-current="page">Workers</a>)"));
        CHECK(contains(*page, R"(<a href="/login?next=%2Fworkers%3Fx%3D%3Cy%3E">Log in</a>)"));
        CHECK_FALSE(contains(*page, "/logout"));
        CHECK(contains(*page, ci::web::static_url("style.css")));
        CHECK(contains(*page, ci::web::static_url("app.js")));
    }
    SUBCASE("logged in: the user (escaped) and a logout form with the CSRF token") {
        frame.user = "<alice>";
        frame.csrf_token = "tok\"en";
        const auto page = ci::web::render_page(frame, "error.mustache", data);
        REQUIRE(page.has_value());
        CHECK(contains(*page, "&lt;alice&gt;"));
        CHECK(contains(*page, R"(action="/logout")"));
        CHECK(contains(*page, R"(name="csrf" value="tok&quot;en")"));
        CHECK_FALSE(contains(*page, "Log in"));
    }
}

TEST_CASE("web page: answers carry the security headers and are not cached") {
    const auto response = ci::web::html_response(200, "<p>x</p>");
    CHECK(response.content_type == "text/html; charset=utf-8");
    const auto header = [&](std::string_view name) {
        for (const auto& [key, value] : response.headers) {
            if (key == name) {
                return value;
            }
        }
        return std::string();
    };
    CHECK(contains(header("Content-Security-Policy"), "script-src 'self'"));
    CHECK_FALSE(contains(header("Content-Security-Policy"), "unsafe-inline"));
    CHECK(header("X-Content-Type-Options") == "nosniff");
    CHECK(header("Cache-Control") == "no-store");
}

TEST_CASE("web pages: action forms post to the shared routes with the viewer's CSRF token") {
    ci::web::Frame frame;
    frame.title = "t";
    ci::web::Data request;
    request.set("request_id", std::string("17"));
    ci::web::Data pending;
    pending.set("requests", ci::web::Data(ci::web::List{request}));
    ci::web::Data builder;
    builder.set("name", std::string("tests"));
    builder.set("pending", pending);
    builder.set("force_action", std::string("/builders/tests/force"));
    builder.set("expected_failures", true);
    ci::web::Data worker;
    worker.set("worker_name", std::string("remote/0"));
    worker.set("connected", true);
    ci::web::Data action;
    action.set("action_href", std::string("/workers/remote%2F0/pause"));
    action.set("action_label", std::string("Pause"));
    worker.set("actions", ci::web::Data(ci::web::List{action}));
    ci::web::Data workers;
    workers.set("has_workers", true);
    workers.set("workers", ci::web::Data(ci::web::List{worker}));

    SUBCASE("anonymous: no form at all") {
        const auto b = ci::web::render_page(frame, "builder.mustache", builder);
        REQUIRE(b.has_value());
        CHECK_FALSE(contains(*b, "<form"));
        const auto w = ci::web::render_page(frame, "workers.mustache", workers);
        REQUIRE(w.has_value());
        CHECK_FALSE(contains(*w, "<form"));
    }
    SUBCASE("logged in: cancel, force and worker actions, each with `csrf`") {
        frame.user = "alice";
        frame.csrf_token = "tok";
        const auto b = ci::web::render_page(frame, "builder.mustache", builder);
        REQUIRE(b.has_value());
        CHECK(contains(*b,
                       R"(<form method="post" action="/requests/17/cancel" class="inline">)"
                       R"(<input type="hidden" name="csrf" value="tok" />)"));
        CHECK(contains(*b, R"(<form class="force" method="post" action="/builders/tests/force">)"));
        CHECK(contains(*b, R"(name="expected_failures")"));
        for (const auto* field : {"branch", "revision", "reason", "properties"}) {
            CHECK(contains(*b, fmt::format(R"(name="{}")", field)));
        }
        const auto w = ci::web::render_page(frame, "workers.mustache", workers);
        REQUIRE(w.has_value());
        CHECK(contains(*w,
                       R"(<form method="post" action="/workers/remote%2F0/pause" class="inline">)"
                       R"(<input type="hidden" name="csrf" value="tok" /><button type="submit">)"
                       R"(Pause</button></form>)"));
    }
}
