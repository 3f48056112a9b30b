/* The emulated build compiles demos.cu as C++ (setuptools and cffi know .cpp, not .cu). */
#include "../../demos.cu"
