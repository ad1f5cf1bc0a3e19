// The libcurl implementation of ci::http::Client: easy handles pooled and a share handle whose
// connection cache lets every request to a host reuse its connection; retries with exponential
// backoff and full jitter.

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include <curl/curl.h>
#include <fmt/format.h>
#include <sys/types.h>

#include <ci/core/log.h>
#include <ci/http/client.h>

namespace ci::http {

namespace {

// The URL without its query, for messages: a presigned URL's query holds its signature.
std::string describe(const Request& request) {
    return fmt::format("{} {}://{}{}", request.method, request.scheme, request.host, request.path);
}

bool default_retryable(const Response& response) {
    return response.status == 429 || response.status == 500 || response.status == 502 ||
           response.status == 503 || response.status == 504;
}

// What the read callback streams: a string in memory, or a file opened for this attempt.
struct UploadSource {
    std::string_view memory;
    std::size_t offset = 0;
    std::FILE* file = nullptr;
    std::uint64_t file_left = 0; // bytes of the file still to send
};

std::size_t read_upload(char* buffer, std::size_t size, std::size_t count, void* user) {
    auto* source = static_cast<UploadSource*>(user);
    const std::size_t capacity = size * count;
    if (source->file != nullptr) {
        const auto wanted =
            static_cast<std::size_t>(std::min<std::uint64_t>(capacity, source->file_left));
        const std::size_t n = std::fread(buffer, 1, wanted, source->file);
        if (n == 0 && wanted > 0) {
            // An error, or a file that became shorter than the size curl announced.
            return CURL_READFUNC_ABORT;
        }
        source->file_left -= n;
        return n;
    }
    const std::size_t n = std::min(capacity, source->memory.size() - source->offset);
    std::memcpy(buffer, source->memory.data() + source->offset, n);
    source->offset += n;
    return n;
}

std::size_t write_body(char* data, std::size_t size, std::size_t count, void* user) {
    static_cast<std::string*>(user)->append(data, size * count);
    return size * count;
}

// Collects the header lines of the final response: a new status line (after 100 Continue, or
// a redirect that is not followed) starts the list again.
std::size_t write_header(char* data, std::size_t size, std::size_t count, void* user) {
    auto* headers = static_cast<Headers*>(user);
    std::string_view line(data, size * count);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
        line.remove_suffix(1);
    }
    if (line.starts_with("HTTP/")) {
        headers->clear();
    } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
            value.remove_prefix(1);
        }
        headers->push_back(Header{std::string(line.substr(0, colon)), std::string(value)});
    }
    return size * count;
}

