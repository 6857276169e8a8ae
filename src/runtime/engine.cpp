#include "runtime/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "ops/cpu_backend.h"
#if RAZOR_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace razor {

bool BuiltWithCuda() { return RAZOR_WITH_CUDA != 0; }

Result<EngineDevice> ParseEngineDevice(std::string_view name) {
  if (name == "auto") return EngineDevice::kAuto;
  if (name == "cpu") return EngineDevice::kCpu;
  if (name == "cuda") return EngineDevice::kCuda;
  return Err(fmt::format("unknown device '{}' (expected auto, cpu or cuda)", name));
}

EngineDevice ResolveEngineDevice(EngineDevice d, MathMode math) {
  if (d != EngineDevice::kAuto) return d;
#if RAZOR_WITH_CUDA
  if (math == MathMode::kFast && CudaDeviceAvailable(nullptr)) return EngineDevice::kCuda;
#endif
  return EngineDevice::kCpu;
}

namespace {
// Why the CUDA backend cannot run this model; empty when it can.
std::string CudaCannotRun(const ModelConfig& c) {
  // The CUDA attention kernels have no sliding window (Gemma 3's local layers).
  if (c.sliding_window > 0)
    return fmt::format("{} uses sliding-window attention, which the CUDA backend does not run yet (use --device cpu)",
                       ArchitectureName(c.arch));
  if (c.head_dim % 8 != 0 || c.head_dim > 256)
    return fmt::format("head_dim {} is not supported (a multiple of 8, at most 256)", c.head_dim);
  return {};
}
}  // namespace

EngineDevice ResolveEngineDevice(EngineDevice d, MathMode math, const ModelConfig& c) {
  const EngineDevice r = ResolveEngineDevice(d, math);
  if (d == EngineDevice::kAuto && r == EngineDevice::kCuda && !CudaCannotRun(c).empty()) return EngineDevice::kCpu;
  return r;
}

double MeasureGpuCopyBandwidth() {
#if RAZOR_WITH_CUDA
  return CudaDeviceAvailable(nullptr) ? MeasureCudaCopyBandwidth() : 0.0;
#else
  return 0.0;
#endif
}

namespace {

// The backend the options ask for; Err when a CUDA device is asked for and cannot be had.
Result<std::unique_ptr<Backend>> MakeBackend(const EngineOptions& o, const ModelConfig& c, ThreadPool& pool) {
  const bool cuda = ResolveEngineDevice(o.device, o.math, c) == EngineDevice::kCuda;
#if RAZOR_WITH_CUDA
  if (cuda) {
    if (o.math != MathMode::kFast) return Err("--device cuda runs the default math only (--exact and --int8 are CPU kernels)");
    if (std::string why = CudaCannotRun(c); !why.empty()) return Err("--device cuda: " + why);
    return MakeCudaBackend(o.math);
  }
#else
  if (cuda)
    return Err("--device cuda: this razor was built without CUDA (configure with -DRAZOR_CUDA=ON, as scripts/setup.sh does)");
#endif
  return std::unique_ptr<Backend>(new CpuBackend(pool, o.math));
}

}  // namespace

Sequence::~Sequence() = default;

void Sequence::Reset() {
  cache_->Clear();
  tokens_.clear();
  logits_.clear();
  prefill_ = {};
  failed_ = false;
}

Result<std::unique_ptr<Engine>> Engine::Open(std::shared_ptr<LoadedModel> model, const EngineOptions& o) {
  if (!model) return Err("no model");
  const ModelConfig& c = model->config;
  if (o.kv_block_tokens < 1 || o.kv_block_tokens > 4096)
    return Err(fmt::format("KV block of {} tokens: expected 1 to 4096", o.kv_block_tokens));
  if (o.context < 0) return Err(fmt::format("context of {} tokens: expected a positive number", o.context));
  std::unique_ptr<Engine> e(new Engine());
  e->model_ = std::move(model);
  e->options_ = o;
  e->context_ = std::min<int64_t>(o.context > 0 ? o.context : c.context_length, INT32_MAX);
  const int threads = o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  e->pool_ = std::make_unique<ThreadPool>(threads);
  RAZOR_ASSIGN_OR_RETURN(e->backend_, MakeBackend(o, c, *e->pool_));
  // Weights first (a device copies them now), so that the KV pool's default capacity is what remains. A model
  // the GPU cannot hold runs on the CPU when the device was left to auto; asked for explicitly, it is an error.
  if (Status st = e->backend_->PrepareWeights(WeightMatrices(e->model_->weights)); !st.ok()) {
    if (o.device != EngineDevice::kAuto || e->backend_->device() == DeviceKind::kCpu) return st;
    e->backend_ = std::make_unique<CpuBackend>(*e->pool_, o.math);
  }
  e->transformer_ = std::make_unique<Transformer>(c, e->model_->weights, *e->backend_);
  // A compressing prompt runs in one forward call, whose residual stream holds every row: [context, dim] fp32.
  const size_t residual_bytes = static_cast<size_t>(e->context_) * c.dim * sizeof(float);
  if (e->backend_->device() != DeviceKind::kCpu && o.kv_pool_bytes == 0 &&
      e->backend_->FreeDeviceBytes() < residual_bytes + (size_t{1} << 30))
    return Err(fmt::format("a context of {} tokens needs {:.1f} GiB of device memory for one prompt's residual stream, "
                           "but {:.1f} GiB are free after the weights (lower --ctx)",
                           e->context_, residual_bytes / double(1 << 30),
                           e->backend_->FreeDeviceBytes() / double(1 << 30)));
  e->kv_pool_ = e->backend_->NewKvPool(RazorKvCache::block_bytes(o.kv_block_tokens, c.head_dim, o.kv_type),
                                       o.kv_pool_bytes, residual_bytes);
  if (e->kv_pool_->capacity_blocks() == 0)
    return Err(o.kv_pool_bytes == 0 ? std::string("cannot reserve address space for the KV pool")
                                    : fmt::format("a KV pool of {} MiB holds not one block of {} KiB (raise --kv-pool-mib)",
                                                  o.kv_pool_bytes >> 20,
                                                  RazorKvCache::block_bytes(o.kv_block_tokens, c.head_dim, o.kv_type) >> 10));
  return e;
}

