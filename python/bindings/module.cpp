// razor._razor: the engine session bound for Python (nanobind). Every call that computes releases the GIL;
// generation and logits poll Python's signal handlers between steps, so Ctrl-C stops them with
// KeyboardInterrupt; an engine error becomes razor.RazorError carrying the engine's one-line message.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <stdexcept>

#include "engine_session.h"
#include "kv/head_profile.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace razor::py {
namespace {

struct EngineError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// After a call that ran without the GIL: a KeyboardInterrupt the signal poll raised wins over the engine's
// "cancelled"; any other failure is the engine's message.
void Raise(const Status& st) {
  if (PyErr_Occurred()) throw nb::python_error();
  throw EngineError(st.message());
}
void Check(const Status& st) {
  if (!st.ok()) Raise(st);
}
template <class T>
T Unwrap(Result<T> r) {
  if (!r.ok()) Raise(r.status());
  return std::move(r).value();
}

// Called without the GIL, between steps: runs Python's signal handlers (Ctrl-C raises KeyboardInterrupt,
// left pending for Raise above).
bool InterruptPending() {
  nb::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

template <class T>
nb::ndarray<nb::numpy, T> ToNumpy(std::vector<T> values, std::vector<size_t> shape) {
  auto* owned = new std::vector<T>(std::move(values));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::ndarray<nb::numpy, T>(owned->data(), shape.size(), shape.data(), owner);
}

nb::ndarray<nb::numpy, int32_t> HeadList(const std::vector<KvHeadId>& heads) {
  std::vector<int32_t> flat;
  for (const KvHeadId& h : heads) {
    flat.push_back(h.layer);
    flat.push_back(h.kv_head);
  }
  return ToNumpy(std::move(flat), {heads.size(), 2});
}

nb::dict ProfileDict(const HeadProfile& p) {
  const size_t L = p.model.n_layers, Hkv = p.model.n_kv_heads, Hq = p.model.n_heads;
  nb::dict d;
  d["kv_induction"] = ToNumpy(p.kv_induction, {L, Hkv});
  d["kv_echo"] = ToNumpy(p.kv_echo, {L, Hkv});
  d["q_induction"] = ToNumpy(p.q_induction, {L, Hq});
  d["q_echo"] = ToNumpy(p.q_echo, {L, Hq});
  d["retrieval"] = HeadList(p.retrieval);
  d["by_induction"] = HeadList(p.by_induction);
  d["by_echo"] = HeadList(p.by_echo);
  nb::dict params;
  params["induction_ratio"] = p.params.induction_ratio;
  params["echo_ratio"] = p.params.echo_ratio;
  params["block"] = p.params.block;
  params["repeats"] = p.params.repeats;
  params["seed"] = p.params.seed;
  d["params"] = params;
  nb::dict model;
  model["architecture"] = p.model.architecture;
  model["name"] = p.model.name;
  model["n_layers"] = p.model.n_layers;
  model["n_heads"] = p.model.n_heads;
  model["n_kv_heads"] = p.model.n_kv_heads;
  model["head_dim"] = p.model.head_dim;
  model["fingerprint"] = p.model.fingerprint;
  d["model"] = model;
  d["json"] = p.ToJson();
  return d;
}

nb::dict KvDict(const KvReport& r) {
  const size_t L = r.n_layers, H = r.n_kv_heads;
  nb::dict d;
  d["mode"] = r.mode;
  d["sequence_tokens"] = r.sequence_tokens;
  d["bytes"] = r.bytes;
  d["full_bytes"] = r.full_bytes;
  d["reduction"] = r.full_bytes > 0 ? 1.0 - double(r.bytes) / double(r.full_bytes) : 0.0;
  d["heads"] = r.stats.heads;
  d["heads_full"] = r.stats.heads_full;
  d["heads_compressed"] = r.stats.heads_compressed;
  d["window"] = r.stats.window;
  d["tokens_dropped"] = r.stats.tokens_dropped;
  d["tokens_kept"] = r.stats.tokens_kept;
  d["compensation_bytes"] = r.stats.compensation_bytes;
  d["index_bytes"] = r.stats.index_bytes;
  d["head_tokens"] = ToNumpy(r.head_tokens, {L, H});
  d["head_bytes"] = ToNumpy(r.head_bytes, {L, H});
  d["head_compressed"] = ToNumpy(r.head_compressed, {L, H});
  return d;
}

nb::dict ResultDict(const GenerationResult& g) {
  nb::dict d;
  d["text"] = g.text;
  d["token_ids"] = g.output_ids;
  d["stop_reason"] = g.stop_reason;
  nb::dict t;
  t["prompt_tokens"] = g.prompt_tokens;
  t["generated_tokens"] = g.output_ids.size();
  t["prefill_s"] = g.prefill_seconds;
  t["decode_s"] = g.decode_seconds;
  t["prefill_tok_s"] = g.prefill_tok_s();
  t["decode_tok_s"] = g.decode_tok_s();
  d["timings"] = t;
  return d;
}

}  // namespace
}  // namespace razor::py

