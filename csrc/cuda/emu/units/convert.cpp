/* The emulated build compiles convert.cu as C++ (setuptools and cffi know .cpp, not .cu). */
#include "../../convert.cu"
