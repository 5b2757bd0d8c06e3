/* The true scalar reference: the portable kernels with the vectorizer off (gcc -O3 would
 * otherwise vectorize these loops, even emit SDOT). */
#pragma GCC optimize("no-tree-vectorize")
#define EK_PATH_SUFFIX __scalar
#include "ek_portable.inc"
