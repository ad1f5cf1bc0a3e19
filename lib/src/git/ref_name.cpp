#include "git/ref_name.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/utf8.h"

namespace ci::git {

namespace {

// Printable for a message: at most 64 bytes, control characters escaped.
std::string quoted(std::string_view ref) {
    std::string out = "\"";
    for (const char c : ref.substr(0, 64)) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte == 0x7f || c == '"' || c == '\\') {
            out += fmt::format("\\x{:02x}", byte);
        } else {
            out += c;
        }
    }
    out += ref.size() > 64 ? fmt::format("\"... ({} bytes)", ref.size()) : "\"";
    return out;
}

// Why `component` (between slashes) is refused, or nullptr.
const char* component_problem(std::string_view component) {
    if (component.empty()) {
        return "has an empty component (a leading, trailing or doubled '/')";
    }
    if (component.front() == '.') {
        return "has a component that begins with '.'";
    }
    if (component.ends_with(".lock")) {
        return "has a component that ends with \".lock\"";
    }
    if (component.size() > max_ref_component_length) {
        return "has a component longer than 255 bytes";
    }
    return nullptr;
}

// Why the byte `c` is refused anywhere in a ref, or nullptr.
const char* byte_problem(char c) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
        return "contains a control character";
    }
    switch (c) {
    case ' ':
        return "contains a space";
    case '~':
    case '^':
    case ':':
    case '?':
    case '*':
    case '[':
    case '\\':
        return "contains one of ~ ^ : ? * [ \\";
    default:
        return nullptr;
    }
}

const char* problem(std::string_view ref) {
    if (ref.empty()) {
        return "is empty";
    }
    if (ref.size() > max_ref_length) {
        return "is longer than 1024 bytes";
    }
    if (ref == "@") {
        return "is \"@\"";
    }
    if (ref.find('/') == std::string_view::npos) {
        return "has no '/'";
    }
    if (ref.find("..") != std::string_view::npos) {
        return "contains \"..\"";
    }
    if (ref.find("@{") != std::string_view::npos) {
        return "contains \"@{\"";
    }
    if (ref.back() == '.') {
        return "ends with '.'";
    }
    // git takes any bytes; libci does not, since a branch's name goes out in JSON and logs.
    if (first_invalid_utf8(ref)) {
        return "is not valid UTF-8";
    }
    for (const char c : ref) {
        if (const char* why = byte_problem(c)) {
            return why;
        }
    }
    std::size_t start = 0;
    for (;;) {
        const auto slash = ref.find('/', start);
        if (const char* why = component_problem(ref.substr(start, slash - start))) {
            return why;
        }
        if (slash == std::string_view::npos) {
            return nullptr;
        }
        start = slash + 1;
    }
}

} // namespace

Status check_ref_format(std::string_view ref) {
    if (const char* why = problem(ref)) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("invalid ref {}: it {}", quoted(ref), why));
    }
    return {};
}

bool is_commit_id(std::string_view id) {
    return !id.empty() && id.size() <= 64 && std::ranges::all_of(id, [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    });
}

} // namespace ci::git
