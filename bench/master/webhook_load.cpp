// Load generator for the master's webhook ingest, and idle workers for its worker port.
//
// Webhook mode: keep-alive HTTP/1.1 connections, one request in flight on each, every request a
// distinct GitHub push (POST, application/json, X-GitHub-Event: push, a unique X-GitHub-Delivery,
// unique before/after SHAs, refs/heads/feature-<k> over --branches branches), signed as GitHub
// signs when --secret-file is given (X-Hub-Signature-256: sha256=..., plus the legacy
// X-Hub-Signature: sha1=... that GitHub still sends and that Buildbot 3.7 checks). Prints one
// JSON line: counts, statuses, elapsed time, requests/s, latency percentiles.
//
//   webhook_load --url http://127.0.0.1:PORT/change_hook/github --concurrency 16 --duration 5
//                [--requests N] [--secret-file FILE] [--repo-url URL] [--threads T]
//                [--signature both|sha256|sha1] [--branches 1000] [--timeout 60] [--quickack]
//
// --quickack (diagnosis only): acknowledge every received segment at once (TCP_QUICKACK), so a
// server that writes one response in several small segments without TCP_NODELAY is not held
// back by this client's delayed ACKs (Nagle's algorithm meeting delayed ACK: about 40 ms).
//
// Worker mode: N idle workers on the master's worker port, speaking the worker protocol
// (newline-delimited JSON: challenge, hello with an HMAC-SHA256 proof of the nonce under the
// worker's password, welcome, then a heartbeat every heartbeat_seconds). Prints a JSON line when
// all N are welcomed and another when it stops (SIGTERM, SIGINT or --duration).
//
//   webhook_load --workers 1000 --worker-port PORT --worker-secret-file FILE
//                [--worker-class bench] [--worker-host 127.0.0.1] [--duration S]
//
// With --worker-fingerprint sha256:HEX the workers speak TLS 1.3 (OpenSSL, non-blocking on the
// same epoll loop) as ci-worker does: the master's certificate pinned, the proof bound to the
// connection's exporter value (RFC 5705), the session kept for resumption. A worker that loses
// its connection reconnects after 1 s; each time all N are welcomed again, a JSON line says how
// long it took and how many handshakes were full and how many resumed (a master restart).
//
// FILE holds one password per line: line i (0-based) is the password of worker CLASS/i.
// Secrets are read from files only, never from the command line.
//
// Plain POSIX sockets and epoll: one thread (by default) drives every connection, so the server
// under test keeps the machine's other core. HMACs use OpenSSL, independently of libci.

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <memory>
#include <netdb.h>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

namespace {

using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t stop_signal = 0;

void on_signal(int) {
    stop_signal = 1;
}

[[noreturn]] void die(const std::string& message) {
    std::fprintf(stderr, "webhook_load: %s\n", message.c_str());
    std::exit(2);
}

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// `text` escaped for use inside a JSON string: RapidJSON's Writer escapes, and the quotes it
// writes around the string are dropped (the payloads below are templates with quotes of their
// own).
std::string json_escape(std::string_view text) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
    return {buffer.GetString() + 1, buffer.GetSize() - 2};
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        die("cannot read " + path);
    }
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string trim(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
        text.pop_back();
    }
    return text;
}

constexpr std::string_view hex_digits = "0123456789abcdef";

void append_hex(std::string& out, const unsigned char* data, std::size_t size) {
    for (std::size_t i = 0; i < size; ++i) {
        out += hex_digits[data[i] >> 4];
        out += hex_digits[data[i] & 15];
    }
}

std::string hex(std::string_view bytes) {
    std::string out;
    append_hex(out, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
    return out;
}

void append_hex64(std::string& out, std::uint64_t value, int digits) {
    for (int i = digits - 1; i >= 0; --i) {
        out += hex_digits[(value >> (4 * i)) & 15];
    }
}

std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// A 40-hex SHA unique per (seed, n): splitmix64 is a bijection, so the first 16 digits differ.
void append_sha(std::string& out, std::uint64_t seed, std::uint64_t n) {
    std::uint64_t first = splitmix64(seed + n);
    append_hex64(out, first, 16);
    append_hex64(out, splitmix64(first), 16);
    append_hex64(out, splitmix64(first ^ 0x5555), 8);
}

// HMAC with a key set once; each mac() duplicates the keyed context (no per-call fetch or key
// schedule).
class Hmac {
public:
    Hmac(const std::string& key, const char* digest) {
        mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
        if (mac_ == nullptr) {
            die("OpenSSL has no HMAC");
        }
        base_ = EVP_MAC_CTX_new(mac_);
        std::array<OSSL_PARAM, 2> params = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest), 0),
            OSSL_PARAM_construct_end()};
        if (base_ == nullptr || EVP_MAC_init(base_,
                                             reinterpret_cast<const unsigned char*>(key.data()),
                                             key.size(),
                                             params.data()) != 1) {
            die(std::string("HMAC init failed for ") + digest);
        }
    }
    Hmac(const Hmac&) = delete;
    Hmac& operator=(const Hmac&) = delete;
    ~Hmac() {
        EVP_MAC_CTX_free(base_);
        EVP_MAC_free(mac_);
    }

    void append_hex_mac(std::string& out, std::string_view message) const {
        EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(base_);
        std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
        std::size_t size = 0;
        if (ctx == nullptr ||
            EVP_MAC_update(
                ctx, reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
            EVP_MAC_final(ctx, digest.data(), &size, digest.size()) != 1) {
            die("HMAC failed");
        }
        EVP_MAC_CTX_free(ctx);
        append_hex(out, digest.data(), size);
    }

private:
    EVP_MAC* mac_ = nullptr;
    EVP_MAC_CTX* base_ = nullptr;
};

// The key a worker's proof is made with (protocol 8): the hex SHA-256 of its secret, so that a
// master may store keys and never secrets.
std::string secret_key(const std::string& secret) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    if (EVP_Digest(secret.data(), secret.size(), digest.data(), &size, EVP_sha256(), nullptr) !=
        1) {
        die("SHA-256 failed");
    }
    std::string out;
    append_hex(out, digest.data(), size);
    return out;
}

std::string hmac_sha256_hex(const std::string& key, std::string_view message) {
    Hmac hmac(key, "SHA256");
    std::string out;
    hmac.append_hex_mac(out, message);
    return out;
}

struct Endpoint {
    std::string host;
    int port = 80;
    std::string path = "/";
    sockaddr_storage address{};
    socklen_t address_size = 0;
};

