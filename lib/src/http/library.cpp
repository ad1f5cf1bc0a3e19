#include "http/library.h"

#include <cstdlib>

#include <curl/curl.h>

namespace ci::http::detail {

std::string curl_version() {
    const curl_version_info_data* info = curl_version_info(CURLVERSION_NOW);
    return info != nullptr && info->version != nullptr ? info->version : "unknown";
}

Status global_init() {
    const CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (code != CURLE_OK) {
        return fail(ErrorCode::Internal,
                    std::string("initialise libcurl: ") + curl_easy_strerror(code),
                    static_cast<int>(code));
    }
    std::atexit(curl_global_cleanup);
    return {};
}

} // namespace ci::http::detail
