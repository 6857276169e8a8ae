// Must NOT compile: ops sits below model (CMakeLists.txt, layering_ops_includes_model is WILL_FAIL).
#include "model/model_config.h"
int LayeringProbeOpsModel() { return sizeof(razor::ModelConfig) > 0; }
