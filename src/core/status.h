// Error values for the edges of the program (files, flags, user input).
// Internal invariants use assert; anything a user can cause returns a Status / Result<T>.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace razor {

class Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(std::string message) {
    Status s;
    s.ok_ = false;
    s.message_ = std::move(message);
    return s;
  }
  bool ok() const { return ok_; }
  const std::string& message() const { return message_; }

 private:
  bool ok_ = true;
  std::string message_;
};

// A value or an error message. Use `if (!r) return r.status();` to propagate.
template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}              // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {         // NOLINT: implicit by design
    assert(!std::get<Status>(v_).ok() && "Result built from an Ok status");
  }
  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }
  const std::string& error() const { return std::get<Status>(v_).message(); }

 private:
  std::variant<T, Status> v_;
};

inline Status Err(std::string message) { return Status::Error(std::move(message)); }

// A string from a file or a request, fit to quote inside a one-line error: control bytes as \xNN, at most
// max_bytes of it (then "...").
inline std::string ForMessage(const std::string& s, size_t max_bytes = 80) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < s.size() && i < max_bytes; ++i) {
    const auto ch = static_cast<unsigned char>(s[i]);
    if (ch < 0x20 || ch == 0x7f) {
      out += "\\x";
      out += hex[ch >> 4];
      out += hex[ch & 15];
    } else {
      out += static_cast<char>(ch);
    }
  }
  if (s.size() > max_bytes) out += "...";
  return out;
}

}  // namespace razor

// Propagate an error Status from an expression returning Status.
#define RAZOR_RETURN_IF_ERROR(expr)         \
  do {                                      \
    ::razor::Status _st = (expr);           \
    if (!_st.ok()) return _st;              \
  } while (0)

#define RAZOR_CONCAT_INNER(a, b) a##b
#define RAZOR_CONCAT(a, b) RAZOR_CONCAT_INNER(a, b)
// `RAZOR_ASSIGN_OR_RETURN(auto x, MakeX());`
#define RAZOR_ASSIGN_OR_RETURN(lhs, expr)                         \
  auto RAZOR_CONCAT(_res_, __LINE__) = (expr);                    \
  if (!RAZOR_CONCAT(_res_, __LINE__)) return RAZOR_CONCAT(_res_, __LINE__).status(); \
  lhs = std::move(RAZOR_CONCAT(_res_, __LINE__)).value()
