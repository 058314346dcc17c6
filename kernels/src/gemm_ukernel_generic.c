#include "fastseg/kernels.h"
