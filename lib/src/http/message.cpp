#include "ci/http/message.h"

#include <fmt/format.h>

namespace ci::http {

Result<Request> parse_request_message(std::string_view text) {
    Request request;
    std::size_t line_number = 0;
    const auto next_line = [&](std::string_view& line) {
        if (text.empty()) {
            return false;
        }
        const std::size_t end = text.find('\n');
        line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
        if (line.ends_with('\r')) {
            line.remove_suffix(1);
        }
        ++line_number;
        return true;
    };

    std::string_view line;
    if (!next_line(line)) {
        return fail(ErrorCode::InvalidArgument, "parse request: empty message");
    }
    const std::size_t first_space = line.find(' ');
    const std::size_t last_space = line.rfind(' ');
    if (first_space == std::string_view::npos || first_space == last_space ||
        !line.substr(last_space + 1).starts_with("HTTP/")) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("parse request: line 1: expected \"METHOD TARGET HTTP/1.1\", got "
                                "\"{}\"",
                                line));
    }
    request.method = std::string(line.substr(0, first_space));
    const std::string_view target = line.substr(first_space + 1, last_space - first_space - 1);
    const std::size_t question = target.find('?');
    request.path = std::string(target.substr(0, question));
    if (question != std::string_view::npos) {
        request.query = std::string(target.substr(question + 1));
    }

    while (next_line(line)) {
        if (line.empty()) {
            break;
        }
        if (line.front() == ' ' || line.front() == '\t') {
            if (request.headers.empty()) {
                return fail(ErrorCode::InvalidArgument,
                            fmt::format("parse request: line {}: continuation line before any "
                                        "header",
                                        line_number));
            }
            request.headers.back().value += '\n';
            request.headers.back().value += line;
            continue;
        }
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format(R"(parse request: line {}: expected "Name:value", got "{}")",
                                    line_number,
                                    line));
        }
        request.headers.push_back(
            Header{std::string(line.substr(0, colon)), std::string(line.substr(colon + 1))});
    }
    request.body = std::string(text);
    if (const std::string* host = find_header(request.headers, "host")) {
        request.host = *host;
    }
    return request;
}

std::string format_request_message(const Request& request) {
    std::string out = request.method + " " + request.path;
    if (!request.query.empty()) {
        out += '?';
        out += request.query;
    }
    out += " HTTP/1.1\n";
    for (const auto& header : request.headers) {
        out += header.name;
        out += ':';
        out += header.value;
        out += '\n';
    }
    out += '\n';
    out += request.body;
    return out;
}

} // namespace ci::http