struct SlistDeleter {
    void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

struct FileCloser {
    void operator()(std::FILE* file) const noexcept { std::fclose(file); }
};

bool has_header(const Headers& headers, std::string_view name) {
    return find_header(headers, name) != nullptr;
}

// The request's headers as curl wants them, plus what keeps curl from adding its own: no
// "Expect: 100-continue" round trip, no "Accept: */*", no form Content-Type the request did not
// ask for (a signed request must arrive with exactly the headers that were signed).
Slist header_list(const Request& request) {
    curl_slist* list = nullptr;
    for (const auto& header : request.headers) {
        // "Name;" is curl's spelling of a header with an empty value ("Name:" would remove it).
        const std::string line =
            header.value.empty() ? header.name + ";" : header.name + ": " + header.value;
        list = curl_slist_append(list, line.c_str());
    }
    for (const auto* suppressed : {"Expect", "Accept", "Content-Type"}) {
        if (!has_header(request.headers, suppressed)) {
            list = curl_slist_append(list, (std::string(suppressed) + ":").c_str());
        }
    }
    return Slist(list);
}

class CurlClient final : public Client {
public:
    explicit CurlClient(ClientOptions options) : options_(std::move(options)) {
        if (!options_.retry.retryable) {
            options_.retry.retryable = default_retryable;
        }
        options_.retry.max_attempts = std::max(1, options_.retry.max_attempts);
        share_ = curl_share_init();
        curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, &CurlClient::lock);
        curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, &CurlClient::unlock);
        curl_share_setopt(share_, CURLSHOPT_USERDATA, this);
        curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        std::random_device seed;
        jitter_.seed((static_cast<std::uint64_t>(seed()) << 32U) | seed());
    }

    ~CurlClient() override {
        for (CURL* handle : idle_) {
            curl_easy_cleanup(handle);
        }
        curl_share_cleanup(share_);
    }

    CurlClient(const CurlClient&) = delete;
    CurlClient& operator=(const CurlClient&) = delete;

    Result<Response> send(const Request& request) override {
        const std::string what = describe(request);
        // What the last attempt got: an answer worth retrying, or no answer at all.
        std::optional<Response> last_response;
        std::optional<Error> last_error;
        for (int attempt = 1; attempt <= options_.retry.max_attempts; ++attempt) {
            if (attempt > 1) {
                const auto wait = backoff(attempt - 1);
                log::debug("{}: retrying in {} ms (attempt {} of {})",
                           what,
                           wait.count(),
                           attempt,
                           options_.retry.max_attempts);
                std::this_thread::sleep_for(wait);
            }
            const auto started = std::chrono::steady_clock::now();
            auto outcome = perform(request, what);
            if (outcome && log::level() <= log::Level::Trace) {
                log::trace("{}: HTTP {} in {} us, {} bytes",
                           what,
                           outcome->status,
                           std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now() - started)
                               .count(),
                           outcome->body.size());
            }
            if (!outcome) {
                if (outcome.error().code == ErrorCode::Io) {
                    return outcome; // the body file: trying again will not help
                }
                log::debug("{}", outcome.error().message);
                last_error = outcome.error();
                last_response.reset();
                continue;
            }
            outcome->attempts = attempt;
            if (!options_.retry.retryable(*outcome) || attempt == options_.retry.max_attempts) {
                return outcome;
            }
            log::debug("{}: HTTP {}, worth another attempt", what, outcome->status);
            last_response = std::move(*outcome);
            last_error.reset();
        }
        if (last_response) {
            return std::move(*last_response);
        }
        Error error =
            last_error.value_or(Error{ErrorCode::Internal, what + ": no attempt made", {}});
        if (options_.retry.max_attempts > 1) {
            error.message += fmt::format(" (after {} attempts)", options_.retry.max_attempts);
        }
        return fail(std::move(error));
    }

