/* libFuzzer target: the request path, text in, reply out, through
 * rpc_handle_peer on a server with every method and no KVM (VM methods
 * answer -32001 after validation).  Oracle: no sanitizer report; every
 * reply is strict JSON in UTF-8 (tests/lib/json_check.c, written apart
 * from rpc/json.c); and the two strict JSON checkers agree on the input.
 * The first input byte picks the peer: odd means the read-only socket. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "rpc/internal.h"
#include "tests/lib/json_check.h"
#include "vmm/vmm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct rpc_server *srv;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct vmm_config vc = { .kvm_path = "/nonexistent/kvm" };
	struct rpc_config cfg = { .max_batch = 64, .max_outbuf = 1 << 20 };
	struct vmm *vmm;

	(void)argc; (void)argv;
	slog_level_set(SLOG_ERROR);
	if (vmm_create(&vc, &vmm))
		abort();
	cfg.vmm = vmm;
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
