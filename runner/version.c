/* The build a runner reports in HELLO (slotd logs it when it adopts one
 * left by another build). */
#include "runner/runner.h"

const char *runner_build_id(void)
{
	return SLOTD_VERSION " " SLOTD_GIT_REV;
}
