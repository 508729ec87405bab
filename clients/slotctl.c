/* slotctl: command-line client of slotd.
 *
 *   slotctl [--socket PATH] [--json] [--timeout SEC] NOUN VERB [ARGS...]
 *
 * This file holds main(), the global options, the NOUN VERB dispatch and
 * the help texts; each noun lives in its own clients/cmd_*.c. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "clients/slotctl.h"

static const struct slotctl_noun *const nouns[] = {
	&slotctl_noun_daemon,
	&slotctl_noun_vm,
	&slotctl_noun_memslot,
	&slotctl_noun_events,
	&slotctl_noun_call,
	&slotctl_noun_dial_stdio,
	NULL,
};

enum { OPT_SOCKET = 's', OPT_JSON = 'j', OPT_TIMEOUT = 't', OPT_HELP = 'h',
       OPT_VERSION = 'V', OPT_HOST = 'H', OPT_REQUEST_ID = 'r' };

static const struct option global_opts[] = {
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "host", required_argument, NULL, OPT_HOST },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "request-id", required_argument, NULL, OPT_REQUEST_ID },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
};
#define N_GLOBAL_OPTS (int)(sizeof(global_opts) / sizeof(global_opts[0]))

static const char global_help[] =
	"global options (before or after NOUN VERB):\n"
	"  -s, --socket PATH   daemon socket (default $SLOTD_SOCKET, else "
	SLOTCTL_DEFAULT_SOCKET ")\n"
	"  -H, --host ssh://[USER@]HOST[:PORT][/SOCKET]\n"
	"                      slotd on another host, through ssh (default "
	"$SLOTD_HOST)\n"
	"  -j, --json          print the raw result as JSON, and errors as "
	"JSON on stderr\n"
	"  -t, --timeout SEC   give up waiting for a reply after SEC seconds "
	"(default 30)\n"
	"  -r, --request-id ID make the change at most once: run again with the\n"
	"                      same ID (after a timeout, say), slotd answers\n"
	"                      with the first outcome instead of acting twice\n"
	"  -h, --help          show help (also after NOUN or NOUN VERB)\n"
	"  -V, --version       show slotctl's own version\n";

const char *slotctl_args_opt(const struct slotctl_args *a, const char *name)
{
	for (int i = 0; a->verb->opts && a->verb->opts[i].name; i++)
		if (!strcmp(a->verb->opts[i].name, name))
			return a->opt[i];
	return NULL;
}

static void version_print(void)
{
	printf("slotctl %s (%s)\n", SLOTD_VERSION, SLOTD_GIT_REV);
}

/* Top-level help: the nouns and the global options. */
static void usage_top(FILE *f)
{
	fputs("usage: slotctl [--socket PATH | --host ssh://HOST] [--json] "
	      "[--timeout SEC] [--request-id ID] NOUN VERB [ARGS...]\n\nnouns:\n", f);
	for (int i = 0; nouns[i]; i++)
		fprintf(f, "  %-10s %s\n", nouns[i]->name, nouns[i]->help);
	fprintf(f, "\n%s\nslotctl NOUN --help lists the verbs of NOUN.\n",
		global_help);
}

/* "slotctl NOUN VERB" or "slotctl NOUN" for a noun that is its own verb. */
static void print_cmd(FILE *f, const struct slotctl_noun *n,
		      const struct slotctl_verb *v)
{
	const char *syn = v->synopsis ? v->synopsis : "";

	fprintf(f, "slotctl %s%s%s%s%s", n->name, v->name ? " " : "",
		v->name ? v->name : "", *syn ? " " : "", syn);
}

/* Help of a noun: the synopsis and one line of each verb. */
static void usage_noun(FILE *f, const struct slotctl_noun *n)
{
	fprintf(f, "usage:\n");
	for (const struct slotctl_verb *v = n->verbs; v->run; v++) {
		fputs("  ", f);
		print_cmd(f, n, v);
		fputc('\n', f);
	}
	fprintf(f, "\n%s (verb, JSON-RPC method, what it does):\n", n->help);
	for (const struct slotctl_verb *v = n->verbs; v->run; v++)
		fprintf(f, "  %-12s %-20s %s\n", v->name ? v->name : n->name,
			v->method ? v->method : "METHOD", v->help);
	fprintf(f, "\nslotctl %s VERB --help describes a verb's arguments.\n",
		n->name);
}