void resolve(Endpoint& endpoint) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* result = nullptr;
    const std::string port = std::to_string(endpoint.port);
    if (int rc = getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &result); rc != 0) {
        die("cannot resolve " + endpoint.host + ": " + gai_strerror(rc));
    }
    std::memcpy(&endpoint.address, result->ai_addr, result->ai_addrlen);
    endpoint.address_size = result->ai_addrlen;
    freeaddrinfo(result);
}

Endpoint parse_url(const std::string& url) {
    constexpr std::string_view scheme = "http://";
    if (!url.starts_with(scheme)) {
        die("--url must start with http:// (got " + url + ")");
    }
    std::string rest = url.substr(scheme.size());
    Endpoint endpoint;
    const auto slash = rest.find('/');
    std::string authority = rest.substr(0, slash);
    endpoint.path = slash == std::string::npos ? "/" : rest.substr(slash);
    const auto colon = authority.rfind(':');
    if (colon != std::string::npos && authority.find(']', colon) == std::string::npos) {
        endpoint.host = authority.substr(0, colon);
        endpoint.port = std::atoi(authority.c_str() + colon + 1);
    } else {
        endpoint.host = authority;
    }
    if (endpoint.host.size() > 2 && endpoint.host.front() == '[') {
        endpoint.host = endpoint.host.substr(1, endpoint.host.size() - 2);
    }
    resolve(endpoint);
    return endpoint;
}

// Starts a non-blocking connect; returns the socket or -1 (errno set).
int start_connect(const Endpoint& endpoint) {
    int fd = socket(endpoint.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&endpoint.address), endpoint.address_size) <
            0 &&
        errno != EINPROGRESS) {
        const int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int socket_error(int fd) {
    int error = 0;
    socklen_t size = sizeof error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) < 0) {
        return errno;
    }
    return error;
}

void raise_fd_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

// ---------------------------------------------------------------------------------------------
// Options

struct Options {
    std::string url;
    int concurrency = 1;
    double duration = 0;
    long long requests = 0;
    std::string secret_file;
    std::string repo_url = "https://github.com/ClusterHQ/flocker.git";
    std::string signature = "both";
    int threads = 1;
    int branches = 1000;
    double timeout = 60;
    std::uint64_t seed = 0;
    bool quickack = false;
    // Worker mode.
    int workers = 0;
    std::string worker_host = "127.0.0.1";
    int worker_port = 0;
    std::string worker_secret_file;
    std::string worker_class = "bench";
    std::string worker_fingerprint; // TLS when set: "sha256:" + 64 lowercase hex digits
};

void usage() {
    std::fputs("usage: webhook_load --url http://HOST:PORT/change_hook/github [--concurrency N]\n"
               "                    (--duration S | --requests N) [--secret-file FILE]\n"
               "                    [--repo-url URL] [--signature both|sha256|sha1] [--threads T]\n"
               "                    [--branches B] [--timeout S] [--seed N] [--quickack]\n"
               "       webhook_load --workers N --worker-port PORT --worker-secret-file FILE\n"
               "                    [--worker-class CLASS] [--worker-host HOST] [--duration S]\n"
               "                    [--worker-fingerprint sha256:HEX]\n",
               stderr);
}

Options parse_options(int argc, char** argv) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        std::string value;
        if (arg == "-h" || arg == "--help") {
            usage();
            std::exit(0);
        }
        if (arg == "--quickack") {
            options.quickack = true;
            continue;
        }
        if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string::npos) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            usage();
            die("missing value for " + arg);
        }
        auto number = [&](auto& target) {
            auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), target);
            if (ec != std::errc{} || end != value.data() + value.size()) {
                die(std::string("bad number for ").append(arg).append(": ").append(value));
            }
        };
        if (arg == "--url") {
            options.url = value;
        } else if (arg == "--concurrency" || arg == "-c") {
            number(options.concurrency);
        } else if (arg == "--duration" || arg == "-d") {
            options.duration = std::atof(value.c_str());
        } else if (arg == "--requests" || arg == "-n") {
            number(options.requests);
        } else if (arg == "--secret-file") {
            options.secret_file = value;
        } else if (arg == "--repo-url") {
            options.repo_url = value;
        } else if (arg == "--signature") {
            options.signature = value;
        } else if (arg == "--threads") {
            number(options.threads);
        } else if (arg == "--branches") {
            number(options.branches);
        } else if (arg == "--timeout") {
            options.timeout = std::atof(value.c_str());
        } else if (arg == "--seed") {
            number(options.seed);
        } else if (arg == "--workers") {
            number(options.workers);
        } else if (arg == "--worker-host") {
            options.worker_host = value;
        } else if (arg == "--worker-port") {
            number(options.worker_port);
        } else if (arg == "--worker-secret-file") {
            options.worker_secret_file = value;
        } else if (arg == "--worker-class") {
            options.worker_class = value;
        } else if (arg == "--worker-fingerprint") {
            options.worker_fingerprint = value;
        } else {
            usage();
            die("unknown option " + arg);
        }
    }
    return options;
}

// ---------------------------------------------------------------------------------------------
// Webhook mode

struct Repository {
    std::string name, full_name, html_url, clone_url, ssh_url, git_url, api_url, owner;
};

Repository describe_repository(const std::string& url) {
    Repository repo;
    std::string host = "github.com";
    std::string path = url;
    if (const auto scheme = url.find("://"); scheme != std::string::npos) {
        const auto slash = url.find('/', scheme + 3);
        host = url.substr(scheme + 3, slash - scheme - 3);
        path = slash == std::string::npos ? "" : url.substr(slash + 1);
    }
    if (path.ends_with(".git")) {
        path.resize(path.size() - 4);
    }
    while (!path.empty() && path.back() == '/') {
        path.pop_back();
    }
    repo.full_name = path.empty() ? "bench/bench" : path;
    const auto last = repo.full_name.rfind('/');
    repo.name = last == std::string::npos ? repo.full_name : repo.full_name.substr(last + 1);
    repo.owner = last == std::string::npos ? "bench" : repo.full_name.substr(0, last);
    repo.clone_url = url;
    repo.html_url = url.ends_with(".git") ? url.substr(0, url.size() - 4) : url;
    repo.ssh_url = "git@" + host + ":" + repo.full_name + ".git";
    repo.git_url = "git://" + host + "/" + repo.full_name + ".git";
    repo.api_url = "https://api." + host + "/repos/" + repo.full_name;
    return repo;
}