Engine::~Engine() = default;

size_t Engine::full_kv_bytes_per_token() const {
  return config().kv_bytes_per_token(KvTypeBytes(options_.kv_type));
}

Status Engine::EnsureProfile(const KvCacheOptions& kv, const std::function<void(int64_t, int64_t)>& on_progress) {
  if (profile_ || !KvOptionsNeedProfile(kv)) return Status::Ok();
  KvCacheOptions o = kv;
  o.on_profile_progress = on_progress;
  RAZOR_ASSIGN_OR_RETURN(HeadProfile p, LoadOrMakeProfile(*model_, o, *pool_));
  profile_ = std::move(p);
  return Status::Ok();
}

Status Engine::SetProfile(HeadProfile profile) {
  RAZOR_RETURN_IF_ERROR(profile.CheckMatches(ModelIdentityOf(*model_)));
  profile_ = std::move(profile);
  return Status::Ok();
}

Result<HeadProfile> Engine::ProfileHeads(const HeadProfilerOptions& options) {
  return razor::ProfileHeads(*model_, *pool_, options_.math, options);
}

Result<KvHeadPolicy> Engine::PolicyFor(const SequenceOptions& so) const {
  KvCacheOptions kv = so.kv;
  kv.kv_type = options_.kv_type;
  kv.razor.block_tokens = options_.kv_block_tokens;
  if (KvOptionsNeedProfile(kv) && !profile_)
    return Err(fmt::format("the {} KV policy needs the head profile: call EnsureProfile first", KvModeName(kv.mode)));
  if (so.capacity < 0 || so.capacity > context_)
    return Err(fmt::format("a sequence of {} tokens does not fit the context of {}", so.capacity, context_));
  return MakeKvPolicy(*model_, kv, so.capacity > 0 ? so.capacity : context_, so.prompt_tokens, profile());
}

Result<size_t> Engine::PlannedPeakKvBytes(const SequenceOptions& so, int64_t total_tokens) const {
  RAZOR_ASSIGN_OR_RETURN(KvHeadPolicy policy, PolicyFor(so));
  return static_cast<size_t>(policy.PlannedPeakBlocks(so.prompt_tokens, total_tokens)) * kv_pool_->block_bytes();
}

Result<std::unique_ptr<Sequence>> Engine::NewSequence(const SequenceOptions& so) {
  RAZOR_ASSIGN_OR_RETURN(KvHeadPolicy policy, PolicyFor(so));
  const int64_t capacity = so.capacity > 0 ? so.capacity : context_;
  auto cache = std::make_unique<RazorKvCache>(std::move(policy), config().head_dim, capacity, options_.kv_type,
                                              kv_pool_);
  return std::unique_ptr<Sequence>(new Sequence(std::move(cache), so.sampler, config().vocab_size));
}

