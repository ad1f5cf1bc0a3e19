#pragma once

#include <string>

#include <ci/core/error.h>

namespace ci::http::detail {

/// The loaded libcurl's version, e.g. "7.88.1".
[[nodiscard]] std::string curl_version();

/// curl_global_init(CURL_GLOBAL_DEFAULT); libcurl's cleanup runs at exit.
[[nodiscard]] Status global_init();

} // namespace ci::http::detail
