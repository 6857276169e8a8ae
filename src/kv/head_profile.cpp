#include "kv/head_profile.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <unistd.h>

namespace razor {
namespace {

using nlohmann::json;

uint64_t Fnv1a(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

// nlohmann messages start with "[json.exception.parse_error.101] "; users need only the rest.
std::string CleanJsonMessage(const std::string& what) {
  std::string s = what;
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find("] ");
    if (close != std::string::npos) s = s.substr(close + 2);
  }
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

json HeadList(const std::vector<KvHeadId>& heads) {
  json a = json::array();
  for (const auto& h : heads) a.push_back({h.layer, h.kv_head});
  return a;
}

// [n_layers][width] nested arrays: one row per layer reads well in a diff.
json Grid(const std::vector<float>& v, int rows, int cols) {
  json a = json::array();
  for (int r = 0; r < rows; ++r) {
    json row = json::array();
    for (int c = 0; c < cols; ++c) row.push_back(static_cast<double>(v[static_cast<size_t>(r) * cols + c]));
    a.push_back(std::move(row));
  }
  return a;
}

// A failed check inside FromJson: thrown so the reader stays linear, caught once and turned into a Status.
struct ProfileError {
  std::string message;
};

const json& Member(const json& obj, const char* key, const char* where) {
  if (!obj.is_object()) throw ProfileError{fmt::format("'{}' is not an object", where)};
  auto it = obj.find(key);
  if (it == obj.end()) throw ProfileError{fmt::format("missing '{}' in '{}'", key, where)};
  return *it;
}

template <class T>
T Get(const json& obj, const char* key, const char* where) {
  const json& v = Member(obj, key, where);
  try {
    return v.get<T>();
  } catch (const json::exception&) {
    throw ProfileError{fmt::format("'{}.{}' has the wrong type ({})", where, key, v.type_name())};
  }
}

// An integer in [lo, hi]. nlohmann's get<int> would wrap 2^40 to 0 (a valid head) and 2^32 + 1 to 1 (a
// valid version), so the value is compared in 64 bits first; floats and strings are type errors.
int64_t IntIn(const json& v, int64_t lo, int64_t hi, const std::string& what) {
  if (!v.is_number_integer()) throw ProfileError{fmt::format("'{}' must be an integer, not {}", what, v.type_name())};
  const bool ok = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(std::max<int64_t>(hi, 0)) &&
                                               static_cast<int64_t>(v.get<uint64_t>()) >= lo
                                         : v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
  if (!ok) throw ProfileError{fmt::format("'{}' = {} is out of range [{}, {}]", what, v.dump(), lo, hi)};
  return v.get<int64_t>();
}

int64_t GetInt(const json& obj, const char* key, const char* where, int64_t lo, int64_t hi) {
  return IntIn(Member(obj, key, where), lo, hi, fmt::format("{}.{}", where, key));
}

double GetFinite(const json& obj, const char* key, const char* where, double lo, double hi) {
  const double d = Get<double>(obj, key, where);
  if (!std::isfinite(d) || d < lo || d > hi)
    throw ProfileError{fmt::format("'{}.{}' = {} is out of range [{}, {}]", where, key, d, lo, hi)};
  return d;
}

std::vector<float> ReadGrid(const json& obj, const char* key, const char* where, int rows, int cols) {
  const json& g = Member(obj, key, where);
  if (!g.is_array() || static_cast<int>(g.size()) != rows)
    throw ProfileError{fmt::format("'{}.{}' must be {} rows (one per layer)", where, key, rows)};
  std::vector<float> out;
  out.reserve(static_cast<size_t>(rows) * cols);
  for (int r = 0; r < rows; ++r) {
    const json& row = g[r];
    if (!row.is_array() || static_cast<int>(row.size()) != cols)
      throw ProfileError{fmt::format("'{}.{}' row {} must hold {} scores", where, key, r, cols)};
    for (const json& x : row) {
      if (!x.is_number()) throw ProfileError{fmt::format("'{}.{}' row {} holds a non-number", where, key, r)};
      const double d = x.get<double>();
      if (!std::isfinite(d) || d < -1e-3 || d > 1.0 + 1e-3)
        throw ProfileError{fmt::format("'{}.{}' row {} holds {} (scores are attention mass in [0, 1])", where, key, r, d)};
      out.push_back(static_cast<float>(d));
    }
  }
  return out;
}

std::vector<KvHeadId> ReadHeads(const json& obj, const char* key, const char* where, int n_layers, int n_kv) {
  const json& a = Member(obj, key, where);
  if (!a.is_array()) throw ProfileError{fmt::format("'{}.{}' must be a list of [layer, kv_head]", where, key)};
  std::vector<KvHeadId> out;
  for (const json& e : a) {
    if (!e.is_array() || e.size() != 2 || !e[0].is_number_integer() || !e[1].is_number_integer())
      throw ProfileError{fmt::format("'{}.{}' entries must be [layer, kv_head] integer pairs", where, key)};
    // Compared as JSON numbers, not after a conversion to int that would wrap 2^40 to a valid head.
    auto inside = [](const json& x, int n) {
      return x.is_number_unsigned() ? x.get<uint64_t>() < static_cast<uint64_t>(n)
                                    : x.get<int64_t>() >= 0 && x.get<int64_t>() < n;
    };
    if (!inside(e[0], n_layers) || !inside(e[1], n_kv))
      throw ProfileError{fmt::format("'{}.{}' names head [{}, {}] outside {} layers x {} KV heads", where, key,
                                     e[0].dump(), e[1].dump(), n_layers, n_kv)};
    out.push_back(KvHeadId{e[0].get<int>(), e[1].get<int>()});
  }
  return out;
}

}  // namespace

std::string ModelIdentity::Describe() const {
  return fmt::format("{}{} ({} layers, {} heads / {} KV heads, head dim {}, {})", architecture,
                     name.empty() ? "" : " '" + name + "'", n_layers, n_heads, n_kv_heads, head_dim,
                     fingerprint.empty() ? "no fingerprint" : fingerprint);
}

bool ModelIdentity::SameShape(const ModelIdentity& o) const {
  return architecture == o.architecture && n_layers == o.n_layers && n_heads == o.n_heads &&
         n_kv_heads == o.n_kv_heads && head_dim == o.head_dim;
}

std::string TensorTableFingerprint(const std::vector<const TensorView*>& tensors) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const TensorView* t : tensors) {
    h = Fnv1a(h, t->name.data(), t->name.size() + 1);  // + the terminating NUL separates names
    const uint32_t type = static_cast<uint32_t>(t->type);
    h = Fnv1a(h, &type, sizeof type);
    const uint32_t dims = static_cast<uint32_t>(t->shape.size());
    h = Fnv1a(h, &dims, sizeof dims);
    for (int64_t d : t->shape) h = Fnv1a(h, &d, sizeof d);
  }
  return fmt::format("fnv1a64:{:016x}", h);
}

