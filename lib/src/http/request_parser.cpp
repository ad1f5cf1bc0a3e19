#include "http/request_parser.h"

#include <map>
#include <string>
#include <string_view>

#include <ci/http/request.h>

namespace ci::http {

namespace {

// Names and values in the form encoding every browser and curl --data-urlencode use: %XX
// decoded, '+' a space.
void parse_query(std::string_view query, std::map<std::string, std::string>& out) {
    while (!query.empty()) {
        const auto end = query.find('&');
        const auto pair = query.substr(0, end);
        query = end == std::string_view::npos ? std::string_view() : query.substr(end + 1);
        if (pair.empty()) {
            continue;
        }
        const auto equals = pair.find('=');
        std::string name;
        append_uri_decoded(name, pair.substr(0, equals), true);
        std::string value;
        if (equals != std::string_view::npos) {
            append_uri_decoded(value, pair.substr(equals + 1), true);
        }
        out.insert_or_assign(std::move(name), std::move(value));
    }
}

} // namespace

void split_target(ServerRequest& request) {
    std::string_view target = request.target;
    if (!target.empty() && target.front() != '/') {
        if (const auto scheme_end = target.find("://"); scheme_end != std::string_view::npos) {
            const auto path_start = target.find_first_of("/?", scheme_end + 3);
            target = path_start == std::string_view::npos ? std::string_view("/")
                                                          : target.substr(path_start);
        }
    }
    const auto question = target.find('?');
    request.path.clear();
    append_uri_decoded(request.path, target.substr(0, question), false);
    if (!request.query.empty()) {
        request.query.clear();
    }
    if (question != std::string_view::npos) {
        parse_query(target.substr(question + 1), request.query);
    }
}

} // namespace ci::http
