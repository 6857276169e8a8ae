// Must NOT compile: model sits below runtime.
#include "runtime/generator.h"
int LayeringProbeModelRuntime() { return sizeof(razor::GenerationOptions) > 0; }
