/* The emulated build compiles runtime.cu as C++ (setuptools and cffi know .cpp, not .cu). */
#include "../../runtime.cu"
