/* The emulated build compiles softmax.cu as C++ (setuptools and cffi know .cpp, not .cu). */
#include "../../softmax.cu"
