// HTTP/1.1 on one socket: reads one request (request line, headers, a Content-Length body) within size
// limits and a deadline, so a slow or hostile client cannot hold a connection thread for long; formats and
// sends responses. Every response closes the connection (no keep-alive in this version).
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace razor::serve {

struct HttpLimits {
  size_t max_header_bytes = 16 << 10;
  size_t max_body_bytes = 1 << 20;
  std::chrono::milliseconds read_deadline{30000};  // the whole request, headers and body
};

struct HttpRequest {
  std::string method;
  std::string path;  // the target without its query string
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  const std::string* header(const std::string& lower_name) const;
};

// Why a request could not be read: the status to answer (0: the peer went away or timed out before sending
// anything, answer nothing) and a one-line reason.
struct HttpReadError {
  int status = 0;
  std::string message;
};

// Reads one request from fd. Returns false with *error set when it is malformed, too large or too slow.
bool ReadHttpRequest(int fd, const HttpLimits& limits, HttpRequest* request, HttpReadError* error);

struct HttpHeader {
  std::string name, value;
};
// "HTTP/1.1 <status> <reason>" + Content-Type + Content-Length + Connection: close + extra headers + body.
std::string FormatHttpResponse(int status, std::string_view content_type, std::string_view body,
                               const std::vector<HttpHeader>& extra = {});
// The head of a response whose body follows in pieces until the connection closes (server-sent events).
std::string FormatStreamHead(std::string_view content_type);

// Writes all of data (no SIGPIPE); false when the peer is gone or the write timed out.
bool SendAll(int fd, std::string_view data);
// True when the peer closed its side or the socket failed (checked without blocking).
bool PeerClosed(int fd);

}  // namespace razor::serve