/* Help of a verb: synopsis, description, its options. */
static void usage_verb(FILE *f, const struct slotctl_noun *n,
		       const struct slotctl_verb *v)
{
	fputs("usage: ", f);
	print_cmd(f, n, v);
	fprintf(f, "\n\n%s\n", v->help);
	if (v->method)
		fprintf(f, "JSON-RPC method: %s\n", v->method);
	if (v->opts && v->opts[0].name) {
		fputs("\noptions:\n", f);
		for (const struct slotctl_optdesc *o = v->opts; o->name; o++) {
			int w = fprintf(f, "  --%s%s%s", o->name,
					o->arg ? " " : "",
					o->arg ? o->arg : "");

			fprintf(f, "%*s%s\n", w < 24 ? 24 - w : 1, "", o->help);
		}
	}
	fprintf(f, "\n%s", global_help);
}

/* Applies a global option; returns 0 or -EINVAL (message printed). */
static int global_opt(struct slotctl *ctl, int c, const char *arg)
{
	char *end;
	double sec;

	switch (c) {
	case OPT_SOCKET:
		ctl->socket = arg;
		return 0;
	case OPT_HOST:
		ctl->host = *arg ? arg : NULL;
		return 0;
	case OPT_REQUEST_ID:
		ctl->request_id = arg;
		return 0;
	case OPT_JSON:
		ctl->json = true;
		slotctl_json_errors = true;
		return 0;
	case OPT_TIMEOUT:
		sec = strtod(arg, &end);
		if (end == arg || *end || !isfinite(sec) || sec <= 0 ||
		    sec > 86400.0 * 24) {
			slotctl_err("--timeout: '%s' is not a number of "
				    "seconds > 0", arg);
			return -EINVAL;
		}
		ctl->timeout_ms = (int)ceil(sec * 1000);
		ctl->timeout_set = true;
		return 0;
	}
	return -EINVAL;
}

/* Builds the getopt table of a verb: its options, then the global ones. */
static int verb_getopt_table(const struct slotctl_verb *v, struct option *t)
{
	int n = 0;

	for (; v->opts && v->opts[n].name && n < SLOTCTL_MAX_OPTS; n++)
		t[n] = (struct option){ v->opts[n].name,
			v->opts[n].arg ? required_argument : no_argument,
			NULL, 256 + n };
	memcpy(t + n, global_opts, sizeof(global_opts));
	memset(t + n + N_GLOBAL_OPTS, 0, sizeof(*t));
	return n;
}

/* Parses argv (argv[0] is the verb) into a; returns 0, 1 for --help, 2
 * for --version, or -EINVAL with the message printed. */
static int verb_parse(struct slotctl *ctl, const struct slotctl_verb *v,
		      int argc, char **argv, struct slotctl_args *a)
{
	struct option table[SLOTCTL_MAX_OPTS + N_GLOBAL_OPTS + 1];
	int c;

	verb_getopt_table(v, table);
	memset(a, 0, sizeof(*a));
	a->verb = v;
	optind = 0;	/* glibc: restart, permuting options after arguments */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "hjs:t:VH:r:", table, NULL)) != -1) {
		if (c >= 256)
			a->opt[c - 256] = optarg ? optarg : "";
		else if (c == OPT_HELP)
			return 1;
		else if (c == OPT_VERSION)
			return 2;
		else if (c == '?') {
			slotctl_err("unknown option or missing value: %s",
				    argv[optind - 1]);
			return -EINVAL;
		} else if (global_opt(ctl, c, optarg))
			return -EINVAL;
	}
	a->argc = argc - optind;
	a->argv = argv + optind;
	return 0;
}

/* Checks the positional count of a parsed verb. */
static int verb_check_args(const struct slotctl_verb *v,
			   const struct slotctl_args *a)
{
	if (a->argc < v->min_args) {
		slotctl_err("missing argument (expected %s)", v->synopsis);
		return -EINVAL;
	}
	if (v->max_args >= 0 && a->argc > v->max_args) {
		slotctl_err("unexpected argument '%s'", a->argv[v->max_args]);
		return -EINVAL;
	}
	return 0;
}

/* Runs a verb: parse its arguments, then call its handler. */
static int verb_run(struct slotctl *ctl, const struct slotctl_noun *n,
		    const struct slotctl_verb *v, int argc, char **argv)
{
	struct slotctl_args a;
	int ret = verb_parse(ctl, v, argc, argv, &a);

	if (ret == 1 || ret == 2) {
		if (ret == 1)
			usage_verb(stdout, n, v);
		else
			version_print();
		return SLOTCTL_EXIT_OK;
	}
	if (!ret)
		ret = verb_check_args(v, &a);
	if (ret) {
		if (!slotctl_json_errors)
			usage_verb(stderr, n, v);
		return SLOTCTL_EXIT_USAGE;
	}
	return v->run(ctl, &a);
}

