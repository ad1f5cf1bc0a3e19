#pragma once

// How the HTTP server reads a request, apart from its sockets (server.cpp): a Beast parser that
// fills a ServerRequest in place, the split of its target into path and query, and the budget of
// memory its body takes. Private to lib/src/http; the fuzz target tests/fuzz/http_request_fuzz.cpp
// drives it with arbitrary bytes.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <utility>

#include <boost/asio/error.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/optional.hpp>

#include <ci/http/server.h>

#include "core/ascii.h"

namespace ci::http {

/// Fills `request.path` and `request.query` from `request.target`: the path percent-decoded,
/// the query's names and values decoded as forms are ("%XX", '+' a space). A target in
/// absolute form ("http://host/p?q", as sent to a proxy) is reduced to its path and query first.
void split_target(ServerRequest& request);

namespace request_parsing {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using boost::system::error_code;

/// The bytes of request bodies a server holds, against ServerOptions::max_body_memory.
class BodyBudget {
public:
    explicit BodyBudget(std::size_t limit) : limit_(limit) {}

    // Takes `bytes` from the budget; false, taking nothing, when they are not there.
    [[nodiscard]] bool take(std::size_t bytes) noexcept {
        std::size_t used = used_.load();
        do {
            if (bytes > limit_ || used > limit_ - bytes) {
                return false;
            }
        } while (!used_.compare_exchange_weak(used, used + bytes));
        return true;
    }
    void give(std::size_t bytes) noexcept { used_ -= bytes; }

private:
    const std::size_t limit_;
    std::atomic<std::size_t> used_{0};
};

/// One connection's part of the BodyBudget: what its current request's body holds.
class BodyShare {
public:
    explicit BodyShare(BodyBudget& budget) : budget_(budget) {}
    BodyShare(const BodyShare&) = delete;
    BodyShare& operator=(const BodyShare&) = delete;
    ~BodyShare() { give_all(); }

    // Makes the share at least `bytes`; false when the budget does not have the difference.
    [[nodiscard]] bool hold(std::size_t bytes) noexcept {
        if (bytes <= held_) {
            return true;
        }
        if (!budget_.take(bytes - held_)) {
            return false;
        }
        held_ = bytes;
        return true;
    }
    void give_all() noexcept { budget_.give(std::exchange(held_, 0)); }

private:
    BodyBudget& budget_;
    std::size_t held_ = 0;
};

/// A Beast parser that fills a ServerRequest directly, reusing its storage: no intermediate
// beast::http::message, no per-field allocation for names and values that fit the strings'
// existing capacity.
class RequestParser final : public bhttp::basic_parser<true> {
public:
    RequestParser(ServerRequest& request, BodyShare& share) : request_(request), share_(share) {}

    [[nodiscard]] bool expects_continue() const noexcept { return expects_continue_; }
    // True when the body was refused because the server's bodies would have passed their budget.
    [[nodiscard]] bool over_budget() const noexcept { return over_budget_; }
    [[nodiscard]] int http_version() const noexcept { return version_; }

private:
    void on_request_impl(bhttp::verb /*method*/,
                         beast::string_view method_text,
                         beast::string_view target,
                         int version,
                         error_code& /*ec*/) override {
        request_.method.assign(method_text.data(), method_text.size());
        request_.target.assign(target.data(), target.size());
        version_ = version;
    }

    void on_response_impl(int /*code*/,
                          beast::string_view /*reason*/,
                          int /*version*/,
                          error_code& /*ec*/) override {}

    void on_field_impl(bhttp::field name,
                       beast::string_view name_text,
                       beast::string_view value,
                       error_code& /*ec*/) override {
        auto& headers = request_.headers;
        if (used_headers_ == headers.size()) {
            headers.emplace_back();
        }
        auto& [field_name, field_value] = headers[used_headers_++];
        field_name.resize(name_text.size());
        std::transform(name_text.begin(), name_text.end(), field_name.begin(), [](char c) {
            return ascii_lower(c);
        });
        field_value.assign(value.data(), value.size());
        if (name == bhttp::field::expect && beast::iequals(value, "100-continue")) {
            expects_continue_ = true;
        }
    }

    void on_header_impl(error_code& /*ec*/) override { request_.headers.resize(used_headers_); }

    void on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                           error_code& ec) override {
        // The parser checked the length against the body limit already; the connection took it
        // from the budget when the header arrived (this only confirms it).
        if (content_length) {
            append_allowed(static_cast<std::size_t>(*content_length), ec);
            if (!ec) {
                request_.body.reserve(static_cast<std::size_t>(*content_length));
            }
        }
    }

    std::size_t on_body_impl(beast::string_view body, error_code& ec) override {
        if (!append_allowed(request_.body.size() + body.size(), ec)) {
            return 0;
        }
        request_.body.append(body.data(), body.size());
        return body.size();
    }

    void on_chunk_header_impl(std::uint64_t /*size*/,
                              beast::string_view /*extensions*/,
                              error_code& /*ec*/) override {}

    std::size_t
    on_chunk_body_impl(std::uint64_t /*remain*/, beast::string_view body, error_code& ec) override {
        if (!append_allowed(request_.body.size() + body.size(), ec)) {
            return 0;
        }
        request_.body.append(body.data(), body.size());
        return body.size();
    }

    void on_finish_impl(error_code& /*ec*/) override {}

    // Whether the body may grow to `size` bytes within the server's budget; sets `ec` if not.
    bool append_allowed(std::size_t size, error_code& ec) {
        if (share_.hold(size)) {
            return true;
        }
        over_budget_ = true;
        ec = net::error::no_buffer_space;
        return false;
    }

    ServerRequest& request_;
    BodyShare& share_;
    std::size_t used_headers_ = 0;
    int version_ = 11;
    bool expects_continue_ = false;
    bool over_budget_ = false;
};

} // namespace request_parsing

using request_parsing::BodyBudget;
using request_parsing::BodyShare;
using request_parsing::RequestParser;

} // namespace ci::http
