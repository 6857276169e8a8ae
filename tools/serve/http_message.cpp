#include "serve/http_message.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>

#include <fmt/format.h>

namespace razor::serve {
namespace {

using Clock = std::chrono::steady_clock;

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

// Appends what arrives before the deadline; 1: got bytes, 0: peer closed, -1: timeout or error.
int RecvSome(int fd, Clock::time_point deadline, std::string* buf) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return -1;
  pollfd p{fd, POLLIN, 0};
  const int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 60000)));
  if (ready <= 0) return -1;
  char chunk[8192];
  const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
  if (n < 0) return errno == EINTR || errno == EAGAIN ? 1 : -1;
  if (n == 0) return 0;
  buf->append(chunk, static_cast<size_t>(n));
  return 1;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && (s[a] == ' ' || s[a] == '\t')) ++a;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t')) --b;
  return std::string(s.substr(a, b - a));
}

bool Fail(HttpReadError* error, int status, std::string message) {
  *error = {status, std::move(message)};
  return false;
}

// Parses the request line and headers of `head` (without the blank line).
bool ParseHead(std::string_view head, HttpRequest* r, HttpReadError* error) {
  size_t eol = head.find("\r\n");
  const std::string_view line = head.substr(0, eol);
  const size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return Fail(error, 400, "malformed request line");
  r->method = std::string(line.substr(0, sp1));
  std::string target(line.substr(sp1 + 1, sp2 - sp1 - 1));
  const std::string_view version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return Fail(error, 400, "unsupported HTTP version");
  // The absolute form (RFC 9112 3.2.2: "http://host:port/path", which a server must accept) names the same
  // resource as its path: the scheme and authority are dropped (this server serves one host).
  const std::string lower_target = Lower(target.substr(0, 8));
  for (const char* scheme : {"http://", "https://"}) {
    const size_t n = std::string_view(scheme).size();
    if (lower_target.compare(0, n, scheme) != 0) continue;
    const size_t slash = target.find('/', n);
    target = slash == std::string::npos ? "/" : target.substr(slash);
    break;
  }
  if (r->method.empty() || target.empty() || target[0] != '/') return Fail(error, 400, "malformed request line");
  r->path = target.substr(0, target.find('?'));
  while (eol != std::string_view::npos) {
    const size_t start = eol + 2;
    eol = head.find("\r\n", start);
    const std::string_view h = head.substr(start, eol == std::string_view::npos ? head.npos : eol - start);
    const size_t colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return Fail(error, 400, "malformed header line");
    std::string name = Lower(std::string(h.substr(0, colon)));
    std::string value = Trim(h.substr(colon + 1));
    // Two Content-Length fields that disagree leave the body's end ambiguous (the request-smuggling pattern):
    // RFC 9112 6.3 makes that an unrecoverable error. Other repeated fields: the last one counts.
    auto seen = r->headers.find(name);
    if (name == "content-length" && seen != r->headers.end() && seen->second != value)
      return Fail(error, 400, "conflicting Content-Length headers");
    r->headers[std::move(name)] = std::move(value);
  }
  return true;
}

}  // namespace

const std::string* HttpRequest::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? nullptr : &it->second;
}

bool ReadHttpRequest(int fd, const HttpLimits& limits, HttpRequest* r, HttpReadError* error) {
  const auto deadline = Clock::now() + limits.read_deadline;
  std::string buf;
  size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (buf.size() > limits.max_header_bytes) return Fail(error, 431, "request headers too large");
    const int got = RecvSome(fd, deadline, &buf);
    if (got == 0) return Fail(error, buf.empty() ? 0 : 400, "connection closed mid-request");
    if (got < 0) return Fail(error, buf.empty() ? 0 : 408, "request not received in time");
  }
  if (end > limits.max_header_bytes) return Fail(error, 431, "request headers too large");
  if (!ParseHead(std::string_view(buf).substr(0, end), r, error)) return false;
  buf.erase(0, end + 4);
  if (r->header("transfer-encoding") != nullptr)
    return Fail(error, 411, "chunked request bodies are not supported; send Content-Length");
  const std::string* length = r->header("content-length");
  if (length == nullptr) {
    if (r->method == "POST") return Fail(error, 411, "a POST request needs a Content-Length header");
    return true;
  }
  if (length->empty() || length->size() > 18 ||
      !std::all_of(length->begin(), length->end(), [](char c) { return c >= '0' && c <= '9'; }))
    return Fail(error, 400, "malformed Content-Length");
  const size_t want = std::stoull(*length);
  if (want > limits.max_body_bytes)
    return Fail(error, 413, fmt::format("request body of {} bytes is over the limit of {}", want, limits.max_body_bytes));
  while (buf.size() < want) {
    const int got = RecvSome(fd, deadline, &buf);
    if (got == 0) return Fail(error, 400, "connection closed mid-body");
    if (got < 0) return Fail(error, 408, "request body not received in time");
  }
  buf.resize(want);  // bytes after the body (pipelining) are not served: every response closes
  r->body = std::move(buf);
  return true;
}

std::string FormatHttpResponse(int status, std::string_view content_type, std::string_view body,
                               const std::vector<HttpHeader>& extra) {
  std::string out = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
                                status, Reason(status), content_type, body.size());
  for (const auto& h : extra) out += h.name + ": " + h.value + "\r\n";
  out += "\r\n";
  out += body;
  return out;
}

std::string FormatStreamHead(std::string_view content_type) {
  return fmt::format("HTTP/1.1 200 OK\r\nContent-Type: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
                     content_type);
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool PeerClosed(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return true;
  char c;
  return ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

}  // namespace razor::serve
