/* The emulated build compiles gather.cu as C++ (setuptools and cffi know .cpp, not .cu). */
#include "../../gather.cu"