class RequestFactory {
public:
    RequestFactory(const Options& options, const Endpoint& endpoint)
        : repo_(describe_repository(options.repo_url)), branches_(std::max(1, options.branches)),
          seed_(options.seed) {
        if (!options.secret_file.empty()) {
            const std::string secret = trim(read_file(options.secret_file));
            if (options.signature == "both" || options.signature == "sha256") {
                sha256_ = std::make_unique<Hmac>(secret, "SHA256");
            }
            if (options.signature == "both" || options.signature == "sha1") {
                sha1_ = std::make_unique<Hmac>(secret, "SHA1");
            }
            if (!sha256_ && !sha1_) {
                die("--signature must be both, sha256 or sha1");
            }
        }
        head_ = "POST " + endpoint.path + " HTTP/1.1\r\nHost: " + endpoint.host + ":" +
                std::to_string(endpoint.port) +
                "\r\nUser-Agent: GitHub-Hookshot/bench\r\nAccept: */*\r\n"
                "Content-Type: application/json\r\nX-GitHub-Event: push\r\n"
                "X-GitHub-Hook-ID: 4242\r\n";
        const std::string& r = repo_.html_url;
        repo_json_ = R"({"id":31415926,"node_id":"MDEwOlJlcG9zaXRvcnkzMTQxNTkyNg==","name":")" +
                     json_escape(repo_.name) + R"(","full_name":")" + json_escape(repo_.full_name) +
                     R"(","private":false,"owner":{"name":")" + json_escape(repo_.owner) +
                     R"(","email":null,"login":")" + json_escape(repo_.owner) +
                     R"(","id":2718281,"type":"Organization","site_admin":false},"html_url":")" +
                     json_escape(r) + R"(","description":"A benchmark repository","fork":false,)" +
                     R"("url":")" + json_escape(r) + R"(","created_at":1400000000,"updated_at":")" +
                     R"(2024-05-01T12:00:00Z","pushed_at":1714564800,"git_url":")" +
                     json_escape(repo_.git_url) + R"(","ssh_url":")" + json_escape(repo_.ssh_url) +
                     R"(","clone_url":")" + json_escape(repo_.clone_url) + R"(","svn_url":")" +
                     json_escape(r) + R"(","homepage":null,"size":41234,"stargazers_count":3300,)" +
                     R"("watchers_count":3300,"language":"Python","has_issues":true,)" +
                     R"("forks_count":270,"archived":false,"disabled":false,"open_issues_count":)" +
                     R"(120,"default_branch":"master","master_branch":"master","organization":")" +
                     json_escape(repo_.owner) + "\"}";
        author_json_ = "{\"name\":\"Bench Author\",\"email\":\"bench@example.org\","
                       "\"username\":\"bench-author\"}";
    }

    // Fills `out` with request number k (headers and body).
    void build(std::uint64_t k, std::string& out) {
        body_.clear();
        const std::uint64_t branch = k % static_cast<std::uint64_t>(branches_);
        std::string after;
        append_sha(after, seed_, 2 * k);
        std::string before;
        append_sha(before, seed_, 2 * k + 1);
        std::array<char, 40> stamp{};
        const std::time_t when = 1714564800 + static_cast<std::time_t>(k % 10000000);
        std::tm tm{};
        gmtime_r(&when, &tm);
        std::strftime(stamp.data(), stamp.size(), "%Y-%m-%dT%H:%M:%S+00:00", &tm);
        const std::string b = std::to_string(branch);
        const std::string n = std::to_string(k);

        std::string commit;
        commit.reserve(900);
        commit += R"({"id":")" + after + R"(","tree_id":")";
        append_sha(commit, seed_ ^ 0x7eee7eeeULL, k);
        commit += R"(","distinct":true,"message":"Bench change )" + n + " on feature-" + b +
                  "\\n\\nMake the block device agent retry detaching volumes; " +
                  R"(see the design notes.","timestamp":")" + stamp.data() + R"(","url":")" +
                  json_escape(repo_.html_url) + "/commit/" + after + R"(","author":)" +
                  author_json_ + ",\"committer\":" + author_json_ +
                  R"(,"added":["flocker/node/feature_)" + b + "/test_change_" + n +
                  R"(.py"],"removed":[],"modified":["flocker/node/agents/blockdevice.py",)" +
                  R"("flocker/node/agents/test/test_blockdevice.py","docs/releasenotes.rst"]})";

        body_ += R"({"ref":"refs/heads/feature-)" + b + R"(","before":")" + before +
                 R"(","after":")" + after + R"(","repository":)" + repo_json_ +
                 R"(,"pusher":{"name":"bench-author","email":"bench@example.org"})" +
                 R"(,"organization":{"login":")" + json_escape(repo_.owner) +
                 R"(","id":2718281},"sender":{"login":"bench-author","id":1618033,)" +
                 R"("type":"User","site_admin":false},"created":false,"deleted":false,)" +
                 R"("forced":false,"base_ref":null,"compare":")" + json_escape(repo_.html_url) +
                 "/compare/" + before.substr(0, 12) + "..." + after.substr(0, 12) +
                 R"(","commits":[)" + commit + "],\"head_commit\":" + commit + "}";

        out.clear();
        out += head_;
        out += "Content-Length: ";
        out += std::to_string(body_.size());
        out += "\r\nX-GitHub-Delivery: ";
        const std::uint64_t u1 = splitmix64(seed_ ^ 0xde11ee7ULL ^ (k << 1));
        const std::uint64_t u2 = splitmix64(u1 + k);
        append_hex64(out, u1 >> 32, 8);
        out += '-';
        append_hex64(out, (u1 >> 16) & 0xffff, 4);
        out += '-';
        append_hex64(out, 0x4000 | (u1 & 0x0fff), 4);
        out += '-';
        append_hex64(out, 0x8000 | ((u2 >> 48) & 0x3fff), 4);
        out += '-';
        append_hex64(out, u2 & 0xffffffffffffULL, 12);
        out += "\r\n";
        if (sha1_) {
            out += "X-Hub-Signature: sha1=";
            sha1_->append_hex_mac(out, body_);
            out += "\r\n";
        }
        if (sha256_) {
            out += "X-Hub-Signature-256: sha256=";
            sha256_->append_hex_mac(out, body_);
            out += "\r\n";
        }
        out += "\r\n";
        out += body_;
    }

private:
    Repository repo_;
    int branches_;
    std::uint64_t seed_;
    std::unique_ptr<Hmac> sha256_;
    std::unique_ptr<Hmac> sha1_;
    std::string head_;
    std::string repo_json_;
    std::string author_json_;
    std::string body_;
};

// Result of parsing an HTTP response at the front of a buffer.
struct Response {
    bool complete = false;
    bool bad = false;
    bool close = false;
    int status = 0;
    std::size_t size = 0; // bytes of the buffer that the response takes
    std::string_view body;
};

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