int HeadsForRatio(double ratio, int total) {
  if (!(ratio > 0) || total <= 0) return 0;
  const int n = static_cast<int>(std::ceil(ratio * total - 1e-9));
  return std::clamp(n, 0, total);
}

bool HeadProfile::IsRetrieval(int layer, int kv_head) const {
  return std::binary_search(retrieval.begin(), retrieval.end(), KvHeadId{layer, kv_head});
}

std::vector<bool> HeadProfile::RetrievalMask() const {
  std::vector<bool> mask(static_cast<size_t>(total_kv_heads()), false);
  for (const auto& h : retrieval) mask[static_cast<size_t>(h.layer) * model.n_kv_heads + h.kv_head] = true;
  return mask;
}

std::vector<KvHeadId> HeadProfile::Ranked(const std::vector<float>& kv_scores) const {
  std::vector<int> order(kv_scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return kv_scores[a] > kv_scores[b]; });
  std::vector<KvHeadId> out;
  out.reserve(order.size());
  for (int i : order) out.push_back({i / model.n_kv_heads, i % model.n_kv_heads});
  return out;
}

void HeadProfile::SelectRetrievalHeads() {
  const int group = model.n_heads / model.n_kv_heads;
  const int total = total_kv_heads();
  kv_induction.assign(total, 0.0f);
  kv_echo.assign(total, 0.0f);
  for (int l = 0; l < model.n_layers; ++l)
    for (int h = 0; h < model.n_heads; ++h) {
      const size_t kv = static_cast<size_t>(l) * model.n_kv_heads + h / group;
      const size_t q = static_cast<size_t>(l) * model.n_heads + h;
      kv_induction[kv] = std::max(kv_induction[kv], q_induction[q]);
      kv_echo[kv] = std::max(kv_echo[kv], q_echo[q]);
    }
  by_induction = Ranked(kv_induction);
  by_induction.resize(HeadsForRatio(params.induction_ratio, total));
  by_echo = Ranked(kv_echo);
  by_echo.resize(HeadsForRatio(params.echo_ratio, total));
  retrieval = by_induction;
  retrieval.insert(retrieval.end(), by_echo.begin(), by_echo.end());
  std::sort(retrieval.begin(), retrieval.end());
  retrieval.erase(std::unique(retrieval.begin(), retrieval.end()), retrieval.end());
}

Status HeadProfile::CheckMatches(const ModelIdentity& m, bool require_same_fingerprint) const {
  if (!model.SameShape(m))
    return Err(fmt::format("head profile is for {}, but the model is {}", model.Describe(), m.Describe()));
  if (require_same_fingerprint && model.fingerprint != m.fingerprint)
    return Err(fmt::format("head profile is for another checkpoint of the same shape: profile {}, model {}",
                           model.Describe(), m.Describe()));
  return Status::Ok();
}

