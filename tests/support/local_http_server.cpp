#include "support/local_http_server.h"

#include <array>
#include <cstring>
#include <poll.h>
#include <stdexcept>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace ci::test {

namespace {

std::string_view reason(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n <= 0) {
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

} // namespace

LocalHttpServer::LocalHttpServer(Handler handler) : handler_(std::move(handler)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener_ < 0) {
        throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0; // the kernel picks a free port
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_, 64) != 0) {
        ::close(listener_);
        throw std::runtime_error(std::string("bind/listen: ") + std::strerror(errno));
    }
    socklen_t length = sizeof address;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { serve(); });
}

LocalHttpServer::~LocalHttpServer() {
    stopping_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    acceptor_.join();
    for (auto& worker : workers_) {
        worker.join();
    }
    ::close(listener_);
}

std::string LocalHttpServer::authority() const {
    return "127.0.0.1:" + std::to_string(port_);
}

std::vector<ReceivedRequest> LocalHttpServer::requests() const {
    const std::lock_guard lock(mutex_);
    return requests_;
}

void LocalHttpServer::serve() {
    while (!stopping_) {
        pollfd poller{listener_, POLLIN, 0};
        if (::poll(&poller, 1, 50) <= 0) {
            continue;
        }
        const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        const int number = ++connections_;
        workers_.emplace_back([this, fd, number] { serve_connection(fd, number); });
    }
}

void LocalHttpServer::serve_connection(int fd, int number) {
    std::string buffer;
    const auto fill = [&]() {
        for (;;) {
            if (stopping_) {
                return false;
            }
            pollfd poller{fd, POLLIN, 0};
            const int ready = ::poll(&poller, 1, 50);
            if (ready == 0) {
                continue;
            }
            std::array<char, 65536> chunk; // not zero-filled: recv() writes what is used
            const ssize_t n = ready < 0 ? -1 : ::recv(fd, chunk.data(), chunk.size(), 0);
            if (n <= 0) {
                return false;
            }
            buffer.append(chunk.data(), static_cast<std::size_t>(n));
            return true;
        }
    };
    for (;;) {
        std::size_t end = 0;
        while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
            if (!fill()) {
                ::close(fd);
                return;
            }
        }
        ReceivedRequest request;
        request.connection = number;
        const std::string head = buffer.substr(0, end);
        buffer.erase(0, end + 4);
        std::size_t line_end = head.find("\r\n");
        const std::string request_line = head.substr(0, line_end);
        const auto first = request_line.find(' ');
        const auto last = request_line.rfind(' ');
        request.method = request_line.substr(0, first);
        request.target = request_line.substr(first + 1, last - first - 1);
        std::size_t length = 0;
        while (line_end != std::string::npos) {
            const std::size_t start = line_end + 2;
            line_end = head.find("\r\n", start);
            const std::string line = head.substr(start, line_end - start);
            const auto colon = line.find(':');
            if (colon == std::string::npos) {
                continue;
            }
            std::string value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(' '));
            request.headers.push_back({line.substr(0, colon), value});
            if (http::find_header({request.headers.back()}, "content-length") != nullptr) {
                length = std::stoul(value);
            }
        }
        while (buffer.size() < length) {
            if (!fill()) {
                ::close(fd);
                return;
            }
        }
        request.body = buffer.substr(0, length);
        buffer.erase(0, length);
        {
            const std::lock_guard lock(mutex_);
            requests_.push_back(request);
        }
        const Reply reply = handler_(request);
        if (reply.delay.count() > 0) {
            std::this_thread::sleep_for(reply.delay);
        }
        if (reply.drop) {
            ::close(fd);
            return;
        }
        std::string response = "HTTP/1.1 " + std::to_string(reply.status) + " " +
                               std::string(reason(reply.status)) + "\r\n";
        for (const auto& header : reply.headers) {
            response += header.name + ": " + header.value + "\r\n";
        }
        const bool head_request = request.method == "HEAD";
        response += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n\r\n";
        if (!head_request) {
            response += reply.body;
        }
        if (!send_all(fd, response)) {
            ::close(fd);
            return;
        }
    }
}

} // namespace ci::test