// `eof`: the peer closed; a response delimited by the connection's end is then complete.
Response parse_response(std::string_view buffer, bool eof) {
    Response response;
    const auto header_end = buffer.find("\r\n\r\n");
    if (header_end == std::string_view::npos) {
        response.bad = eof && !buffer.empty();
        return response;
    }
    const std::string_view status_line = buffer.substr(0, buffer.find("\r\n"));
    if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12) {
        response.bad = true;
        return response;
    }
    std::from_chars(status_line.data() + 9, status_line.data() + 12, response.status);
    const bool http10 = status_line.starts_with("HTTP/1.0");
    const std::string headers = lower(buffer.substr(0, header_end + 2));
    auto header = [&](std::string_view name) -> std::optional<std::string> {
        const std::string key = "\r\n" + std::string(name) + ":";
        const auto at = headers.find(key);
        if (at == std::string::npos) {
            return std::nullopt;
        }
        auto start = at + key.size();
        const auto end = headers.find("\r\n", start);
        while (start < end && headers[start] == ' ') {
            ++start;
        }
        std::string value = headers.substr(start, end - start);
        while (!value.empty() && value.back() == ' ') {
            value.pop_back();
        }
        return value;
    };
    const auto connection = header("connection");
    response.close = http10 ? (!connection || connection->find("keep-alive") == std::string::npos)
                            : (connection && connection->find("close") != std::string::npos);
    const std::size_t body_start = header_end + 4;
    const bool no_body =
        response.status / 100 == 1 || response.status == 204 || response.status == 304;
    if (no_body) {
        response.complete = true;
        response.size = body_start;
        return response;
    }
    if (const auto te = header("transfer-encoding");
        te && te->find("chunked") != std::string::npos) {
        std::size_t pos = body_start;
        for (;;) {
            const auto line_end = buffer.find("\r\n", pos);
            if (line_end == std::string_view::npos) {
                response.bad = eof;
                return response;
            }
            std::size_t chunk = 0;
            auto [ptr, ec] =
                std::from_chars(buffer.data() + pos, buffer.data() + line_end, chunk, 16);
            if (ec != std::errc{} || ptr == buffer.data() + pos) {
                response.bad = true;
                return response;
            }
            pos = line_end + 2;
            if (chunk == 0) {
                if (buffer.substr(pos).starts_with("\r\n")) {
                    response.size = pos + 2;
                } else {
                    const auto trailer_end = buffer.find("\r\n\r\n", pos);
                    if (trailer_end == std::string_view::npos) {
                        response.bad = eof;
                        return response;
                    }
                    response.size = trailer_end + 4;
                }
                response.complete = true;
                response.body =
                    buffer.substr(body_start, std::min<std::size_t>(200, pos - body_start));
                return response;
            }
            if (buffer.size() < pos + chunk + 2) {
                response.bad = eof;
                return response;
            }
            pos += chunk + 2;
        }
    }
    if (const auto length = header("content-length")) {
        std::size_t size = 0;
        std::from_chars(length->data(), length->data() + length->size(), size);
        if (buffer.size() < body_start + size) {
            response.bad = eof;
            return response;
        }
        response.complete = true;
        response.size = body_start + size;
        response.body = buffer.substr(body_start, std::min<std::size_t>(size, 200));
        return response;
    }
    // Delimited by the end of the connection.
    if (eof) {
        response.complete = true;
        response.close = true;
        response.size = buffer.size();
        response.body =
            buffer.substr(body_start, std::min<std::size_t>(200, buffer.size() - body_start));
    }
    return response;
}

struct Stats {
    long long sent = 0;
    long long completed = 0;
    long long accepted = 0;
    long long errors = 0;
    long long reconnects = 0;
    std::map<int, long long> statuses;
    std::vector<std::uint32_t> latencies_us;
    std::string first_error;
    std::string first_rejection;
    Clock::time_point last_completion{};
};

struct Shared {
    const Options* options = nullptr;
    const Endpoint* endpoint = nullptr;
    std::atomic<long long> next{0};
    Clock::time_point start;
    Clock::time_point deadline;
};

class LoadThread {
public:
    LoadThread(Shared& shared, int connections)
        : shared_(shared), factory_(*shared.options, *shared.endpoint) {
        epoll_ = epoll_create1(EPOLL_CLOEXEC);
        if (epoll_ < 0) {
            die("epoll_create1 failed");
        }
        conns_.resize(static_cast<std::size_t>(connections));
        stats_.latencies_us.reserve(1 << 20);
    }
    LoadThread(const LoadThread&) = delete;
    LoadThread& operator=(const LoadThread&) = delete;
    ~LoadThread() {
        for (auto& c : conns_) {
            if (c.fd >= 0) {
                close(c.fd);
            }
        }
        close(epoll_);
    }

    void run() {
        for (auto& c : conns_) {
            open(c);
        }
        std::array<epoll_event, 256> events{};
        const auto timeout = std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(shared_.options->timeout));
        const auto grace_deadline = shared_.deadline + timeout;
        auto next_sweep = Clock::now();
        for (;;) {
            const auto now = Clock::now();
            if (now >= next_sweep) {
                next_sweep = now + std::chrono::milliseconds(20);
                if (stop_signal != 0) {
                    stopping_ = true;
                }
                if (shared_.options->duration > 0 && now >= shared_.deadline) {
                    stopping_ = true;
                }
                if (stopping_ && (in_flight() == 0 || now >= grace_deadline)) {
                    break;
                }
                for (auto& c : conns_) {
                    if (c.state == State::waiting && !stopping_ && now >= c.retry_at) {
                        open(c);
                    } else if ((c.state == State::busy || c.state == State::connecting) &&
                               now - c.started > timeout) {
                        fail(c, "timeout");
                    } else if (c.state == State::idle && !stopping_) {
                        next_request(c);
                    }
                }
                if (stopping_ && in_flight() == 0) {
                    break;
                }
            }
            const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 20);
            if (n < 0 && errno != EINTR) {
                die("epoll_wait failed");
            }
            for (int i = 0; i < n; ++i) {
                handle(*static_cast<Conn*>(events[i].data.ptr), events[i].events);
            }
        }
    }

    Stats& stats() { return stats_; }

