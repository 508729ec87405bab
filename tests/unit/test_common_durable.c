/* Atomic state files: whatever instant a writer dies at, the file holds
 * the old or the new content, never a mix. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/durable.h"
#include "common/log.h"
#include "tests/lib/daemon.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/slotd-state-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	test_rmtree(dir);
}

TestSuite(daemon_state, .init = setup, .fini = teardown);

static char *read_file(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return test_slurp(path);
}

Test(daemon_state, write_replaces_and_remove_removes)
{
	char *s;

	cr_assert_eq(durable_file_write(dir, "a.json", "one", 3), 0);
	cr_assert_eq(durable_file_write(dir, "a.json", "second", 6), 0);
	s = read_file("a.json");
	cr_assert_str_eq(s, "second");
	free(s);
	cr_assert_eq(durable_file_remove(dir, "a.json"), 0);
	cr_assert_null(read_file("a.json"));
	cr_assert_eq(durable_file_remove(dir, "a.json"), 0, "removing twice is fine");
	cr_assert_eq(durable_file_write("/nonexistent/dir", "a.json", "x", 1), -ENOENT);
}

static int collect(const char *name, void *arg)
{
	strcat(arg, name);
	strcat(arg, ",");
	return 0;
}

Test(daemon_state, foreach_lists_in_order_and_drops_interrupted_writes)
{
	char seen[256] = "", tmp[256];
	FILE *f;

	durable_file_write(dir, "vm-b.json", "b", 1);
	durable_file_write(dir, "vm-a.json", "a", 1);
	durable_file_write(dir, "other.txt", "o", 1);
	snprintf(tmp, sizeof(tmp), "%s/.tmp-vm-c.json.123", dir);
	f = fopen(tmp, "w");
	fputs("half", f);
	fclose(f);
	cr_assert_eq(durable_dir_foreach(dir, ".json", collect, seen), 0);
	cr_assert_str_eq(seen, "vm-a.json,vm-b.json,");
	cr_assert_neq(access(tmp, F_OK), 0, "the interrupted write was not removed");
}

/* A child rewrites one file with all-'A' and all-'B' contents of 1 MiB,
 * forever; it is killed with SIGKILL at random moments. */
Test(daemon_state, kill_9_never_leaves_a_torn_file)
{
	size_t len = 1 << 20;
	char *a = malloc(len), *b = malloc(len);

	memset(a, 'A', len);
	memset(b, 'B', len);
	durable_file_write(dir, "vm.json", a, len);
	srand(7);
	for (int round = 0; round < 20; round++) {
		pid_t p = fork();
		char *s;

		if (p == 0) {
			for (int i = 0;; i++)
				durable_file_write(dir, "vm.json", i % 2 ? a : b, len);
		}
		usleep(1000 + rand() % 20000);
		kill(p, SIGKILL);
		waitpid(p, NULL, 0);
		s = read_file("vm.json");
		cr_assert_not_null(s);
		cr_assert_eq(strlen(s), len, "round %d: %zu bytes, expected %zu", round, strlen(s), len);
		cr_assert(!memcmp(s, a, len) || !memcmp(s, b, len), "round %d: torn file", round);
		free(s);
	}
	free(a);
	free(b);
}
