/* The systemd packaging in systemd/: the units pass systemd-analyze verify
 * without a warning about them, and the sysusers/tmpfiles snippets create
 * what the units rely on (run against a scratch root, never the host). */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/lib/daemon.h"

#define INSTALLED_SLOTD "/usr/local/bin/slotd"

static char scratch[64];

static void scratch_make(void)
{
	snprintf(scratch, sizeof(scratch), "/tmp/slotd-systemd-XXXXXX");
	cr_assert_not_null(mkdtemp(scratch), "mkdtemp failed");
}

static void scratch_remove(void)
{
	const char *argv[] = { "/bin/rm", "-rf", scratch, NULL };

	if (scratch[0])
		test_run(argv, NULL, NULL);
}

TestSuite(systemd, .init = scratch_make, .fini = scratch_remove);

/* Full path of a program found in $PATH (static buffer), or NULL. */
static const char *which(const char *prog)
{
	static char path[PATH_MAX];
	const char *env = getenv("PATH");
	char *dirs = strdup(env && *env ? env : "/usr/bin:/bin"), *save = NULL;
	const char *found = NULL;

	for (char *d = strtok_r(dirs, ":", &save); d && !found;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(path, sizeof(path), "%s/%s", d, prog);
		if (access(path, X_OK) == 0)
			found = path;
	}
	free(dirs);
	return found;
}

/* Absolute path of a file of the source tree ($SLOTD_SRCDIR, default the
 * current directory): tools run with --root= resolve relative paths
 * inside that root. */
static void src_path(char *buf, size_t len, const char *rel)
{
	const char *src = getenv("SLOTD_SRCDIR");
	char *dir = realpath(src && *src ? src : ".", NULL);

	cr_assert_not_null(dir, "expected the source tree at %s",
			   src ? src : ".");
	snprintf(buf, len, "%s/%s", dir, rel);
	free(dir);
}

/* Copies systemd/name into the scratch dir, with the installed slotd path
 * replaced by the built binary so that verify can check ExecStart=. */
static void unit_copy(const char *name, const char *slotd)
{
	char from[PATH_MAX], to[PATH_MAX], rel[64];
	char *text, *at;
	FILE *f;

	snprintf(rel, sizeof(rel), "systemd/%s", name);
	src_path(from, sizeof(from), rel);
	text = test_slurp(from);
	cr_assert_not_null(text, "expected to read %s", from);
	snprintf(to, sizeof(to), "%s/%s", scratch, name);
	f = fopen(to, "w");
	cr_assert_not_null(f, "cannot write %s", to);
	at = strstr(text, "ExecStart=" INSTALLED_SLOTD " ");
	if (at) {
		at += strlen("ExecStart=");
		fprintf(f, "%.*s%s%s", (int)(at - text), text, slotd,
			at + strlen(INSTALLED_SLOTD));
	} else {
		fputs(text, f);
	}
	fclose(f);
	free(text);
}

/* Lines of err that mention one of our units or files, or NULL. */
static char *lines_about_slotd(const char *err)
{
	char *out = NULL, *copy = strdup(err ? err : ""), *save = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&out, &len);

	for (char *l = strtok_r(copy, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save))
		if (strstr(l, "slotd"))
			fprintf(m, "%s\n", l);
	fclose(m);
	free(copy);
	if (!len) {
		free(out);
		return NULL;
	}
	return out;
}

Test(systemd, units_pass_systemd_analyze_verify_without_warnings)
{
	const char *analyze = which("systemd-analyze");
	char slotd[PATH_MAX], sock[PATH_MAX], svc[PATH_MAX], *out, *err, *bad;
	int rc;

	if (!analyze)
		cr_skip_test("systemd-analyze is not installed "
			     "(scripts/deps.sh installs it with the systemd "
			     "package)");
	cr_assert_not_null(realpath(test_slotd_bin(), slotd),
			   "expected a built slotd at %s", test_slotd_bin());
	unit_copy("slotd.service", slotd);
	unit_copy("slotd.socket", slotd);
	snprintf(sock, sizeof(sock), "%s/slotd.socket", scratch);
	snprintf(svc, sizeof(svc), "%s/slotd.service", scratch);
	{
		const char *argv[] = { analyze, "verify", "--man=no", sock, svc,
				       NULL };

		rc = test_run(argv, &out, &err);
	}
	bad = lines_about_slotd(err);
	cr_assert_eq(rc, 0, "systemd-analyze verify: expected exit 0, got %d; "
		     "stderr:\n%s", rc, err ? err : "");
	cr_assert_null(bad, "expected no warnings about our units, got:\n%s",
		       bad);
	free(out);
	free(err);
}