static const struct slotctl_verb *verb_find(const struct slotctl_noun *n,
					    const char *name)
{
	for (const struct slotctl_verb *v = n->verbs; v->run; v++)
		if (!v->name || !strcmp(v->name, name))
			return v;
	return NULL;
}

/* Dispatches argv (argv[0] is the noun) to one of its verbs. */
static int noun_run(struct slotctl *ctl, const struct slotctl_noun *n,
		    int argc, char **argv)
{
	const struct slotctl_verb *v;

	/* A noun that is its own verb ("call") parses from argv[0]. */
	if (!n->verbs[0].name)
		return verb_run(ctl, n, &n->verbs[0], argc, argv);
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		if (argc >= 2) {
			usage_noun(stdout, n);
			return SLOTCTL_EXIT_OK;
		}
		if (slotctl_json_errors)
			slotctl_err("missing VERB after '%s'", n->name);
		else
			usage_noun(stderr, n);
		return SLOTCTL_EXIT_USAGE;
	}
	v = verb_find(n, argv[1]);
	if (!v) {
		slotctl_err("unknown verb '%s %s'", n->name, argv[1]);
		if (!slotctl_json_errors)
			usage_noun(stderr, n);
		return SLOTCTL_EXIT_USAGE;
	}
	return verb_run(ctl, n, v, argc - 1, argv + 1);
}

/* Parses the options before the noun; returns the index of the noun, 0
 * for --help, -2 for --version, or -1 on a bad option. */
static int global_parse(struct slotctl *ctl, int argc, char **argv)
{
	struct option table[N_GLOBAL_OPTS + 1] = { { 0 } };
	int c;

	memcpy(table, global_opts, sizeof(global_opts));
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+hjs:t:VH:r:", table, NULL)) != -1) {
		if (c == OPT_HELP)
			return 0;
		if (c == OPT_VERSION)
			return -2;
		if (c == '?') {
			slotctl_err("unknown option or missing value: %s",
				    argv[optind - 1]);
			return -1;
		}
		if (global_opt(ctl, c, optarg))
			return -1;
	}
	return optind;
}

static const struct slotctl_noun *noun_find(const char *name)
{
	for (int i = 0; nouns[i]; i++)
		if (!strcmp(nouns[i]->name, name))
			return nouns[i];
	return NULL;
}

/* --json anywhere on the line: errors found before it is parsed (a bad
 * option, an unknown noun) are printed as JSON too. */
static void json_mode_early(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "-j"))
			slotctl_json_errors = true;
}

/* Global options, then NOUN, then the noun's own dispatch. */
int main(int argc, char **argv)
{
	struct slotctl ctl = { .timeout_ms = SLOTCTL_DEFAULT_TIMEOUT_MS };
	const struct slotctl_noun *n;
	const char *env = getenv("SLOTD_SOCKET"), *host = getenv("SLOTD_HOST");
	int i, ret;

	signal(SIGPIPE, SIG_IGN);
	ctl.socket = env && *env ? env : SLOTCTL_DEFAULT_SOCKET;
	ctl.host = host && *host ? host : NULL;
	json_mode_early(argc, argv);
	i = global_parse(&ctl, argc, argv);
	if (i == -2) {
		version_print();
		return SLOTCTL_EXIT_OK;
	}
	if (i == 0 || (i > 0 && i < argc && !strcmp(argv[i], "help"))) {
		usage_top(stdout);
		return SLOTCTL_EXIT_OK;
	}
	if (i < 0 || i >= argc) {
		if (i >= argc)
			slotctl_err("missing NOUN");
		if (!slotctl_json_errors)
			usage_top(stderr);
		return SLOTCTL_EXIT_USAGE;
	}
	n = noun_find(argv[i]);
	if (!n) {
		slotctl_err("unknown noun '%s'", argv[i]);
		if (!slotctl_json_errors)
			usage_top(stderr);
		return SLOTCTL_EXIT_USAGE;
	}
	ret = noun_run(&ctl, n, argc - i, argv + i);
	slotctl_conn_close(ctl.conn);
	return ret;
}
