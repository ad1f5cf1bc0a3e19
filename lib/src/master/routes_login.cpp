// The web UI's logins: GET /login (the page), POST /login (a session cookie), POST /logout; what
// every form route does first (with_form: the form, its csrf token); and the router's checks
// over the sessions (the API's HTTP basic, auth.view: login, a form's session).

#include <fmt/format.h>

#include <ci/core/crypto.h>
#include <ci/core/log.h>
#include <ci/http/request.h>

#include "master/forms.h"
#include "master/json.h"
#include "master/services.h"
#include "web/page.h"

namespace ci::master {

namespace {

// The login form; on a master without users (no `auth` section), no form (it could not
// succeed) but what to add to the config.
http::ServerResponse login_page(const web::Frame& frame,
                                bool has_users,
                                int status,
                                std::string_view next,
                                std::string_view error) {
    web::Data data;
    data.set("next", std::string(next));
    data.set("no_users", !has_users);
    if (!error.empty()) {
        data.set("error", std::string(error));
    }
    auto response = web::page_response(frame, "login.mustache", std::move(data));
    if (response.status == 200) {
        response.status = status;
    }
    return response;
}

// The login page answering a login that is not checked now (`refused`: the router's 429 or
// 503), with its status and Retry-After.
http::ServerResponse login_refused(const web::Frame& frame,
                                   std::string_view next,
                                   const http::ServerResponse& refused,
                                   std::string_view message) {
    auto page = login_page(frame, true, refused.status, next, message);
    for (const auto& header : refused.headers) {
        if (header.first == "Retry-After") {
            page.headers.push_back(header);
        }
    }
    return page;
}

// 303 to the login page, which comes back to `next` once logged in.
http::ServerResponse to_login(std::string_view next) {
    return see_other("/login?next=" + http::uri_encode(local_path(next)));
}

// A challenge for HTTP basic (RFC 9110 requires one with a 401).
http::ServerResponse basic_challenge(std::string_view message) {
    auto refused = error_response(401, message);
    refused.headers.emplace_back("WWW-Authenticate", R"(Basic realm="libci")");
    return refused;
}

// What the router does with a request's HTTP basic credentials: through when they were right
// lately, refused when absent or malformed, else checked (a hash) on the router's pool.
Verdict basic_verdict(const Sessions& sessions, const http::ServerRequest& request) {
    if (sessions.remembered_user(request)) {
        return Verdict::pass();
    }
    static constexpr std::string_view wanted =
        "this needs the user and password of a user of the config's auth (HTTP basic)";
    auto sent = Sessions::basic_password(request);
    if (!sent) {
        return Verdict::refuse(basic_challenge(wanted));
    }
    Verdict verdict;
    verdict.user = std::move(sent->user);
    verdict.slow =
        [&sessions](const http::ServerRequest& checked) -> std::optional<http::ServerResponse> {
        if (sessions.basic_user(checked)) {
            return std::nullopt;
        }
        return basic_challenge("wrong user or password (HTTP basic)");
    };
    return verdict;
}

// POST /login: the form's password is checked on the router's hash pool; the answer follows
// from a server thread.
void post_login(Services& s, Router& router, http::ServerRequest& request, http::Reply reply) {
    const auto frame = page_frame(s, request, "Log in");
    if (!s.sessions.enabled()) {
        reply.send(form_error(frame, 403, "the config has no auth: nobody can log in"));
        return;
    }
    auto form = parse_form(request.body);
    if (!form) {
        reply.send(form_error(frame, 400, form.error().message));
        return;
    }
    auto next = local_path(form->get("next"));
    auto sent = SentPassword{std::string(form->get("user")), std::string(form->get("password"))};
    if (auto refused = router.refuse_guess(request.remote_address, sent.user)) {
        reply.send(login_refused(
            frame, next, *refused, "Too many wrong passwords: wait a little, then try again."));
        return;
    }
    auto claim = router.claim_check(request.remote_address, sent.user);
    if (!claim) {
        reply.send(login_refused(frame,
                                 next,
                                 claim.error(),
                                 claim.error().status == 429
                                     ? "This user's password is being checked already: wait a "
                                       "moment, then try again."
                                     : "Too many logins are being checked now: try again in a "
                                       "moment."));
        return;
    }
    auto owned = std::make_shared<http::ServerRequest>(std::move(request));
    auto answer = [&s,
                   &router,
                   owned,
                   reply,
                   next,
                   claim = std::move(*claim),
                   sent = std::move(sent)]() mutable {
        const auto user = s.sessions.check_password(sent.user, sent.password);
        router.count_password(owned->remote_address, sent.user, user.has_value());
        claim.reset(); // counted: the pair's next check may run
        reply.defer([&s, owned, reply, next = std::move(next), user]() mutable {
            const auto& asked = *owned;
            const auto login_frame = page_frame(s, asked, "Log in");
            if (!user) {
                reply.send(login_page(login_frame, true, 403, next, "Wrong user or password."));
                return;
            }
            // A session this browser had (another user's, or its own) ends with the new login.
            s.sessions.close(asked);
            auto opened = s.sessions.open(*user);
            if (!opened) {
                reply.send(form_error(login_frame, 500, opened.error().message));
                return;
            }
            log::info(
                "{} logged in (web UI, from {})", log::field(*user, 64), asked.remote_address);
            auto response = see_other(next);
            response.headers.emplace_back("Set-Cookie", s.sessions.set_cookie(asked, opened->id));
            reply.send(std::move(response));
        });
    };
    if (!router.hashes().post(std::move(answer))) {
        reply.send(login_refused(page_frame(s, *owned, "Log in"),
                                 next,
                                 hashes_busy(),
                                 "Too many logins are being checked now: try again in a moment."));
    }
}

} // namespace

std::string api_user(const Services& services, const http::ServerRequest& request) {
    return services.sessions.basic_user(request).value_or("(nobody)");
}

web::Frame page_frame(const Services& services,
                      const http::ServerRequest& request,
                      std::string title,
                      web::Nav nav) {
    const auto viewer = services.sessions.viewer(request);
    web::Frame frame;
    frame.title = std::move(title);
    frame.nav = nav;
    frame.user = viewer.user;
    frame.csrf_token = viewer.csrf_token;
    frame.path = request.target;
    return frame;
}

http::ServerResponse form_error(const web::Frame& frame, int status, std::string_view message) {
    return web::error_page(frame, status, message);
}

void with_form(Services& services,
               const http::ServerRequest& request,
               http::Reply& reply,
               std::initializer_list<std::string_view> repeatable,
               const std::function<void(const Form& form, const Viewer& viewer)>& then) {
    const auto viewer = services.sessions.viewer(request);
    if (!viewer.logged_in()) {
        reply.send(to_login(came_from(request, "/")));
        return;
    }
    auto form = parse_form(request.body, repeatable);
    if (!form) {
        reply.send(form_error(page_frame(services, request, "Refused"), 400, form.error().message));
        return;
    }
    // The token of this session, which a page of another site cannot read.
    if (!crypto::constant_time_equal(form->get("csrf"), viewer.csrf_token)) {
        log::warn("a form of {} to {} was refused: its csrf token is {} (from {})",
                  log::field(viewer.user, 64),
                  log::field(request.path),
                  form->has("csrf") ? "wrong" : "missing",
                  request.remote_address);
        reply.send(
            form_error(page_frame(services, request, "Refused"),
                       403,
                       "the form's csrf token is missing or wrong: reload the page and try again"));
        return;
    }
    then(*form, viewer);
}

Router::AuthCheck api_check(const config::Config& config, const Sessions& sessions) {
    return [&config, &sessions](const http::ServerRequest& request) -> Verdict {
        if (!config.auth) {
            return Verdict::refuse(
                error_response(403, "the config has no auth: the API is read-only"));
        }
        return basic_verdict(sessions, request);
    };
}

Router::AuthCheck view_check(const config::Config& config, const Sessions& sessions) {
    if (!config.auth || config.auth->view != config::AuthView::Login) {
        return {};
    }
    return [&sessions](const http::ServerRequest& request) -> Verdict {
        if (!request.header("authorization").empty()) {
            return basic_verdict(sessions, request);
        }
        if (sessions.viewer(request).logged_in()) {
            return Verdict::pass();
        }
        if (wants_page(request)) {
            return Verdict::refuse(to_login(request.target));
        }
        return Verdict::refuse(
            basic_challenge("auth.view is login: log in, or send a user and password of "
                            "the config's auth (HTTP basic)"));
    };
}

Router::Check form_check(const config::Config& config, const Sessions& sessions) {
    if (!config.auth) {
        return {};
    }
    return [&sessions](const http::ServerRequest& request) -> std::optional<http::ServerResponse> {
        if (sessions.viewer(request).logged_in()) {
            return std::nullopt;
        }
        return to_login(came_from(request, "/"));
    };
}

void add_login_routes(Router& router, Services& services) {
    router.add(
        "GET",
        "/login",
        [&services](http::ServerRequest& request, const PathParams&, http::Reply reply) {
            const auto found = request.query.find("next");
            reply.send(login_page(page_frame(services, request, "Log in"),
                                  services.sessions.enabled(),
                                  200,
                                  local_path(found == request.query.end() ? "/" : found->second),
                                  {}));
        },
        Guard::Public,
        "/login (the web UI's login page)");
    router.add(
        "POST",
        "/login",
        [&services, &router](http::ServerRequest& request, const PathParams&, http::Reply reply) {
            post_login(services, router, request, std::move(reply));
        },
        Guard::Login,
        "/login (POST user, password, next: a session cookie)");
    router.add(
        "POST",
        "/logout",
        [&services](http::ServerRequest& request, const PathParams&, http::Reply reply) {
            with_form(services, request, reply, {}, [&](const Form&, const Viewer& viewer) {
                services.sessions.close(request);
                log::info("{} logged out (web UI)", log::field(viewer.user, 64));
                auto response = see_other("/");
                response.headers.emplace_back("Set-Cookie",
                                              services.sessions.set_cookie(request, {}));
                reply.send(std::move(response));
            });
        },
        Guard::Form,
        "/logout (POST, a web UI form)");
}

} // namespace ci::master
