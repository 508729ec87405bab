/* libFuzzer target: the request path, text in, reply out, through
 * rpc_handle_peer on a server with every method and no KVM (VM methods
 * answer -32001 after validation).  Oracle: no sanitizer report; every
 * reply is strict JSON in UTF-8 (tests/lib/json_check.c, written apart
 * from rpc/json.c); and the two strict JSON checkers agree on the input.
 * Its runtime directory (/tmp/slotd-fuzz-rpc-*) is removed at exit.
 * The first input byte picks the peer: odd means the read-only socket. */
#include <dirent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "rpc/internal.h"
#include "tests/lib/json_check.h"
#include "ctl/ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct rpc_server *srv;
static char rundir[] = "/tmp/slotd-fuzz-rpc-XXXXXX";

/* Removes the runtime directory and what ctl put in it (no subdirs). */
static void rundir_remove(void)
{
	DIR *d = opendir(rundir);
	struct dirent *e;

	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	if (d)
		closedir(d);
	rmdir(rundir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct ctl_config cc = { .kvm_path = "/nonexistent/kvm", .runtime_dir = rundir,
				 .runner_path = "/nonexistent/slotd-runner", .log_fd = -1 };
	struct rpc_config cfg = { .max_batch = 64, .max_outbuf = 1 << 20 };
	struct ctl *ctl;

	(void)argc; (void)argv;
	slog_level_set(SLOG_ERROR);
	/* The runtime directory stays empty: no VM can be created. */
	if (!mkdtemp(rundir))
		abort();
	atexit(rundir_remove);
	if (ctl_create(&cc, &ctl))
		abort();
	cfg.ctl = ctl;
	/* No event base: nothing here needs the loop (events answer that
	 * they need a connection; notifications go nowhere). */
	if (rpc_server_create(NULL, &cfg, &srv) || rpc_methods_register_all(srv))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rpc_peer peer = { .via = "fuzz" };
	const char *text = (const char *)data + (size ? 1 : 0);
	size_t len = size ? size - 1 : 0;
	char why[160], *rep;

	peer.read_only = size && (data[0] & 1);
	if (rpc_json_valid(text, len) != tj_strict_json(text, len, NULL, 0)) {
		fprintf(stderr, "the strict JSON checkers disagree on the input\n");
		abort();
	}
	rep = rpc_handle_peer(srv, &peer, text, len, 1 << 20);
	if (rep && !tj_strict_json(rep, strlen(rep), why, sizeof(why))) {
		fprintf(stderr, "reply is not strict JSON (%s): %s\n", why, rep);
		abort();
	}
	free(rep);
	return 0;
}