private:
    enum class State { closed, waiting, connecting, idle, busy };

    struct Conn {
        int fd = -1;
        State state = State::closed;
        bool want_write = false;
        std::string out;
        std::size_t written = 0;
        std::string in;
        Clock::time_point started{};
        Clock::time_point retry_at{};
    };

    int in_flight() const {
        int n = 0;
        for (const auto& c : conns_) {
            n += c.state == State::busy ? 1 : 0;
        }
        return n;
    }

    void open(Conn& c) {
        c.fd = start_connect(*shared_.endpoint);
        if (c.fd < 0) {
            note_error(std::string("connect: ") + std::strerror(errno));
            c.state = State::waiting;
            c.retry_at = Clock::now() + std::chrono::milliseconds(50);
            return;
        }
        c.state = State::connecting;
        c.started = Clock::now();
        c.in.clear();
        epoll_event event{};
        event.events = EPOLLIN | EPOLLOUT;
        event.data.ptr = &c;
        c.want_write = true;
        epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &event);
    }

    void set_write_interest(Conn& c, bool want) const {
        if (c.want_write == want) {
            return;
        }
        c.want_write = want;
        epoll_event event{};
        event.events = EPOLLIN | (want ? EPOLLOUT : 0u);
        event.data.ptr = &c;
        epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &event);
    }

    void note_error(const std::string& what) {
        ++stats_.errors;
        if (stats_.first_error.empty()) {
            stats_.first_error = what;
        }
    }

    void fail(Conn& c, const std::string& what) {
        note_error(what);
        drop(c);
        c.retry_at = Clock::now() + std::chrono::milliseconds(50);
    }

    // Closes the connection; a clean close (`reopen`) connects again at once.
    void drop(Conn& c, bool reopen = false) {
        if (c.fd >= 0) {
            close(c.fd); // also removes it from the epoll set
            c.fd = -1;
        }
        c.state = State::waiting;
        c.retry_at = Clock::now();
        c.in.clear();
        if (reopen && !stopping_) {
            open(c);
        }
    }

    void next_request(Conn& c) {
        if (stopping_) {
            c.state = State::idle;
            return;
        }
        const long long limit = shared_.options->requests;
        const long long k = shared_.next.fetch_add(1, std::memory_order_relaxed);
        if (limit > 0 && k >= limit) {
            stopping_ = true;
            c.state = State::idle;
            return;
        }
        factory_.build(static_cast<std::uint64_t>(k), c.out);
        c.written = 0;
        c.state = State::busy;
        c.started = Clock::now();
        ++stats_.sent;
        write_some(c);
    }

    void write_some(Conn& c) {
        while (c.written < c.out.size()) {
            const ssize_t n =
                send(c.fd, c.out.data() + c.written, c.out.size() - c.written, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    set_write_interest(c, true);
                    return;
                }
                if (errno == EINTR) {
                    continue;
                }
                fail(c, std::string("send: ") + std::strerror(errno));
                return;
            }
            c.written += static_cast<std::size_t>(n);
        }
        set_write_interest(c, false);
    }

    void handle(Conn& c, std::uint32_t events) {
        if (c.fd < 0) {
            return;
        }
        if (c.state == State::connecting) {
            if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) {
                return;
            }
            if (const int error = socket_error(c.fd); error != 0) {
                fail(c, std::string("connect: ") + std::strerror(error));
                return;
            }
            c.state = State::idle;
            set_write_interest(c, false);
            next_request(c);
            return;
        }
        if ((events & EPOLLOUT) != 0 && c.state == State::busy) {
            write_some(c);
            if (c.fd < 0) {
                return;
            }
        }
        if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
            read_some(c);
        }
    }

    void read_some(Conn& c) {
        bool eof = false;
        for (;;) {
            std::array<char, 16384> buffer; // not zero-filled: recv() writes what is used
            const ssize_t n = recv(c.fd, buffer.data(), buffer.size(), 0);
            if (n > 0) {
                c.in.append(buffer.data(), static_cast<std::size_t>(n));
                if (shared_.options->quickack) {
                    int one = 1;
                    setsockopt(c.fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
                }
                if (static_cast<std::size_t>(n) < buffer.size()) {
                    break;
                }
                continue;
            }
            if (n == 0) {
                eof = true;
                break;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            if (errno == EINTR) {
                continue;
            }
            fail(c, std::string("recv: ") + std::strerror(errno));
            return;
        }
        if (c.state != State::busy) {
            if (eof) {
                // The server closed an idle keep-alive connection: reopen without an error.
                ++stats_.reconnects;
                drop(c, true);
            }
            return;
        }
        const Response response = parse_response(c.in, eof);
        if (response.bad) {
            fail(c, eof ? "connection closed before a complete response" : "malformed response");
            return;
        }
        if (!response.complete) {
            return;
        }
        const auto now = Clock::now();
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - c.started);
        stats_.latencies_us.push_back(
            static_cast<std::uint32_t>(std::min<long long>(us.count(), 0xffffffffLL)));
        ++stats_.completed;
        ++stats_.statuses[response.status];
        stats_.last_completion = now;
        if (response.status / 100 == 2) {
            ++stats_.accepted;
        } else if (stats_.first_rejection.empty()) {
            stats_.first_rejection =
                std::to_string(response.status) + " " + std::string(response.body);
        }
        c.in.erase(0, response.size);
        if (response.close || eof) {
            ++stats_.reconnects;
            drop(c, true);
            return;
        }
        c.state = State::idle;
        next_request(c);
    }

    Shared& shared_;
    RequestFactory factory_;
    int epoll_ = -1;
    std::vector<Conn> conns_;
    Stats stats_;
    bool stopping_ = false;
};

double percentile_ms(std::vector<std::uint32_t>& values, double p) {
    if (values.empty()) {
        return 0;
    }
    const auto index =
        static_cast<std::size_t>(std::lround(p * static_cast<double>(values.size() - 1)));
    std::nth_element(
        values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index), values.end());
    return values[index] / 1000.0;
}