Status Engine::Step(std::vector<SequenceInput>& inputs) {
  const ModelConfig& c = config();
  for (size_t i = 0; i < inputs.size(); ++i) {
    SequenceInput& in = inputs[i];
    in.status = Status::Ok();
    if (in.sequence == nullptr) return Err("a step input without a sequence");
    if (in.sequence->failed_) return Err("a sequence whose last step failed must be Reset() first");
    if (in.tokens.empty()) return Err("a step input with no tokens");
    for (size_t j = 0; j < i; ++j)
      if (inputs[j].sequence == in.sequence) return Err("a sequence appears twice in one step");
    for (int32_t t : in.tokens)
      if (t < 0 || t >= c.vocab_size) return Err(fmt::format("token id {} out of range [0, {})", t, c.vocab_size));
    const int64_t end = in.sequence->length() + static_cast<int64_t>(in.tokens.size());
    const int64_t cap = in.sequence->cache().capacity();
    if (end > cap) return Err(fmt::format("context full: {} tokens exceed the context of {}", end, cap));
  }
  // Group 0: inputs whose blocks are taken now (decodes, full-cache prompts); then the compressing prompts, in
  // one group on the CPU, one group each on a device (whose memory outside the pool holds the residual stream
  // of one context-long prompt, [context, dim] fp32, not of several: see Open).
  // Sliced prompts (a compressing prompt with slice_token_layers, or one already under way) run last, each
  // alone through its next slice (Transformer::StepSlice).
  for (const SequenceInput& in : inputs) {
    const LayerProgress& p = in.sequence->prefill_;
    if (in.sequence->prefill_pending() && p.rows != static_cast<int64_t>(in.tokens.size()))
      return Err(fmt::format("a prompt prefilled in slices takes the same {} tokens until it is done, not {}",
                             p.rows, in.tokens.size()));
    if (in.sequence->prefill_pending() && in.all_logits) return Err("a sliced prompt gives its last token's logits only");
  }
  std::vector<std::vector<SequenceInput*>> groups(1);
  std::vector<SequenceInput*> sliced;
  const bool one_compressing_prompt_per_forward = backend_->device() != DeviceKind::kCpu;
  for (SequenceInput& in : inputs) {
    in.prompt_pending = false;
    const bool under_way = in.sequence->prefill_pending();
    const bool prompt = under_way || in.begins_prompt.value_or(in.sequence->length() == 0);
    const bool compressing = prompt && in.sequence->cache().wants_single_prefill_call();
    if (compressing && (under_way || (in.slice_token_layers > 0 && !in.all_logits))) {
      if (!under_way)
        in.sequence->cache().BeginPrefill(in.prompt_tokens.value_or(static_cast<int64_t>(in.tokens.size())));
      sliced.push_back(&in);
      continue;
    }
    if (!compressing) {
      in.status = in.sequence->cache_->Reserve(static_cast<int64_t>(in.tokens.size()));
      if (!in.status.ok()) {
        in.sequence->logits_.clear();  // sat out: no logits of a step it did not take
        continue;
      }
    }
    if (prompt) in.sequence->cache().BeginPrefill(in.prompt_tokens.value_or(static_cast<int64_t>(in.tokens.size())));
    if (!compressing) groups[0].push_back(&in);
    else if (groups.size() == 1 || one_compressing_prompt_per_forward) groups.push_back({&in});
    else groups[1].push_back(&in);
  }
  if (groups[0].empty() && groups.size() == 1 && sliced.empty())
    return inputs.empty() ? Err("an empty step") : inputs.front().status;
  const size_t vocab = c.vocab_size;
  Status first_error = Status::Ok();
  bool any_ran = false;
  for (const auto& group : groups) {
    if (group.empty()) continue;
    std::vector<StepSequence> batch;
    for (SequenceInput* in : group)
      batch.push_back({&in->sequence->cache(), in->tokens.data(), static_cast<int64_t>(in->tokens.size()),
                       in->all_logits});
    Status st = transformer_->Step(batch, &step_logits_);
    if (!st.ok()) {
      for (SequenceInput* in : group) {
        in->sequence->failed_ = true;
        in->sequence->logits_.clear();
        in->status = st;
      }
      if (first_error.ok()) first_error = st;
      continue;
    }
    any_ran = true;
    size_t row = 0;
    for (SequenceInput* in : group) {
      Sequence& s = *in->sequence;
      const size_t rows = in->all_logits ? in->tokens.size() : 1;
      s.logits_.assign(step_logits_.begin() + row * vocab, step_logits_.begin() + (row + rows) * vocab);
      s.tokens_.insert(s.tokens_.end(), in->tokens.begin(), in->tokens.end());
      row += rows;
    }
  }
  for (SequenceInput* in : sliced) {
    Sequence& s = *in->sequence;
    const StepSequence seq{&s.cache(), in->tokens.data(), static_cast<int64_t>(in->tokens.size()), false};
    bool finished = false;
    Status st = transformer_->StepSlice(seq, &s.prefill_, in->slice_token_layers, &finished, &step_logits_);
    s.logits_.clear();
    if (!st.ok()) {
      s.failed_ = true;
      s.prefill_ = {};
      in->status = st;
      if (first_error.ok()) first_error = st;
      continue;
    }
    any_ran = true;
    in->prompt_pending = !finished;
    if (!finished) continue;
    s.logits_.assign(step_logits_.begin(), step_logits_.begin() + vocab);
    s.tokens_.insert(s.tokens_.end(), in->tokens.begin(), in->tokens.end());
  }
  return any_ran ? Status::Ok() : first_error;
}

}  // namespace razor
