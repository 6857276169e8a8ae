// Test-only pieces for `razor serve`: the real binary started as a subprocess on an ephemeral port (its
// port read from the "listening on" line), and a tiny raw-HTTP client (one request per connection, read to
// the close; server-sent events split into their `data:` payloads).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_test_support.h"
#include "model_test_support.h"

namespace razor::testing_serve {

using nlohmann::json;

// The flags every serve test shares with the `razor run` it compares against.
inline std::string SharedFlags() { return "-t 2 --ctx 2048"; }

struct HttpReply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  json Json() const { return json::parse(body, nullptr, false); }
  // The `data:` payloads of an event-stream body, in order.
  std::vector<std::string> Events() const {
    std::vector<std::string> out;
    size_t at = 0;
    while ((at = body.find("data: ", at)) != std::string::npos) {
      const size_t end = body.find("\n\n", at);
      out.push_back(body.substr(at + 6, end == std::string::npos ? std::string::npos : end - at - 6));
      if (end == std::string::npos) break;
      at = end + 2;
    }
    return out;
  }
};

inline int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{120, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

inline bool SendRaw(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

inline HttpReply ParseReply(const std::string& raw) {
  HttpReply r;
  const size_t head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos) return r;
  r.status = std::atoi(raw.c_str() + 9);
  size_t at = raw.find("\r\n") + 2;
  while (at < head_end) {
    const size_t eol = raw.find("\r\n", at);
    const std::string line = raw.substr(at, eol - at);
    const size_t colon = line.find(':');
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = line.substr(colon + 2);
    at = eol + 2;
  }
  r.body = raw.substr(head_end + 4);
  return r;
}

inline std::string ReadToClose(int fd) {
  std::string raw;
  char buf[8192];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<size_t>(n));
  return raw;
}

// Sends raw bytes as one request and reads the reply to the close.
inline HttpReply RawRequest(int port, const std::string& raw) {
  const int fd = Connect(port);
  if (fd < 0) return {};
  SendRaw(fd, raw);
  HttpReply r = ParseReply(ReadToClose(fd));
  ::close(fd);
  return r;
}

inline std::string FormatRequest(const std::string& method, const std::string& path, const std::string& body,
                                 const std::string& extra_headers = "") {
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\n" + extra_headers;
  if (method == "POST") req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  return req + "\r\n" + body;
}

inline HttpReply Get(int port, const std::string& path, const std::string& extra_headers = "") {
  return RawRequest(port, FormatRequest("GET", path, "", extra_headers));
}
inline HttpReply Post(int port, const std::string& path, const json& body, const std::string& extra_headers = "") {
  return RawRequest(port, FormatRequest("POST", path, body.dump(), extra_headers));
}

// `razor serve` on the test model at an ephemeral port, stopped (SIGTERM) when this goes out of scope.
class ServerProcess {
 public:
  explicit ServerProcess(const std::string& extra_args = "") {
    const std::string model = razor::testing::DefaultModelPath();
    log_ = razor::testing_cli::ScratchDir() + "/serve_" + std::to_string(++count_) + ".log";
    const std::string cmd = "exec '" + std::string(RAZOR_BINARY) + "' serve -m '" + model + "' --port 0 " +
                            SharedFlags() + " " + extra_args + " 2>'" + log_ + "' >/dev/null </dev/null";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    const std::string marker = "listening on http://127.0.0.1:";
    for (int i = 0; i < 1200 && port_ == 0; ++i) {  // up to 60 s for the model to load
      const std::string log = razor::testing_cli::Slurp(log_);
      if (size_t at = log.find(marker); at != std::string::npos) port_ = std::atoi(log.c_str() + at + marker.size());
      else if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  std::string log() const { return razor::testing_cli::Slurp(log_); }
  // True while the process has not exited (a crash would make it false).
  bool alive() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_;
  static inline int count_ = 0;
};

// A metric's value from a /metrics body (-1 when absent).
inline double MetricValue(const std::string& metrics, const std::string& name) {
  const std::string key = "\n" + name + " ";
  const std::string text = "\n" + metrics;
  const size_t at = text.find(key);
  return at == std::string::npos ? -1 : std::atof(text.c_str() + at + key.size());
}

}  // namespace razor::testing_serve

#define RAZOR_SERVE_TEST_START(server_var, extra_args)                                  \
  if (razor::testing::DefaultModelPath().empty()) GTEST_SKIP() << "RAZOR_TEST_MODEL not set"; \
  razor::testing_serve::ServerProcess server_var(extra_args);                          \
  ASSERT_GT(server_var.port(), 0) << server_var.log()