int run_webhooks(const Options& options) {
    if (options.url.empty()) {
        usage();
        die("--url is required");
    }
    if (options.duration <= 0 && options.requests <= 0) {
        die("give --duration S or --requests N");
    }
    if (options.concurrency < 1 || options.threads < 1) {
        die("--concurrency and --threads must be at least 1");
    }
    const Endpoint endpoint = parse_url(options.url);
    Shared shared;
    shared.options = &options;
    shared.endpoint = &endpoint;
    const int threads = std::min(options.threads, options.concurrency);
    std::vector<std::unique_ptr<LoadThread>> loads;
    for (int t = 0; t < threads; ++t) {
        const int connections =
            options.concurrency / threads + (t < options.concurrency % threads ? 1 : 0);
        loads.push_back(std::make_unique<LoadThread>(shared, connections));
    }
    shared.start = Clock::now();
    shared.deadline =
        shared.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                           options.duration > 0 ? options.duration : 1e9));
    {
        std::vector<std::jthread> workers;
        workers.reserve(loads.size());
        for (auto& load : loads) {
            workers.emplace_back([&load] { load->run(); });
        }
    }
    Stats total;
    for (auto& load : loads) {
        Stats& s = load->stats();
        total.sent += s.sent;
        total.completed += s.completed;
        total.accepted += s.accepted;
        total.errors += s.errors;
        total.reconnects += s.reconnects;
        for (auto [status, count] : s.statuses) {
            total.statuses[status] += count;
        }
        total.latencies_us.insert(
            total.latencies_us.end(), s.latencies_us.begin(), s.latencies_us.end());
        if (total.first_error.empty()) {
            total.first_error = s.first_error;
        }
        if (total.first_rejection.empty()) {
            total.first_rejection = s.first_rejection;
        }
        total.last_completion = std::max(total.last_completion, s.last_completion);
    }
    const double elapsed =
        total.completed > 0
            ? std::chrono::duration<double>(total.last_completion - shared.start).count()
            : seconds_since(shared.start);
    const double p50 = percentile_ms(total.latencies_us, 0.50);
    const double p90 = percentile_ms(total.latencies_us, 0.90);
    const double p99 = percentile_ms(total.latencies_us, 0.99);
    const double max = percentile_ms(total.latencies_us, 1.0);
    std::string statuses;
    for (auto [status, count] : total.statuses) {
        statuses += (statuses.empty() ? "\"" : ",\"") + std::to_string(status) +
                    "\":" + std::to_string(count);
    }
    std::printf("{\"url\":\"%s\",\"concurrency\":%d,\"threads\":%d,\"sent\":%lld,"
                "\"completed\":%lld,\"accepted\":%lld,\"statuses\":{%s},\"errors\":%lld,"
                "\"reconnects\":%lld,\"elapsed_s\":%.3f,\"req_per_s\":%.1f,"
                "\"accepted_per_s\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
                "\"max_ms\":%.3f,\"first_error\":\"%s\",\"first_rejection\":\"%s\"}\n",
                json_escape(options.url).c_str(),
                options.concurrency,
                threads,
                total.sent,
                total.completed,
                total.accepted,
                statuses.c_str(),
                total.errors,
                total.reconnects,
                elapsed,
                elapsed > 0 ? static_cast<double>(total.completed) / elapsed : 0.0,
                elapsed > 0 ? static_cast<double>(total.accepted) / elapsed : 0.0,
                p50,
                p90,
                p99,
                max,
                json_escape(total.first_error).c_str(),
                json_escape(total.first_rejection).c_str());
    std::fflush(stdout);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Worker mode

class WorkerPool {
public:
    WorkerPool(const Options& options, std::vector<std::string> passwords)
        : options_(options), passwords_(std::move(passwords)) {
        endpoint_.host = options.worker_host;
        endpoint_.port = options.worker_port;
        resolve(endpoint_);
        epoll_ = epoll_create1(EPOLL_CLOEXEC);
        if (epoll_ < 0) {
            die("epoll_create1 failed");
        }
        workers_.resize(static_cast<std::size_t>(options.workers));
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            workers_[i].index = static_cast<int>(i);
        }
        if (!options.worker_fingerprint.empty()) {
            tls_ = SSL_CTX_new(TLS_client_method());
            SSL_CTX_set_min_proto_version(tls_, TLS1_3_VERSION);
            SSL_CTX_set_verify(tls_, SSL_VERIFY_NONE, nullptr); // pinned after the handshake
            SSL_CTX_set_session_cache_mode(
                tls_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
            SSL_CTX_sess_set_new_cb(tls_, &WorkerPool::on_new_session);
        }
    }
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;
    ~WorkerPool() {
        for (auto& w : workers_) {
            drop(w);
            if (w.session != nullptr) {
                SSL_SESSION_free(w.session);
            }
        }
        if (tls_ != nullptr) {
            SSL_CTX_free(tls_);
        }
        close(epoll_);
    }

    int run() {
        const auto start = Clock::now();
        const auto deadline =
            start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                        options_.duration > 0 ? options_.duration : 1e9));
        const auto handshake_timeout = std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(options_.timeout));
        for (auto& w : workers_) {
            open(w);
        }
        bool announced = false;
        bool all_welcomed = false;
        int round = 0;
        auto round_start = start;
        std::array<epoll_event, 256> events{};
        auto next_sweep = Clock::now();
        while (stop_signal == 0 && Clock::now() < deadline) {
            const auto now = Clock::now();
            if (now >= next_sweep) {
                next_sweep = now + std::chrono::milliseconds(100);
                int welcomed = 0;
                for (auto& w : workers_) {
                    if (w.state == State::waiting && now >= w.retry_at) {
                        open(w);
                    } else if (w.state == State::welcomed && now >= w.next_heartbeat) {
                        send_line(w, R"({"type":"heartbeat"})");
                        w.next_heartbeat = now + w.heartbeat;
                        ++heartbeats_;
                    } else if ((w.state == State::connecting || w.state == State::handshaking ||
                                w.state == State::greeting) &&
                               now - w.started > handshake_timeout) {
                        fail(w, "no welcome within the timeout");
                    }
                    welcomed += w.state == State::welcomed ? 1 : 0;
                }
                if (welcomed == options_.workers && !all_welcomed) {
                    all_welcomed = true;
                    announced = true;
                    const double seconds = seconds_since(round_start);
                    std::printf("{\"event\":\"welcomed\",\"round\":%d,\"workers\":%d,"
                                "\"seconds\":%.3f,\"heartbeat_seconds\":%.1f,\"tls\":%s,"
                                "\"full_handshakes\":%lld,\"resumed_handshakes\":%lld,"
                                "\"handshakes_per_second\":%.1f}\n",
                                round,
                                welcomed,
                                seconds,
                                heartbeat_seconds_,
                                tls_ != nullptr ? "true" : "false",
                                full_handshakes_,
                                resumed_handshakes_,
                                static_cast<double>(full_handshakes_ + resumed_handshakes_) /
                                    std::max(seconds, 1e-3));
                    std::fflush(stdout);
                } else if (welcomed < options_.workers && all_welcomed) {
                    // Connections dropped (a master restart): time the next round from here.
                    all_welcomed = false;
                    ++round;
                    round_start = Clock::now();
                    full_handshakes_ = 0;
                    resumed_handshakes_ = 0;
                }
            }
            const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 100);
            if (n < 0 && errno != EINTR) {
                die("epoll_wait failed");
            }
            for (int i = 0; i < n; ++i) {
                handle(*static_cast<Worker*>(events[i].data.ptr), events[i].events);
            }
        }
        int welcomed = 0;
        for (const auto& w : workers_) {
            welcomed += w.state == State::welcomed ? 1 : 0;
        }
        std::printf("{\"event\":\"done\",\"workers\":%d,\"welcomed\":%d,\"welcomes\":%lld,"
                    "\"refused\":%lld,\"disconnects\":%lld,\"errors\":%lld,\"heartbeats\":%lld,"
                    "\"builds\":%lld,\"seconds\":%.3f,\"first_error\":\"%s\","
                    "\"first_refusal\":\"%s\"}\n",
                    options_.workers,
                    welcomed,
                    welcomes_,
                    refused_,
                    disconnects_,
                    errors_,
                    heartbeats_,
                    builds_,
                    seconds_since(start),
                    json_escape(first_error_).c_str(),
                    json_escape(first_refusal_).c_str());
        std::fflush(stdout);
        return announced ? 0 : 1;
    }

