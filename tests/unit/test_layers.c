/* Layers point one way: daemon -> rpc -> ctl (control plane) -> runner ->
 * vmm -> mmu, with common/ below them all.  Every #include "..." of every
 * source file is checked against what its module may use; the layers
 * above the runner see only vmm's types (vmm/types.h), never a live VM's
 * interface (vmm/vmm.h) or anyone's internals. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a module may include, as path prefixes ("vmm/types.h" exactly). */
static const struct {
	const char *module;
	const char *may[8];
} rules[] = {
	{ "common", { "common/" } },
	{ "mmu", { "mmu/", "common/" } },
	{ "vmm", { "vmm/", "mmu/mmu.h", "common/" } },
	{ "runner", { "runner/", "vmm/vmm.h", "vmm/types.h", "common/" } },
	{ "ctl", { "ctl/", "runner/runner.h", "vmm/types.h", "common/" } },
	{ "rpc", { "rpc/", "ctl/ctl.h", "vmm/types.h", "common/" } },
	{ "daemon", { "daemon/", "rpc/rpc.h", "ctl/ctl.h", "vmm/types.h", "common/" } },
};

static bool allowed(size_t r, const char *inc)
{
	for (size_t i = 0; i < 8 && rules[r].may[i]; i++) {
		const char *m = rules[r].may[i];
		size_t n = strlen(m);

		if (m[n - 1] == '/' ? !strncmp(inc, m, n) : !strcmp(inc, m))
			return true;
	}
	return false;
}

/* Checks one file; returns the number of includes checked. */
static int check_file(size_t r, const char *path)
{
	FILE *f = fopen(path, "re");
	char line[512];
	int n = 0;

	cr_assert_not_null(f, "%s", path);
	while (fgets(line, sizeof(line), f)) {
		char inc[256];

		if (sscanf(line, "#include \"%255[^\"]\"", inc) != 1)
			continue;
		n++;
		cr_expect(allowed(r, inc), "%s includes \"%s\": %s/ may not reach it", path, inc,
			  rules[r].module);
	}
	fclose(f);
	return n;
}

Test(layers, every_include_points_down_the_layers)
{
	const char *src = getenv("SLOTD_SRCDIR") ? getenv("SLOTD_SRCDIR") : ".";
	int checked = 0;

	for (size_t r = 0; r < sizeof(rules) / sizeof(rules[0]); r++) {
		char dir[512];
		struct dirent *e;
		DIR *d;

		snprintf(dir, sizeof(dir), "%s/%s", src, rules[r].module);
		d = opendir(dir);
		cr_assert_not_null(d, "no %s", dir);
		while ((e = readdir(d))) {
			size_t n = strlen(e->d_name);
			char path[1024];

			if (n < 3 || (strcmp(e->d_name + n - 2, ".c") && strcmp(e->d_name + n - 2, ".h")))
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			checked += check_file(r, path);
		}
		closedir(d);
	}
	cr_assert_gt(checked, 100, "only %d includes found: wrong source directory?", checked);
}

Test(layers, the_rule_catches_an_include_that_reaches_up)
{
	/* The check itself: what a lower layer must not include. */
	cr_assert(!allowed(1, "vmm/vmm.h"), "mmu/ may not include vmm/");
	cr_assert(!allowed(4, "vmm/vmm.h"), "ctl/ sees vmm's types only");
	cr_assert(!allowed(5, "daemon/daemon.h"), "rpc/ may not include daemon/");
	cr_assert(!allowed(5, "runner/runner.h"), "rpc/ goes through ctl/");
	cr_assert(allowed(5, "common/log.h"));
}
