// How much prompt work a continuous-batching step may carry beside running decodes, so that the decodes'
// inter-token latency stays near (1 + share) decode-only steps while a long prompt goes in.
//
// Work is counted in (token, layer) pairs: a full cache's chunk of c tokens is c x n_layers, a sliced
// (compressing) prompt's slice is what it names. The budget is steered by the measured step time itself:
// after a step with prompt work and decodes, the budget is scaled by target / measured (target = the moving
// average of decode-only steps x (1 + share)), shrinking by up to 8x a step and growing by at most 1.5x, and
// only grown when the budget was what limited the step (a step that carried under half of it leaves it as it is). A step's cost per unit of prompt work is not fixed
// (a full cache's later chunks attend to more keys, a slice of a compressing prompt costs what its layer and
// rows cost, the machine is shared), so a rate learned once and divided into the target overshoots; the
// feedback converges whatever the rate does. The first budget comes from the rate prompt-only steps ran at
// (no decodes to subtract), else `initial_tokens` through every layer.
#pragma once

#include <cstdint>

namespace razor::serve {

class PrefillBudget {
 public:
  // n_layers: the model's; initial_tokens: prompt tokens per step (x n_layers) before anything is measured;
  // share: prompt work per step, as a multiple of a decode-only step's time.
  PrefillBudget(int64_t n_layers, int64_t initial_tokens, double share);

  // (token, layer) pairs the next step may run; 0: unlimited (nothing is decoding, no one waits on the step).
  int64_t Next(bool decoding);

  // After a step that ran: its wall time (s), the prompt work it carried, how many decodes rode in it, and
  // whether the budget is what held the prompt work back (some prompt wanted more than it got).
  void Observe(double seconds, int64_t prompt_work, int64_t decodes, bool budget_bound);

  double decode_step_seconds() const { return decode_step_seconds_; }
  int64_t floor() const { return 16 * n_layers_; }  // a 16-row chunk through every layer: progress guaranteed

 private:
  int64_t n_layers_;
  int64_t initial_tokens_;
  double share_;
  double decode_step_seconds_ = 0;  // moving average of decode-only steps (s)
  double prompt_rate_ = 0;          // moving average of prompt-only steps' (token, layer) pairs per second
  double budget_ = 0;               // (token, layer) pairs a step beside decodes; 0: not set yet
  bool steered_ = false;            // the feedback has set budget_ (before: the seed, re-made each step)
};

}  // namespace razor::serve