Test(systemd, sysusers_creates_group_slotd)
{
	const char *sysusers = which("systemd-sysusers");
	char conf[PATH_MAX], root_etc[256], group[300], *err, *text;
	int rc;

	if (!sysusers)
		cr_skip_test("systemd-sysusers is not installed");
	src_path(conf, sizeof(conf), "systemd/slotd-sysusers.conf");
	snprintf(root_etc, sizeof(root_etc), "%s/etc", scratch);
	cr_assert_eq(mkdir(root_etc, 0755), 0, "mkdir %s", root_etc);
	{
		char root_opt[PATH_MAX + 8];
		const char *argv[] = { sysusers, root_opt, conf, NULL };

		snprintf(root_opt, sizeof(root_opt), "--root=%s", scratch);
		rc = test_run(argv, NULL, &err);
	}
	cr_assert_eq(rc, 0, "systemd-sysusers: expected exit 0, got %d: %s",
		     rc, err ? err : "");
	snprintf(group, sizeof(group), "%s/group", root_etc);
	text = test_slurp(group);
	cr_assert_not_null(text, "expected %s to be written", group);
	cr_assert(strstr(text, "\nslotd:x:") || !strncmp(text, "slotd:x:", 8),
		  "expected a slotd group in %s, got:\n%s", group, text);
	free(text);
	free(err);
}

/* Asserts path exists as a directory with the given mode. */
static void assert_dir_mode(const char *path, mode_t mode)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "expected %s to exist", path);
	cr_assert(S_ISDIR(st.st_mode), "expected %s to be a directory", path);
	cr_assert_eq(st.st_mode & 07777, mode, "%s: expected mode %o, got %o",
		     path, mode, st.st_mode & 07777);
}

Test(systemd, tmpfiles_creates_runtime_and_state_directories)
{
	const char *tmpfiles = which("systemd-tmpfiles");
	char conf[PATH_MAX], path[PATH_MAX], root_opt[PATH_MAX + 8], *err;
	int rc;

	if (!tmpfiles)
		cr_skip_test("systemd-tmpfiles is not installed");
	src_path(conf, sizeof(conf), "systemd/slotd-tmpfiles.conf");
	snprintf(root_opt, sizeof(root_opt), "--root=%s", scratch);
	{
		const char *argv[] = { tmpfiles, root_opt, "--create", conf,
				       NULL };

		rc = test_run(argv, NULL, &err);
	}
	cr_assert_eq(rc, 0, "systemd-tmpfiles: expected exit 0, got %d: %s",
		     rc, err ? err : "");
	/* The modes the service sets with Runtime/StateDirectoryMode=. */
	snprintf(path, sizeof(path), "%s/run/slotd", scratch);
	assert_dir_mode(path, 0755);
	snprintf(path, sizeof(path), "%s/var/lib/slotd", scratch);
	assert_dir_mode(path, 0700);
	free(err);
}

/* The service text, read from the source tree (caller frees). */
static char *service_text(void)
{
	char path[PATH_MAX], *text;

	src_path(path, sizeof(path), "systemd/slotd.service");
	text = test_slurp(path);
	cr_assert_not_null(text, "expected to read %s", path);
	return text;
}

Test(systemd, execstart_flags_are_known_to_the_daemon)
{
	char *unit = service_text(), *help, *err, *line, *save = NULL;
	const char *argv[] = { test_slotd_bin(), "--help", NULL };
	int rc = test_run(argv, &help, &err), flags = 0;

	cr_assert_eq(rc, 0, "slotd --help: expected exit 0, got %d", rc);
	line = strstr(unit, "\nExecStart=");
	cr_assert_not_null(line, "expected an ExecStart= line");
	line = strtok_r(line + 1, "\n", &save);
	for (char *w = strtok_r(line, " ", &save); w;
	     w = strtok_r(NULL, " ", &save)) {
		if (strncmp(w, "--", 2))
			continue;
		flags++;
		cr_assert(strstr(help, w), "ExecStart= uses %s, which slotd "
			  "--help does not list:\n%s", w, help);
	}
	cr_assert_geq(flags, 3, "expected --foreground --socket --state-dir");
	free(unit);
	free(help);
	free(err);
}

Test(systemd, memory_deny_write_execute_only_while_no_code_maps_exec)
{
	char *unit = service_text(), *src = NULL, *out, *err;
	const char *env = getenv("SLOTD_SRCDIR");
	int rc;

	if (!strstr(unit, "\nMemoryDenyWriteExecute=yes")) {
		free(unit);
		cr_skip_test("slotd.service does not set "
			     "MemoryDenyWriteExecute");
	}
	src = realpath(env && *env ? env : ".", NULL);
	{
		/* vmm/guest is guest code, not mapped by slotd. */
		const char *argv[] = { "/bin/grep", "-rln", "--include=*.c",
			"--include=*.h", "--include=*.S", "--exclude-dir=guest",
			"PROT_EXEC", "daemon", "rpc", "vmm", "mmu", NULL };

		cr_assert_eq(chdir(src), 0, "chdir %s", src);
		rc = test_run(argv, &out, &err);
	}
	cr_assert_eq(rc, 1, "expected no PROT_EXEC in slotd's sources while "
		     "the unit sets MemoryDenyWriteExecute=yes (systemd would "
		     "refuse the mapping); grep exit %d, found in:\n%s", rc,
		     out);
	free(unit);
	free(src);
	free(out);
	free(err);
}
