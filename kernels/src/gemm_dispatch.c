#include "fastseg/kernels.h"
const char *fs_isa_name(void) { return "generic"; }
int fs_select_isa(const char *name) { (void)name; return FS_OK; }
