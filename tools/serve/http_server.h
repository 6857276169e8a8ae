// The listening socket and its threads: one accept thread (the caller's), one thread per connection up to
// a limit (a connection over it is answered 503 at once). Each connection is read with HttpLimits, handed to
// the handler, and closed.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "core/status.h"
#include "serve/http_message.h"

namespace razor::serve {

// The connection a handler answers on: the request has been read; write the response with SendAll(fd(), ..).
class HttpConnection {
 public:
  explicit HttpConnection(int fd) : fd_(fd) {}
  int fd() const { return fd_; }
  bool Send(std::string_view data) { return SendAll(fd_, data); }
  bool PeerClosed() const { return serve::PeerClosed(fd_); }

 private:
  int fd_;
};

using HttpHandler = std::function<void(const HttpRequest&, HttpConnection&)>;

class HttpServer {
 public:
  HttpServer(HttpLimits limits, int max_connections) : limits_(limits), max_connections_(max_connections) {}
  ~HttpServer();
  // Binds host:port (port 0: an ephemeral one) and listens.
  Status Listen(const std::string& host, int port);
  int port() const { return port_; }
  // Accepts connections until the listening socket fails; never returns on success.
  Status Serve(HttpHandler handler);

 private:
  void HandleConnection(int fd);
  HttpHandler handler_;
  HttpLimits limits_;
  int max_connections_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<int> open_connections_{0};
};

}  // namespace razor::serve
