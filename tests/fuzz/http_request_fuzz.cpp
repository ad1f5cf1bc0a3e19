// The HTTP server's request parsing (http/request_parser.h: Beast's parser filling a
// ServerRequest, the split of the target into path and query, the body budget) and the master's
// checks of a request's header (router.h: route match, body limit, CSRF, failure limiter), on
// any bytes, as one connection would deliver them.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

#include <boost/asio/buffer.hpp>

#include "http/request_parser.h"
#include "master/guards.h"
#include "master/router.h"

namespace {

ci::master::Router& router() {
    static ci::master::Router* r = [] {
        auto* made = new ci::master::Router(
            [](const ci::http::ServerRequest& request) -> ci::master::Verdict {
                if (request.header("authorization") == "Basic YTpi") {
                    return ci::master::Verdict::pass();
                }
                ci::http::ServerResponse refused;
                refused.status = 401;
                return ci::master::Verdict::refuse(std::move(refused));
            });
        const auto noop =
            [](ci::http::ServerRequest&, const ci::master::PathParams&, const ci::http::Reply&) {};
        made->add("GET", "/api/v1/builds/{id}/steps/{n}/log", noop);
        made->add("POST", "/api/v1/builders/{name}/force", noop, true, "force");
        made->add("POST",
                  "/change_hook/github",
                  noop,
                  ci::master::Guard::Signed,
                  "hook",
                  ci::master::webhook_max_body);
        return made;
    }();
    return *r;
}

} // namespace

// libFuzzer calls it with each input; the name is libFuzzer's, hence the NOLINT.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static ci::http::BodyBudget budget(std::size_t{1} << 20);
    ci::http::ServerRequest request;
    ci::http::BodyShare share(budget);
    ci::http::RequestParser parser(request, share);
    parser.header_limit(16 * 1024);
    parser.body_limit(std::uint64_t{1} << 20);
    parser.eager(false);
    std::string_view input(reinterpret_cast<const char*>(data), size);
    // Fed in pieces, as reads deliver them: the header first, then the rest eagerly.
    bool header_checked = false;
    while (!input.empty() && !parser.is_done()) {
        boost::system::error_code ec;
        const auto used = parser.put(boost::asio::buffer(input.data(), input.size()), ec);
        input.remove_prefix(used);
        if (ec == boost::beast::http::error::need_more) {
            break;
        }
        if (ec) {
            return 0;
        }
        if (parser.is_header_done() && !header_checked) {
            header_checked = true;
            ci::http::split_target(request);
            request.remote_address = "192.0.2.1";
            std::size_t max_body = ci::master::webhook_max_body;
            if (router().check_header(request, max_body)) {
                return 0;
            }
            (void)ci::master::path_segments(request.path);
            parser.eager(true);
        }
        if (used == 0) {
            break;
        }
    }
    return 0;
}
