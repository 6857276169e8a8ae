// Must compile: kv sits below ops (the control case of the layering probes).
#include "kv/kv_cache.h"
int LayeringProbeOpsKv() { return sizeof(razor::KvHeadView) > 0; }