NB_MODULE(_razor, m) {
  using namespace razor;
  using namespace razor::py;
  m.doc() = "razor's engine, bound for Python (use the razor package: razor.LLM).";
  static nb::exception<EngineError> razor_error(m, "RazorError", PyExc_RuntimeError);
  m.def("built_with_cuda", &BuiltWithCuda, "Whether this build has the CUDA backend.");

  nb::class_<SessionOptions>(m, "SessionOptions", "razor.LLM's arguments, the model already a path.")
      .def(nb::init<>())
      .def_rw("model_path", &SessionOptions::model_path)
      .def_rw("device", &SessionOptions::device)
      .def_rw("kv", &SessionOptions::kv)
      .def_rw("kv_type", &SessionOptions::kv_type)
      .def_rw("threads", &SessionOptions::threads)
      .def_rw("context", &SessionOptions::context)
      .def_rw("kv_pool_mib", &SessionOptions::kv_pool_mib)
      .def_rw("exact", &SessionOptions::exact)
      .def_rw("sinks", &SessionOptions::sinks)
      .def_rw("window_min", &SessionOptions::window_min)
      .def_rw("window_frac", &SessionOptions::window_frac)
      .def_rw("compensation", &SessionOptions::compensation)
      .def_rw("echo", &SessionOptions::echo)
      .def_rw("induction_ratio", &SessionOptions::induction_ratio)
      .def_rw("decode_fold", &SessionOptions::decode_fold)
      .def_rw("streaming_window", &SessionOptions::streaming_window)
      .def_rw("profile_path", &SessionOptions::profile_path);

  nb::class_<Generation>(m, "Generation", "One generation, a token at a time.")
      .def(
          "next",
          [](Generation& g) {
            Result<std::optional<std::string>> r = Err("not run");
            {
              nb::gil_scoped_release release;
              r = g.Next(InterruptPending);
            }
            return Unwrap(std::move(r));
          },
          "Runs the prompt on the first call, then one token; the text now safe to show, or None at the end.")
      .def("result", [](const Generation& g) { return ResultDict(g.result()); }, "Text, ids, stop reason, timings.")
      .def("kv", [](const Generation& g) { return KvDict(g.kv()); }, "KV statistics of this generation's cache.")
      .def_prop_ro("done", &Generation::done);

  nb::class_<Session>(m, "Session", "One model and engine.")
      .def_static(
          "open",
          [](const SessionOptions& o) {
            Result<std::unique_ptr<Session>> r = Err("not run");
            {
              nb::gil_scoped_release release;
              r = Session::Open(o);
            }
            return Unwrap(std::move(r));
          },
          "options"_a, "Loads the model and opens the engine (errors: razor.RazorError).")
      .def_prop_ro("backend", &Session::backend_name)
      .def_prop_ro("vocab_size", [](const Session& s) { return s.config().vocab_size; })
      .def_prop_ro("context", [](Session& s) { return s.engine().context(); })
      .def_prop_ro("model_name", [](const Session& s) { return s.config().name; })
      .def_prop_ro("n_layers", [](const Session& s) { return s.config().n_layers; })
      .def_prop_ro("n_kv_heads", [](const Session& s) { return s.config().n_kv_heads; })
      .def_prop_ro("bos_id", [](const Session& s) { const auto& t = s.model().tokenizer; return t ? t->bos_id() : -1; })
      .def_prop_ro("eos_id", [](const Session& s) { const auto& t = s.model().tokenizer; return t ? t->eos_id() : -1; })
      .def_prop_ro("full_kv_bytes_per_token", [](Session& s) { return s.engine().full_kv_bytes_per_token(); })
      .def(
          "tokenize",
          [](const Session& s, const std::string& text, bool add_bos, bool parse_special) {
            Result<std::vector<int32_t>> r = Err("not run");
            {
              nb::gil_scoped_release release;
              r = s.Tokenize(text, add_bos, parse_special);
            }
            return Unwrap(std::move(r));
          },
          "text"_a, "add_bos"_a, "parse_special"_a)
      .def(
          "detokenize", [](const Session& s, const std::vector<int32_t>& ids) { return Unwrap(s.Detokenize(ids)); },
          "ids"_a)
      .def(
          "apply_chat",
          [](const Session& s, const std::vector<std::pair<std::string, std::string>>& messages) {
            return Unwrap(s.ApplyChat(messages));
          },
          "messages"_a)
      .def(
          "logits",
          [](Session& s, const std::vector<int32_t>& ids) {
            Result<std::vector<float>> r = Err("not run");
            {
              nb::gil_scoped_release release;
              r = s.Logits(ids, InterruptPending);
            }
            const size_t vocab = s.config().vocab_size;
            return ToNumpy(Unwrap(std::move(r)), {ids.size(), vocab});
          },
          "ids"_a, "[len(ids), vocab] float32 logits of every position.")
      .def(
          "score_continuation",
          [](Session& s, const std::vector<int32_t>& context, const std::vector<int32_t>& continuation) {
            Result<Session::Scored> r = Err("not run");
            {
              nb::gil_scoped_release release;
              r = s.ScoreContinuation(context, continuation, InterruptPending);
            }
            Session::Scored scored = Unwrap(std::move(r));
            std::vector<bool> greedy(scored.greedy.begin(), scored.greedy.end());
            return std::make_pair(std::move(scored.logprob), std::move(greedy));
          },
          "context"_a, "continuation"_a,
          "(log p of each continuation token, whether each is the argmax) after the context, under the KV policy.")
      .def(
          "generate",
          [](Session& s, const std::vector<int32_t>& prompt, int max_tokens, float temperature, float top_p, int top_k,
             float min_p, float repeat_penalty, const std::vector<std::string>& stop, uint64_t seed, bool stop_at_eog) {
            SamplingOptions o;
            o.max_tokens = max_tokens;
            o.sampler.temperature = temperature;
            o.sampler.top_p = top_p;
            o.sampler.top_k = top_k;
            o.sampler.min_p = min_p;
            o.sampler.repeat_penalty = repeat_penalty;
            o.sampler.seed = seed;
            o.stop = stop;
            o.stop_at_eog = stop_at_eog;
            Result<std::unique_ptr<Generation>> r = Err("not run");
            {
              nb::gil_scoped_release release;
              r = s.Generate(prompt, o);
            }
            return Unwrap(std::move(r));
          },
          "prompt"_a, "max_tokens"_a, "temperature"_a, "top_p"_a, "top_k"_a, "min_p"_a, "repeat_penalty"_a, "stop"_a,
          "seed"_a, "stop_at_eog"_a, nb::keep_alive<0, 1>(), "A Generation of these prompt ids (not started).")
      .def(
          "ensure_profile",
          [](Session& s, std::function<void(int64_t, int64_t)> on_progress) {
            Result<const HeadProfile*> r = Err("not run");
            {
              nb::gil_scoped_release release;
              std::function<void(int64_t, int64_t)> progress;
              if (on_progress)
                progress = [&on_progress](int64_t done, int64_t total) {
                  nb::gil_scoped_acquire gil;
                  try {
                    on_progress(done, total);
                  } catch (nb::python_error& e) {  // a failing progress callback does not stop the profile
                    e.discard_as_unraisable("razor: profile progress callback");
                  }
                };
              r = s.EnsureProfile(progress);
            }
            return ProfileDict(*Unwrap(std::move(r)));
          },
          "on_progress"_a.none(), "The head profile (loaded, or made now and cached beside the model).")
      .def(
          "make_profile",
          [](Session& s, double induction_ratio, double echo_ratio, int64_t block, int repeats, uint64_t seed) {
            HeadProfilerOptions o;
            o.induction_ratio = induction_ratio;
            o.echo_ratio = echo_ratio;
            o.block = block;
            o.repeats = repeats;
            o.seed = seed;
            Result<const HeadProfile*> r = Err("not run");
            {
              nb::gil_scoped_release release;
              r = s.MakeProfile(o);
            }
            return ProfileDict(*Unwrap(std::move(r)));
          },
          "induction_ratio"_a, "echo_ratio"_a, "block"_a, "repeats"_a, "seed"_a,
          "Profiles the heads now with these settings and uses the result for this session's sequences.")
      .def("last_kv", [](const Session& s) { return KvDict(Unwrap(s.LastKv())); },
           "KV statistics of the last generation's cache.");
}
