/* placeholder replaced by the CLI below */
#include "core/core.h"
int main(void) { return 0; }
