/* The emulated build compiles reduce.cu as C++ (setuptools and cffi know .cpp, not .cu). */
#include "../../reduce.cu"