std::string HeadProfile::ToJson() const {
  const ModelIdentity& m = model;
  json j;
  j["format"] = kFormatName;
  j["version"] = kFormatVersion;
  j["model"] = {{"architecture", m.architecture}, {"name", m.name},       {"n_layers", m.n_layers},
                {"n_heads", m.n_heads},           {"n_kv_heads", m.n_kv_heads}, {"head_dim", m.head_dim},
                {"fingerprint", m.fingerprint}};
  j["params"] = {{"induction_ratio", params.induction_ratio},
                 {"echo_ratio", params.echo_ratio},
                 {"block", params.block},
                 {"repeats", params.repeats},
                 {"seed", params.seed},
                 {"token_range", {params.token_lo, params.token_hi}},
                 {"bos_id", params.bos_id}};
  j["kv_heads"] = {{"induction", Grid(kv_induction, m.n_layers, m.n_kv_heads)},
                   {"echo", Grid(kv_echo, m.n_layers, m.n_kv_heads)}};
  j["query_heads"] = {{"induction", Grid(q_induction, m.n_layers, m.n_heads)},
                      {"echo", Grid(q_echo, m.n_layers, m.n_heads)}};
  j["selected"] = {{"by_induction", HeadList(by_induction)}, {"by_echo", HeadList(by_echo)}};
  j["retrieval_kv_heads"] = HeadList(retrieval);
  if (!alibi_spans.heads.empty()) {
    json heads = json::array();
    for (const AlibiHeadSpan& h : alibi_spans.heads) {
      // JSON has no infinity: a span of inf (slope 0) is written as null.
      json span = std::isfinite(h.span) ? json(h.span) : json(nullptr);
      heads.push_back({{"head", h.head}, {"slope", h.slope}, {"bound", h.bound}, {"span", span},
                       {"retrieval", h.retrieval}});
    }
    j["alibi_spans"] = {{"epsilon", alibi_spans.epsilon}, {"context", alibi_spans.context}, {"heads", heads}};
  }
  return j.dump(1) + "\n";
}

