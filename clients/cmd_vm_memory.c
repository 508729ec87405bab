/* slotctl vm memory-read|memory-write: guest memory by GPA, carried as
 * base64 by vm.memory.read/vm.memory.write. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clients/slotctl.h"

/* Prints bytes like xxd: GPA, 16 hex bytes, printable characters. */
static void hexdump(FILE *f, uint64_t gpa, const unsigned char *b, size_t n)
{
	for (size_t off = 0; off < n; off += 16) {
		size_t k = n - off < 16 ? n - off : 16;

		fprintf(f, "%012llx:", (unsigned long long)(gpa + off));
		for (size_t i = 0; i < 16; i++) {
			if (i < k)
				fprintf(f, " %02x", b[off + i]);
			else
				fputs("   ", f);
		}
		fputs("  ", f);
		for (size_t i = 0; i < k; i++)
			fputc(isprint(b[off + i]) ? b[off + i] : '.', f);
		fputc('\n', f);
	}
}

const struct slotctl_optdesc slotctl_vm_memory_read_opts[] = {
	{ "raw", NULL, "write the bytes as they are to stdout" },
	{ 0 },
};

/* Prints what vm.memory.read returned: hexdump, raw bytes or JSON. */
static int memory_print(struct slotctl *ctl, const struct slotctl_args *a,
			json_object *result, uint64_t gpa)
{
	json_object *data;
	unsigned char *bytes;
	size_t n;

	if (ctl->json) {
		slotctl_render_json(stdout, result);
		return SLOTCTL_EXIT_OK;
	}
	if (!json_object_object_get_ex(result, "data", &data) ||
	    slotctl_base64_decode(json_object_get_string(data), &bytes, &n)) {
		slotctl_err("vm memory-read: the reply has no base64 data");
		return SLOTCTL_EXIT_FAIL;
	}
	if (slotctl_args_opt(a, "raw"))
		fwrite(bytes, 1, n, stdout);
	else
		hexdump(stdout, gpa, bytes, n);
	free(bytes);
	return SLOTCTL_EXIT_OK;
}

int slotctl_vm_memory_read(struct slotctl *ctl, const struct slotctl_args *a)
{
	json_object *p = json_object_new_object(), *result;
	uint64_t gpa = 0;
	int ret;

	json_object_object_add(p, "name", json_object_new_string(a->argv[0]));
	if (slotctl_param_u64(p, "gpa", a->argv[1], true) ||
	    slotctl_param_u64(p, "length", a->argv[2], true)) {
		json_object_put(p);
		return SLOTCTL_EXIT_USAGE;
	}
	slotctl_parse_u64(a->argv[1], true, &gpa);
	ret = slotctl_call(ctl, a->verb->method, p, &result);
	if (ret)
		return ret;
	ret = memory_print(ctl, a, result, gpa);
	json_object_put(result);
	return ret;
}

/* "48656c6c6f" or "48 65 6c" -> bytes; -EINVAL on an odd digit count. */
static int hex_decode(const char *s, unsigned char **out, size_t *len)
{
	unsigned char *buf = malloc(strlen(s) / 2 + 1);
	size_t n = 0;

	while (buf && *s) {
		if (isspace((unsigned char)*s) || *s == ':') {
			s++;
			continue;
		}
		if (!isxdigit((unsigned char)s[0]) ||
		    !isxdigit((unsigned char)s[1])) {
			free(buf);
			return -EINVAL;
		}
		buf[n++] = (unsigned char)strtoul((char[]){ s[0], s[1], 0 },
						  NULL, 16);
		s += 2;
	}
	if (!buf)
		return -ENOMEM;
	*out = buf;
	*len = n;
	return 0;
}

const struct slotctl_optdesc slotctl_vm_memory_write_opts[] = {
	{ "hex", NULL, "DATA is hex digits (e.g. 'de ad be ef')" },
	{ 0 },
};

int slotctl_vm_memory_write(struct slotctl *ctl,
			    const struct slotctl_args *a)
{
	json_object *p = json_object_new_object();
	const char *data = a->argv[2];
	unsigned char *bytes = (unsigned char *)strdup(data);
	size_t n = strlen(data);
	char *b64;

	if (slotctl_args_opt(a, "hex")) {
		free(bytes);
		if (hex_decode(data, &bytes, &n) || !n) {
			slotctl_err("vm memory-write: '%s' is not hex bytes",
				    data);
			json_object_put(p);
			return SLOTCTL_EXIT_USAGE;
		}
	}
	json_object_object_add(p, "name", json_object_new_string(a->argv[0]));
	if (slotctl_param_u64(p, "gpa", a->argv[1], true)) {
		free(bytes);
		json_object_put(p);
		return SLOTCTL_EXIT_USAGE;
	}
	b64 = slotctl_base64_encode(bytes, n);
	json_object_object_add(p, "data", json_object_new_string(b64));
	free(b64);
	free(bytes);
	return slotctl_call_print(ctl, a->verb->method, p);
}
