/* Flags, the config file and the token file are read strictly: a value
 * that is not exactly what the README documents is refused with a
 * message naming it and exit status 2, before anything is bound. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/lib/daemon.h"

static char dir[64];

static void scratch(void)
{
	snprintf(dir, sizeof(dir), "/tmp/slotd-config-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void scratch_remove(void)
{
	test_rmtree(dir);
}

TestSuite(config, .init = scratch, .fini = scratch_remove);

/* Runs slotd with args (then --help, which exits 0 once the flags before
 * it were taken) and asserts exit status 2 with needle on stderr. */
static void refused(const char *const *args, const char *needle)
{
	const char *argv[16];
	char *err = NULL;
	int n = 0, st;

	argv[n++] = test_slotd_bin();
	for (int i = 0; args[i] && n < 14; i++)
		argv[n++] = args[i];
	argv[n++] = "--help";
	argv[n] = NULL;
	st = test_run(argv, NULL, &err);
	cr_expect_eq(st, 2, "%s %s: expected exit status 2, got %d; stderr: %s", args[0],
		     args[1] ? args[1] : "", st, err);
	cr_expect(err && strstr(err, needle), "%s %s: stderr should mention '%s': %s", args[0],
		  args[1] ? args[1] : "", needle, err);
	free(err);
}

static void accepted(const char *const *args)
{
	const char *argv[16];
	char *err = NULL;
	int n = 0, st;

	argv[n++] = test_slotd_bin();
	for (int i = 0; args[i] && n < 14; i++)
		argv[n++] = args[i];
	argv[n++] = "--help";
	argv[n] = NULL;
	st = test_run(argv, NULL, &err);
	cr_expect_eq(st, 0, "%s %s: expected to be accepted, got %d; stderr: %s", args[0],
		     args[1] ? args[1] : "", st, err);
	free(err);
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	cr_assert_geq(fd, 0, "cannot create %s", path);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	fchmod(fd, mode);
	close(fd);
}

Test(config, numbers_in_flags_are_strict_decimal)
{
	static const char *const bad[] = {
		"010", "0x10", " 5", "5 ", "5x", "-1", "+5", "", "1e3", "99999999999999999999999", "0",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *args[] = { "--max-batch", bad[i], NULL };

		refused(args, "--max-batch");
	}
	refused((const char *[]){ "--max-vm-memory", "0x1000", NULL }, "--max-vm-memory");
	refused((const char *[]){ "--max-vm-memory", "08G", NULL }, "--max-vm-memory");
	refused((const char *[]){ "--idle-timeout", "-1", NULL }, "--idle-timeout");
	refused((const char *[]){ "-s", "", NULL }, "--socket");
	accepted((const char *[]){ "--max-batch", "10", "--max-vm-memory", "8G", NULL });
	accepted((const char *[]){ "--idle-timeout", "0", NULL });
}

Test(config, empty_paths_are_refused)
{
	refused((const char *[]){ "--state-dir", "", NULL }, "--state-dir");
	refused((const char *[]){ "--socket", "", NULL }, "--socket");
	refused((const char *[]){ "--file-dir", "", NULL }, "--file-dir");
	refused((const char *[]){ "--socket-ro", "", NULL }, "--socket-ro");
}

Test(config, a_directory_as_config_is_refused)
{
	refused((const char *[]){ "--config", dir, NULL }, "not a regular file");
}

Test(config, a_config_line_over_the_limit_is_refused_not_split)
{
	char path[128], text[2200];
	int n;

	snprintf(path, sizeof(path), "%s/long.conf", dir);
	/* Split at 1023 bytes, the tail would read as "max-batch = 7". */
	n = snprintf(text, sizeof(text), "# %01020d", 0);
	n += snprintf(text + n, sizeof(text) - (size_t)n, "max-batch = 7\n");
	write_file(path, text, (size_t)n, 0600);
	refused((const char *[]){ "--config", path, NULL }, ":1: line longer than 1024 bytes");
}

Test(config, a_nul_byte_in_the_config_is_refused)
{
	static const char text[] = "max-batch = 7\nstate-dir = /tmp/a\0/b\n";
	char path[128];

	snprintf(path, sizeof(path), "%s/nul.conf", dir);
	write_file(path, text, sizeof(text) - 1, 0600);
	refused((const char *[]){ "--config", path, NULL }, ":2: a NUL byte");
}

Test(config, booleans_take_only_the_documented_words)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/bool.conf", dir);
	write_file(path, "foreground = maybe\n", 19, 0600);
	refused((const char *[]){ "--config", path, NULL }, "'maybe' is not true, false, yes or no");
	write_file(path, "foreground = 1\n", 15, 0600);
	refused((const char *[]){ "--config", path, NULL }, "foreground");
	write_file(path, "foreground = false\nforeground = yes\nforeground\n", 47, 0600);
	accepted((const char *[]){ "--config", path, NULL });
}

Test(config, numbers_in_the_config_file_are_strict_decimal)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/num.conf", dir);
	write_file(path, "max-connections = 0x20\n", 23, 0600);
	refused((const char *[]){ "--config", path, NULL }, ":1: the value of 'max-connections'");
	write_file(path, "max-connections = 020\n", 22, 0600);
	refused((const char *[]){ "--config", path, NULL }, "max-connections");
}

/* --http 0.0.0.0:1 makes the old code stop (exit 1) after reading the
 * token, so only the token check can make it 2. */
static void token_refused(const char *content, size_t len, mode_t mode, const char *needle)
{
	char path[128];
	const char *argv[] = { test_slotd_bin(), "--foreground", "--socket", "/tmp/slotd-tok-x.sock",
			       "--state-dir", "/tmp/slotd-tok-x-state", "--http", "0.0.0.0:1",
			       "--http-token-file", path, NULL };
	char *err = NULL;
	int st;

	snprintf(path, sizeof(path), "%s/token", dir);
	write_file(path, content, len, mode);
	st = test_run(argv, NULL, &err);
	cr_expect_eq(st, 2, "token [%.*s]: expected exit status 2, got %d; stderr: %s", (int)len,
		     content, st, err);
	cr_expect(err && strstr(err, needle), "token: stderr should mention '%s': %s", needle, err);
	free(err);
	cr_expect_neq(access("/tmp/slotd-tok-x.sock", F_OK), 0, "a socket was bound");
	test_rmtree("/tmp/slotd-tok-x-state");
}

Test(config, token_files_hold_exactly_one_token)
{
	char big[1100];

	token_refused("abc\0def\n", 8, 0600, "NUL");
	token_refused("abc\ndef\n", 8, 0600, "one line");
	token_refused("\n", 1, 0600, "no token");
	token_refused("abc def\n", 8, 0600, "not a visible ASCII");
	memset(big, 'a', sizeof(big));
	token_refused(big, 1025, 0600, "longer than 1024");
	token_refused("s3cret-token\n", 13, 0644, "readable or writable by others");
}