Result<HeadProfile> HeadProfile::FromJson(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    return Err(fmt::format("{}: not a valid head profile (bad JSON: {})", origin, CleanJsonMessage(e.what())));
  }
  HeadProfile p;
  try {
    if (!j.is_object() || !j.contains("format") || j["format"] != kFormatName)
      throw ProfileError{fmt::format("no \"format\": \"{}\" field", kFormatName)};
    const int64_t version = GetInt(j, "version", "profile", INT64_MIN, INT64_MAX);
    if (version != kFormatVersion)
      throw ProfileError{fmt::format("format version {} is not supported (this razor reads version {})", version,
                                     kFormatVersion)};
    const json& jm = Member(j, "model", "profile");
    ModelIdentity& m = p.model;
    m.architecture = Get<std::string>(jm, "architecture", "model");
    m.name = Get<std::string>(jm, "name", "model");
    // The same limits as ModelConfig::Validate (kv does not include model): layers, heads, head_dim.
    m.n_layers = static_cast<int>(GetInt(jm, "n_layers", "model", 1, 1024));
    m.n_heads = static_cast<int>(GetInt(jm, "n_heads", "model", 1, 1 << 12));
    m.n_kv_heads = static_cast<int>(GetInt(jm, "n_kv_heads", "model", 1, 1 << 12));
    m.head_dim = static_cast<int>(GetInt(jm, "head_dim", "model", 1, 1 << 12));
    m.fingerprint = Get<std::string>(jm, "fingerprint", "model");
    if (m.n_heads % m.n_kv_heads != 0) throw ProfileError{fmt::format("impossible model shape: {}", m.Describe())};

    const json& jp = Member(j, "params", "profile");
    p.params.induction_ratio = GetFinite(jp, "induction_ratio", "params", 0.0, 1.0);
    p.params.echo_ratio = GetFinite(jp, "echo_ratio", "params", 0.0, 1.0);
    p.params.block = GetInt(jp, "block", "params", 1, int64_t{1} << 30);
    p.params.repeats = static_cast<int>(GetInt(jp, "repeats", "params", 1, 1 << 20));
    const json& seed = Member(jp, "seed", "params");
    if (!seed.is_number_unsigned()) throw ProfileError{"'params.seed' must be a non-negative integer"};
    p.params.seed = seed.get<uint64_t>();
    const json& range = Member(jp, "token_range", "params");
    if (!range.is_array() || range.size() != 2) throw ProfileError{"'params.token_range' must be [lo, hi]"};
    p.params.token_lo = static_cast<int32_t>(IntIn(range[0], 0, INT32_MAX, "params.token_range[0]"));
    p.params.token_hi = static_cast<int32_t>(IntIn(range[1], 0, INT32_MAX, "params.token_range[1]"));
    p.params.bos_id = static_cast<int32_t>(GetInt(jp, "bos_id", "params", -1, INT32_MAX));

    const json& jk = Member(j, "kv_heads", "profile");
    p.kv_induction = ReadGrid(jk, "induction", "kv_heads", m.n_layers, m.n_kv_heads);
    p.kv_echo = ReadGrid(jk, "echo", "kv_heads", m.n_layers, m.n_kv_heads);
    const json& jq = Member(j, "query_heads", "profile");
    p.q_induction = ReadGrid(jq, "induction", "query_heads", m.n_layers, m.n_heads);
    p.q_echo = ReadGrid(jq, "echo", "query_heads", m.n_layers, m.n_heads);
    const json& js = Member(j, "selected", "profile");
    p.by_induction = ReadHeads(js, "by_induction", "selected", m.n_layers, m.n_kv_heads);
    p.by_echo = ReadHeads(js, "by_echo", "selected", m.n_layers, m.n_kv_heads);
    p.retrieval = ReadHeads(j, "retrieval_kv_heads", "profile", m.n_layers, m.n_kv_heads);
    if (j.contains("alibi_spans")) {
      const json& ja = j["alibi_spans"];
      p.alibi_spans.epsilon = GetFinite(ja, "epsilon", "alibi_spans", 0.0, 1.0);
      p.alibi_spans.context = GetInt(ja, "context", "alibi_spans", 0, INT64_MAX);
      const json& jh = Member(ja, "heads", "alibi_spans");
      if (!jh.is_array() || static_cast<int>(jh.size()) != m.n_heads)
        throw ProfileError{fmt::format("'alibi_spans.heads' must be an array of {} heads", m.n_heads)};
      for (const json& e : jh) {
        AlibiHeadSpan h;
        h.head = static_cast<int>(GetInt(e, "head", "alibi_spans.heads", 0, m.n_heads - 1));
        h.slope = GetFinite(e, "slope", "alibi_spans.heads", -1e300, 1e300);
        h.bound = GetFinite(e, "bound", "alibi_spans.heads", -1e300, 1e300);
        const json& span = Member(e, "span", "alibi_spans.heads");
        if (!span.is_null() && !span.is_number()) throw ProfileError{"'alibi_spans.heads.span' must be a number or null"};
        h.span = span.is_null() ? std::numeric_limits<double>::infinity() : span.get<double>();
        h.retrieval = Get<bool>(e, "retrieval", "alibi_spans.heads");
        p.alibi_spans.heads.push_back(h);
      }
    }
    // Retrieval heads may be edited by hand (add a layer's heads); keep them sorted and unique.
    std::sort(p.retrieval.begin(), p.retrieval.end());
    p.retrieval.erase(std::unique(p.retrieval.begin(), p.retrieval.end()), p.retrieval.end());
  } catch (const ProfileError& e) {
    return Err(fmt::format("{}: not a valid head profile: {}", origin, e.message));
  } catch (const json::exception& e) {
    return Err(fmt::format("{}: not a valid head profile: {}", origin, CleanJsonMessage(e.what())));
  }
  return p;
}

Result<HeadProfile> HeadProfile::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Err(fmt::format("{}: cannot open head profile", path));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Err(fmt::format("{}: read error", path));
  return FromJson(ss.str(), path);
}

Status HeadProfile::Save(const std::string& path, bool overwrite) const {
  const std::string text = ToJson();
  std::error_code ec;
  if (!overwrite && std::filesystem::exists(path, ec)) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str() == text) return Status::Ok();  // already holds exactly this profile
    auto old = FromJson(ss.str(), path);
    const std::string what = old ? "a different head profile (for " + old->model.Describe() + ")" : "something else";
    return Err(fmt::format("{} already exists and holds {}; not overwriting it (choose another path or overwrite)",
                           path, what));
  }
  const std::string tmp = fmt::format("{}.tmp.{}", path, static_cast<long>(getpid()));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Err(fmt::format("{}: cannot write ({})", tmp, std::strerror(errno)));
    out << text;
    out.flush();
    if (!out) {
      std::filesystem::remove(tmp, ec);
      return Err(fmt::format("{}: write failed", tmp));
    }
  }
  std::error_code renamed;
  std::filesystem::rename(tmp, path, renamed);
  if (renamed) {
    std::filesystem::remove(tmp, ec);  // its own code: reusing `renamed` made the message "(Success)"
    return Err(fmt::format("{}: cannot write ({})", path, renamed.message()));
  }
  return Status::Ok();
}

}  // namespace razor
