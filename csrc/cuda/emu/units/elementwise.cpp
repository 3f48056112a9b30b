/* The emulated build compiles elementwise.cu as C++ (setuptools and cffi know .cpp, not .cu). */
#include "../../elementwise.cu"
