/* The emulated build compiles gemm.cu as C++ (setuptools and cffi know .cpp, not .cu). */
#include "../../gemm.cu"
