#include "serve/http_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "serve/api_error.h"

namespace razor::serve {
namespace {

void SetTimeouts(int fd, int send_seconds) {
  timeval tv{send_seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace

HttpServer::~HttpServer() {
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

Status HttpServer::Listen(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0)
    return Err(fmt::format("--host {}: {}", host, ::gai_strerror(rc)));
  std::string last_error = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 128) == 0) {
      listen_fd_ = fd;
      break;
    }
    last_error = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (listen_fd_ < 0) return Err(fmt::format("cannot listen on {}:{}: {}", host, port, last_error));
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return Status::Ok();
}

Status HttpServer::Serve(HttpHandler handler) {
  handler_ = std::move(handler);  // outlives the detached connection threads (the server object does)
  while (true) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        if (errno != EINTR && errno != ECONNABORTED) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      return Err(std::string("accept failed: ") + std::strerror(errno));
    }
    SetTimeouts(fd, 10);
    if (open_connections_.load() >= max_connections_) {
      SendAll(fd, FormatHttpResponse(503, "application/json",
                                     ApiError{503, "too many open connections", "server_error", "", "overloaded"}.Body(),
                                     {{"Retry-After", "1"}}));
      ::close(fd);
      continue;
    }
    ++open_connections_;
    try {
      std::thread([this, fd] {
        HandleConnection(fd);
        ::close(fd);
        --open_connections_;
      }).detach();
    } catch (const std::system_error&) {  // no memory for another thread
      --open_connections_;
      ::close(fd);
    }
  }
}

void HttpServer::HandleConnection(int fd) {
  HttpRequest request;
  HttpReadError error;
  if (!ReadHttpRequest(fd, limits_, &request, &error)) {
    if (error.status != 0)
      SendAll(fd, FormatHttpResponse(error.status, "application/json",
                                     ApiError{error.status, error.message}.Body()));
    return;
  }
  HttpConnection connection(fd);
  try {
    handler_(request, connection);
  } catch (const std::exception& e) {  // a bug or out of memory: this request fails, the server stays up
    connection.Send(FormatHttpResponse(500, "application/json",
                                       ApiError{500, std::string("internal error: ") + e.what(), "server_error"}.Body()));
  }
}

}  // namespace razor::serve