private:
    static void lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
        static_cast<CurlClient*>(user)->locks_.at(static_cast<std::size_t>(data)).lock();
    }
    static void unlock(CURL*, curl_lock_data data, void* user) {
        static_cast<CurlClient*>(user)->locks_.at(static_cast<std::size_t>(data)).unlock();
    }

    std::chrono::milliseconds backoff(int retry) {
        // Full jitter: uniform in [0, min(max, base * 2^retry)].
        const auto exponent = std::min(retry, 30);
        const auto ceiling = std::min<long long>(options_.retry.max_backoff.count(),
                                                 options_.retry.base_backoff.count() << exponent);
        const std::lock_guard guard(jitter_mutex_);
        std::uniform_int_distribution<long long> pick(0, std::max<long long>(ceiling, 0));
        return std::chrono::milliseconds(pick(jitter_));
    }

    CURL* acquire() {
        {
            const std::lock_guard guard(pool_mutex_);
            if (!idle_.empty()) {
                CURL* handle = idle_.back();
                idle_.pop_back();
                return handle;
            }
        }
        return curl_easy_init();
    }

    void release(CURL* handle) {
        curl_easy_reset(handle);
        const std::lock_guard guard(pool_mutex_);
        idle_.push_back(handle);
    }

    Result<Response> perform(const Request& request, const std::string& what) {
        UploadSource upload;
        std::unique_ptr<std::FILE, FileCloser> file;
        auto upload_size = static_cast<curl_off_t>(request.body.size());
        if (!request.body_file.empty()) {
            file.reset(std::fopen(request.body_file.c_str(), "rbe"));
            if (!file) {
                const int error = errno;
                return fail(
                    ErrorCode::Io,
                    fmt::format(
                        "{}: read body {}: {}", what, request.body_file, std::strerror(error)),
                    error);
            }
            ::fseeko(file.get(), 0, SEEK_END);
            const auto file_size =
                static_cast<std::uint64_t>(std::max<off_t>(::ftello(file.get()), 0));
            const std::uint64_t offset = std::min(request.body_offset, file_size);
            const std::uint64_t left = file_size - offset;
            upload.file_left = request.body_size == 0 ? left : std::min(request.body_size, left);
            if (request.body_size != 0 && upload.file_left < request.body_size) {
                return fail(ErrorCode::Io,
                            fmt::format("{}: read body {}: the file has {} bytes, fewer than the "
                                        "{} from offset {} to send",
                                        what,
                                        request.body_file,
                                        file_size,
                                        request.body_size,
                                        request.body_offset));
            }
            ::fseeko(file.get(), static_cast<off_t>(offset), SEEK_SET);
            upload_size = static_cast<curl_off_t>(upload.file_left);
            upload.file = file.get();
        } else {
            upload.memory = request.body;
        }

        CURL* handle = acquire();
        if (handle == nullptr) {
            return fail(ErrorCode::Internal, what + ": curl_easy_init failed");
        }
        Response response;
        std::array<char, CURL_ERROR_SIZE> error_buffer{};
        const std::string url = request.url();
        const Slist headers = header_list(request);
        curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
        curl_easy_setopt(handle, CURLOPT_SHARE, share_);
        curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_buffer.data());
        curl_easy_setopt(
            handle, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout.count()));
        curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
        curl_easy_setopt(handle, CURLOPT_USERAGENT, options_.user_agent.c_str());
        curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
        if (!options_.ca_file.empty()) {
            curl_easy_setopt(handle, CURLOPT_CAINFO, options_.ca_file.c_str());
        }
        curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers.get());
        curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, &write_body);
        curl_easy_setopt(handle, CURLOPT_WRITEDATA, &response.body);
        curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, &write_header);
        curl_easy_setopt(handle, CURLOPT_HEADERDATA, &response.headers);

        const bool has_body = upload.file != nullptr || !request.body.empty();
        if (request.method == "GET" && !has_body) {
            curl_easy_setopt(handle, CURLOPT_HTTPGET, 1L);
        } else if (request.method == "HEAD") {
            curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
        } else {
            // Every other request sends its body (possibly empty) through the read callback,
            // with its size known, so that curl sends Content-Length, not chunks.
            curl_easy_setopt(handle, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(handle, CURLOPT_READFUNCTION, &read_upload);
            curl_easy_setopt(handle, CURLOPT_READDATA, &upload);
            curl_easy_setopt(handle, CURLOPT_INFILESIZE_LARGE, upload_size);
            curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, request.method.c_str());
        }

        const CURLcode code = curl_easy_perform(handle);
        long status = 0;
        curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
        release(handle);
        if (code != CURLE_OK) {
            const std::string detail = error_buffer[0] != '\0' ? std::string(error_buffer.data())
                                                               : curl_easy_strerror(code);
            const ErrorCode kind = code == CURLE_OPERATION_TIMEDOUT ? ErrorCode::Timeout
                                   : code == CURLE_READ_ERROR       ? ErrorCode::Io
                                                                    : ErrorCode::Transport;
            return fail(kind, fmt::format("{}: {}", what, detail), static_cast<int>(code));
        }
        response.status = static_cast<int>(status);
        return response;
    }

    ClientOptions options_;
    CURLSH* share_ = nullptr;
    std::array<std::mutex, CURL_LOCK_DATA_LAST> locks_;
    std::mutex pool_mutex_;
    std::vector<CURL*> idle_;
    std::mutex jitter_mutex_;
    std::mt19937_64 jitter_;
};

} // namespace

std::unique_ptr<Client> make_client(ClientOptions options) {
    return std::make_unique<CurlClient>(std::move(options));
}

} // namespace ci::http
