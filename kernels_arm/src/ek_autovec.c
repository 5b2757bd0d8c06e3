/* The portable kernels as the compiler vectorizes them on its own (-O3, the build's -march). */
#define EK_PATH_SUFFIX __autovec
#include "ek_portable.inc"
