/* libFuzzer target: the flag and config file parser (daemon/config.c).
 * Input: NUL-separated arguments; an argument "@" is replaced by the path
 * of a file holding the bytes after the first 0xff (the config file), so
 * both the command line and the file are explored.  Oracle: no sanitizer
 * report (leaks included), and a refusal is -EINVAL. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/daemon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static int devnull = -1, saved_err = -1, memfd = -1;
static char memfd_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	unsetenv("SLOTD_SOCKET");
	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	saved_err = dup(2);
	memfd = memfd_create("slotd-fuzz-config", MFD_CLOEXEC);
	snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
	return devnull < 0 || saved_err < 0 || memfd < 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *file = memchr(data, 0xff, size);
	size_t args_len = file ? (size_t)(file - data) : size;
	char *copy = malloc(args_len + 1), *argv[34];
	struct slotd_config cfg;
	static char argv0[] = "slotd";
	int argc = 1, r;

	if (!copy)
		return 0;
	memcpy(copy, data, args_len);
	copy[args_len] = 0;
	if (ftruncate(memfd, 0) || (file && pwrite(memfd, file + 1, size - args_len - 1, 0) < 0))
		abort();
	argv[0] = argv0;
	for (char *p = copy; p < copy + args_len + 1 && argc < 33; p += strlen(p) + 1)
		argv[argc++] = !strcmp(p, "@") ? memfd_path : p;
	argv[argc] = NULL;
	/* --help and errors print; keep the fuzzer's stderr readable. */
	fflush(stdout);
	dup2(devnull, 1);
	dup2(devnull, 2);
	r = daemon_config_parse(&cfg, argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_err, 2);
	dup2(saved_err, 1);
	daemon_config_free(&cfg);
	free(copy);
	if (r < 0 && r != -EINVAL && r != -ENOMEM) {
		fprintf(stderr, "daemon_config_parse returned %d\n", r);
		abort();
	}
	return 0;
}