private:
    enum class State { waiting, connecting, handshaking, greeting, welcomed, refused };

    struct Worker {
        int index = 0;
        int fd = -1;
        State state = State::waiting;
        std::string in;
        std::string out;
        Clock::time_point started{};
        Clock::time_point retry_at{};
        Clock::time_point next_heartbeat{};
        Clock::duration heartbeat{};
        bool want_write = false;
        SSL* ssl = nullptr;
        SSL_SESSION* session = nullptr; // the last ticket, for the next connection
        std::string exporter;           // hex, what the proof covers besides the nonce
    };

    static int on_new_session(SSL* ssl, SSL_SESSION* session) {
        auto* w = static_cast<Worker*>(SSL_get_app_data(ssl));
        // A copy, as ci-worker keeps: the connection's own session is marked not resumable
        // when the connection ends without a TLS close (a master killed).
        SSL_SESSION* copy = SSL_SESSION_dup(session);
        if (copy != nullptr) {
            if (w->session != nullptr) {
                SSL_SESSION_free(w->session);
            }
            w->session = copy;
        }
        return 0; // OpenSSL keeps its own reference
    }

    // Closes the connection (and its TLS state); the session stays for the next one.
    static void drop(Worker& w) {
        if (w.ssl != nullptr) {
            SSL_free(w.ssl);
            w.ssl = nullptr;
        }
        if (w.fd >= 0) {
            close(w.fd);
            w.fd = -1;
        }
    }

    // Drives the TLS handshake; on success checks the pin and moves on to the protocol.
    void handshake(Worker& w) {
        const int done = SSL_connect(w.ssl);
        if (done != 1) {
            const int error = SSL_get_error(w.ssl, done);
            if (error == SSL_ERROR_WANT_READ) {
                set_write_interest(w, false);
                return;
            }
            if (error == SSL_ERROR_WANT_WRITE) {
                set_write_interest(w, true);
                return;
            }
            fail(w, "TLS handshake failed (SSL_get_error " + std::to_string(error) + ")");
            return;
        }
        X509* certificate = SSL_get0_peer_certificate(w.ssl);
        std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
        unsigned int size = 0;
        std::string seen = "sha256:";
        if (certificate != nullptr &&
            X509_digest(certificate, EVP_sha256(), digest.data(), &size) == 1) {
            seen += hex(std::string_view(reinterpret_cast<const char*>(digest.data()), size));
        }
        if (seen != options_.worker_fingerprint) {
            fail(w, "the master's certificate is " + seen + ", not the pinned one");
            return;
        }
        std::array<unsigned char, 32> exported{};
        static constexpr std::string_view label = "EXPORTER-libci-worker-proof";
        if (SSL_export_keying_material(w.ssl,
                                       exported.data(),
                                       exported.size(),
                                       label.data(),
                                       label.size(),
                                       nullptr,
                                       0,
                                       0) != 1) {
            fail(w, "no TLS exporter value");
            return;
        }
        w.exporter =
            hex(std::string_view(reinterpret_cast<const char*>(exported.data()), exported.size()));
        if (SSL_session_reused(w.ssl) == 1) {
            ++resumed_handshakes_;
        } else {
            ++full_handshakes_;
        }
        w.state = State::greeting;
        set_write_interest(w, false);
    }

    void open(Worker& w) {
        drop(w);
        w.fd = start_connect(endpoint_);
        w.started = Clock::now();
        if (w.fd < 0) {
            fail(w, std::string("connect: ") + std::strerror(errno));
            return;
        }
        w.state = State::connecting;
        w.in.clear();
        w.out.clear();
        epoll_event event{};
        event.events = EPOLLIN | EPOLLOUT;
        event.data.ptr = &w;
        w.want_write = true;
        epoll_ctl(epoll_, EPOLL_CTL_ADD, w.fd, &event);
    }

    void fail(Worker& w, const std::string& what) {
        ++errors_;
        if (first_error_.empty()) {
            first_error_ = options_.worker_class + "/" + std::to_string(w.index) + ": " + what;
        }
        drop(w);
        w.state = State::waiting;
        w.retry_at = Clock::now() + std::chrono::seconds(1);
    }

    void set_write_interest(Worker& w, bool want) const {
        if (w.want_write == want) {
            return;
        }
        w.want_write = want;
        epoll_event event{};
        event.events = EPOLLIN | (want ? EPOLLOUT : 0u);
        event.data.ptr = &w;
        epoll_ctl(epoll_, EPOLL_CTL_MOD, w.fd, &event);
    }

    void send_line(Worker& w, const std::string& line) {
        w.out += line;
        w.out += '\n';
        flush(w);
    }

    void flush(Worker& w) {
        while (!w.out.empty() && w.ssl != nullptr) {
            const int n = SSL_write(w.ssl, w.out.data(), static_cast<int>(w.out.size()));
            if (n <= 0) {
                const int error = SSL_get_error(w.ssl, n);
                if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) {
                    set_write_interest(w, true);
                    return;
                }
                fail(w, "TLS write failed");
                return;
            }
            w.out.erase(0, static_cast<std::size_t>(n));
        }
        while (!w.out.empty()) {
            const ssize_t n = send(w.fd, w.out.data(), w.out.size(), MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    set_write_interest(w, true);
                    return;
                }
                if (errno == EINTR) {
                    continue;
                }
                fail(w, std::string("send: ") + std::strerror(errno));
                return;
            }
            w.out.erase(0, static_cast<std::size_t>(n));
        }
        set_write_interest(w, false);
    }

    void handle(Worker& w, std::uint32_t events) {
        if (w.fd < 0) {
            return;
        }
        if (w.state == State::connecting) {
            if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) {
                return;
            }
            if (const int error = socket_error(w.fd); error != 0) {
                fail(w, std::string("connect: ") + std::strerror(error));
                return;
            }
            if (tls_ != nullptr) {
                w.ssl = SSL_new(tls_);
                SSL_set_app_data(w.ssl, &w);
                SSL_set_fd(w.ssl, w.fd);
                if (w.session != nullptr) {
                    // A copy again: a failed handshake marks its session not resumable.
                    if (SSL_SESSION* copy = SSL_SESSION_dup(w.session)) {
                        SSL_set_session(w.ssl, copy);
                        SSL_SESSION_free(copy);
                    }
                }
                w.state = State::handshaking;
            } else {
                w.state = State::greeting;
                set_write_interest(w, false);
            }
        }
        if (w.state == State::handshaking) {
            handshake(w);
            if (w.state == State::handshaking || w.fd < 0) {
                return;
            }
        }
        if ((events & EPOLLOUT) != 0 && !w.out.empty()) {
            flush(w);
            if (w.fd < 0) {
                return;
            }
        }
        if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) == 0) {
            return;
        }
        bool eof = false;
        for (;;) {
            std::array<char, 4096> buffer; // not zero-filled: recv() writes what is used
            if (w.ssl != nullptr) {
                const int n = SSL_read(w.ssl, buffer.data(), static_cast<int>(buffer.size()));
                if (n > 0) {
                    w.in.append(buffer.data(), static_cast<std::size_t>(n));
                    continue;
                }
                const int error = SSL_get_error(w.ssl, n);
                if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
                    break;
                }
                eof = true;
                break;
            }
            const ssize_t n = recv(w.fd, buffer.data(), buffer.size(), 0);
            if (n > 0) {
                w.in.append(buffer.data(), static_cast<std::size_t>(n));
                continue;
            }
            if (n == 0) {
                eof = true;
                break;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            if (errno == EINTR) {
                continue;
            }
            eof = true;
            break;
        }
        std::size_t newline = 0;
        while (w.fd >= 0 && (newline = w.in.find('\n')) != std::string::npos) {
            const std::string line = w.in.substr(0, newline);
            w.in.erase(0, newline + 1);
            on_message(w, line);
        }
        if (eof && w.fd >= 0) {
            const bool was_refused = w.state == State::refused;
            drop(w);
            if (was_refused) {
                return; // refused workers stay down: the password or name is wrong
            }
            ++disconnects_;
            if (first_error_.empty()) {
                first_error_ = options_.worker_class + "/" + std::to_string(w.index) +
                               ": the master closed the connection";
            }
            w.state = State::waiting;
            w.retry_at = Clock::now() + std::chrono::seconds(1);
        }
    }

    void on_message(Worker& w, const std::string& line) {
        rapidjson::Document message;
        message.Parse(line.c_str(), line.size());
        if (message.HasParseError() || !message.IsObject() || !message.HasMember("type") ||
            !message["type"].IsString()) {
            fail(w, "bad message from the master: " + line.substr(0, 200));
            return;
        }
        const std::string_view type = message["type"].GetString();
        if (type == "challenge") {
            if (!message.HasMember("nonce") || !message["nonce"].IsString()) {
                fail(w, "challenge without a nonce");
                return;
            }
            const std::string nonce = message["nonce"].GetString();
            const std::string& password = passwords_[static_cast<std::size_t>(w.index)];
            // The master's version, whichever it is: these workers only say hello and beat.
            const int version = message.HasMember("protocol") && message["protocol"].IsInt()
                                    ? message["protocol"].GetInt()
                                    : 1;
            send_line(w,
                      R"({"type":"hello","name":")" +
                          json_escape(options_.worker_class + "/" + std::to_string(w.index)) +
                          R"(","proof":")" +
                          hmac_sha256_hex(secret_key(password),
                                          w.exporter.empty() ? nonce : nonce + ":" + w.exporter) +
                          R"(","max_builds":1,"protocol":)" + std::to_string(version) + "}");
        } else if (type == "welcome") {
            double seconds = 30;
            if (message.HasMember("heartbeat_seconds") && message["heartbeat_seconds"].IsNumber()) {
                seconds = message["heartbeat_seconds"].GetDouble();
            }
            heartbeat_seconds_ = seconds;
            w.heartbeat = std::chrono::duration_cast<Clock::duration>(
                std::chrono::duration<double>(std::max(seconds, 0.05)));
            w.next_heartbeat = Clock::now() + w.heartbeat;
            w.state = State::welcomed;
            ++welcomes_;
        } else if (type == "refused") {
            ++refused_;
            if (first_refusal_.empty()) {
                first_refusal_ = options_.worker_class + "/" + std::to_string(w.index) + ": " +
                                 (message.HasMember("reason") && message["reason"].IsString()
                                      ? message["reason"].GetString()
                                      : "(no reason)");
            }
            w.state = State::refused;
        } else if (type == "build") {
            ++builds_;
            std::string id = "null";
            for (const char* key : {"build", "id"}) {
                if (message.HasMember(key) && message[key].IsInt64()) {
                    id = std::to_string(message[key].GetInt64());
                    break;
                }
                if (message.HasMember(key) && message[key].IsString()) {
                    id = "\"" + json_escape(message[key].GetString()) + "\"";
                    break;
                }
            }
            send_line(w,
                      R"({"type":"build_finished","build":)" + id +
                          R"(,"result":"exception","message":"bench worker"})");
        }
        // Anything else (pings, notices) needs no answer from an idle worker.
    }

    const Options& options_;
    std::vector<std::string> passwords_;
    Endpoint endpoint_;
    int epoll_ = -1;
    std::vector<Worker> workers_;
    double heartbeat_seconds_ = 0;
    long long welcomes_ = 0;
    long long refused_ = 0;
    long long disconnects_ = 0;
    long long errors_ = 0;
    long long heartbeats_ = 0;
    long long builds_ = 0;
    std::string first_error_;
    std::string first_refusal_;
    SSL_CTX* tls_ = nullptr;
    long long full_handshakes_ = 0;
    long long resumed_handshakes_ = 0;
};

int run_workers(const Options& options) {
    if (options.worker_port <= 0 || options.worker_secret_file.empty()) {
        usage();
        die("--workers needs --worker-port and --worker-secret-file");
    }
    std::vector<std::string> passwords;
    std::istringstream lines(read_file(options.worker_secret_file));
    for (std::string line; std::getline(lines, line);) {
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        passwords.push_back(line);
    }
    if (passwords.size() < static_cast<std::size_t>(options.workers)) {
        die("--worker-secret-file has " + std::to_string(passwords.size()) +
            " passwords, fewer than --workers " + std::to_string(options.workers));
    }
    WorkerPool pool(options, std::move(passwords));
    return pool.run();
}

} // namespace

int main(int argc, char** argv) {
    const Options options = parse_options(argc, argv);
    raise_fd_limit();
    std::signal(SIGPIPE, SIG_IGN);
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    if (options.workers > 0) {
        return run_workers(options);
    }
    Options webhook_options = options;
    if (webhook_options.seed == 0) {
        webhook_options.seed = static_cast<std::uint64_t>(
                                   std::chrono::system_clock::now().time_since_epoch().count()) ^
                               (static_cast<std::uint64_t>(getpid()) << 32);
    }
    return run_webhooks(webhook_options);
}
