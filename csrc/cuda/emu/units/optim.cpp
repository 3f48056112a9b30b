/* The emulated build compiles optim.cu as C++ (setuptools and cffi know .cpp, not .cu). */
#include "../../optim.cu"
