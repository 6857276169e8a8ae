// Must NOT compile: kv sits below ops.
#include "ops/attention.h"
int LayeringProbeKvOps() { return sizeof(razor::AttentionQuery) > 0; }
