/* The emulated build compiles conv.cu as C++ (setuptools and cffi know .cpp, not .cu). */
#include "../../conv.cu"
