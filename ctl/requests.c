/* Outcomes of the requests a client gave a request_id, so that a retry
 * (after a timeout, a dropped connection or a restart of slotd) gets the
 * first outcome instead of acting twice.
 *
 * Kept in memory (a hash by id, oldest first in a list) and, with a state
 * directory, in requests.journal there: one JSON text per line, made
 * durable before the reply is sent:
 *   {"id": ID, "at": NS, "method": M, "fp": "HEX", "error": B, "reply": {..}}
 *   {"id": ID, "at": NS, "in_doubt": true, "vm": NAME}
 * The change itself and its outcome are two writes.  A crash between them
 * leaves the change on disk (its journal record names the id, see
 * ctl/store.c) without an outcome; the next slotd finds that id as its
 * VM's last record and keeps it "in doubt": a retry is told the call was
 * carried out but its reply was lost, never that it may act again.
 *
 * Bounded: CTL_REQUEST_WINDOW_S seconds, CTL_REQUEST_KEEP ids and
 * CTL_REQUEST_BYTES of replies, whichever is reached first drops the
 * oldest.  The file is rewritten (atomically) with what is kept when it
 * has twice as many lines, and at start. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/durable.h"
#include "common/log.h"
#include "ctl/internal.h"

#define REQ_FILE	"requests.journal"
#define REQ_BUCKETS	4096u

struct req {
	struct req *hnext;		/* same bucket */
	TAILQ_ENTRY(req) link;		/* oldest first */
	char id[CTL_REQUEST_ID_MAX + 1];
	char method[64];
	char vm[VMM_NAME_MAX];
	uint64_t fp, at_ns;
	bool error, in_doubt;
	char *reply;
	size_t len;
};

struct ctl_requests {
	struct req *buckets[REQ_BUCKETS];
	TAILQ_HEAD(, req) order;
	size_t count, bytes;
	char *dir;			/* NULL: memory only */
	int fd;				/* requests.journal, O_APPEND; -1 */
	size_t lines;			/* in the file */
	char current[CTL_REQUEST_ID_MAX + 1];	/* between begin and end */
};

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static unsigned bucket_of(const char *id)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 0x100000001b3ull;
	return (unsigned)(h % REQ_BUCKETS);
}

int ctl_request_id_check(const char *id, size_t len, char *why, size_t whylen)
{
	static const char extra[] = "._:/@+=-";

	if (len == 0 || len > CTL_REQUEST_ID_MAX) {
		snprintf(why, whylen, "a request_id has 1 to %d characters, not %zu",
			 CTL_REQUEST_ID_MAX, len);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		char c = id[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    (c && strchr(extra, c)))
			continue;
		snprintf(why, whylen, "a request_id has letters, digits and . _ : / @ + = - "
			 "only; character %zu is not one", i + 1);
		return -EINVAL;
	}
	return 0;
}

static struct req *req_lookup(struct ctl_requests *q, const char *id)
{
	for (struct req *e = q->buckets[bucket_of(id)]; e; e = e->hnext)
		if (!strcmp(e->id, id))
			return e;
	return NULL;
}

static void req_unlink(struct ctl_requests *q, struct req *e)
{
	struct req **p = &q->buckets[bucket_of(e->id)];

	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
	TAILQ_REMOVE(&q->order, e, link);
	q->count--;
	q->bytes -= e->len;
	free(e->reply);
	free(e);
}

/* Drops what is past the window or over the bounds, oldest first. */
static size_t reqs_trim(struct ctl_requests *q, uint64_t now)
{
	struct req *e;
	size_t n = 0;

	while ((e = TAILQ_FIRST(&q->order)) &&
	       (q->count > CTL_REQUEST_KEEP || q->bytes > CTL_REQUEST_BYTES ||
		e->at_ns + CTL_REQUEST_WINDOW_S * 1000000000ull < now)) {
		req_unlink(q, e);
		n++;
	}
	return n;
}

/* Takes e into the table (replacing an entry with its id), newest last. */
static void req_insert(struct ctl_requests *q, struct req *e)
{
	struct req *old = req_lookup(q, e->id);
	unsigned b = bucket_of(e->id);

	if (old)
		req_unlink(q, old);
	e->hnext = q->buckets[b];
	q->buckets[b] = e;
	TAILQ_INSERT_TAIL(&q->order, e, link);
	q->count++;
	q->bytes += e->len;
}

/* ---- the file ------------------------------------------------------------- */

/* e as one line of the file (malloc'd, with its newline). */
static char *req_line(const struct req *e, size_t *len)
{
	char *p = NULL;
	int n;

	if (e->in_doubt)
		n = asprintf(&p, "{\"id\":\"%s\",\"at\":%" PRIu64 ",\"in_doubt\":true,"
			     "\"vm\":\"%s\"}\n", e->id, e->at_ns, e->vm);
	else
		n = asprintf(&p, "{\"id\":\"%s\",\"at\":%" PRIu64 ",\"method\":\"%s\","
			     "\"fp\":\"%016" PRIx64 "\",\"error\":%s,\"reply\":%.*s}\n",
			     e->id, e->at_ns, e->method, e->fp, e->error ? "true" : "false",
			     (int)e->len, e->reply);
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return p;
}

static int file_open(struct ctl_requests *q)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", q->dir, REQ_FILE);
	if (q->fd >= 0)
		close(q->fd);
	q->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	return q->fd < 0 ? -errno : 0;
}

/* Rewrites the file with what the table holds, atomically. */
static int file_rewrite(struct ctl_requests *q)
{
	char *text = NULL;
	size_t len = 0, cap = 0, lines = 0;
	struct req *e;
	int r = 0;

	TAILQ_FOREACH(e, &q->order, link) {
		size_t n;
		char *l = req_line(e, &n);

		if (l && len + n > cap) {
			char *t = realloc(text, cap = 2 * (len + n));

			if (!t) {
				free(l);
				l = NULL;
			} else {
				text = t;
			}
		}
		if (!l) {
			r = -ENOMEM;
			goto out;
		}
		memcpy(text + len, l, n);
		len += n;
		lines++;
		free(l);
	}
	r = durable_file_write(q->dir, REQ_FILE, text ? text : "", len);
	if (!r)
		r = file_open(q);
	if (!r)
		q->lines = lines;
out:
	free(text);
	return r;
}

/* Appends e durably; rewrites the file instead once it has twice the
 * lines the table keeps. */
static int file_append(struct ctl_requests *q, const struct req *e)
{
	size_t len;
	char *l;
	int r;

	if (!q->dir)
		return 0;
	if (q->lines >= 2 * CTL_REQUEST_KEEP || q->fd < 0)
		return file_rewrite(q);
	if (!(l = req_line(e, &len)))
		return -ENOMEM;
	r = durable_append(q->fd, l, len);
	free(l);
	if (!r)
		q->lines++;
	return r;
}

/* One line of the file into a new entry; NULL if it is not one. */
static struct req *req_parse(const char *line)
{
	json_object *o = json_tokener_parse(line), *v;
	struct req *e = calloc(1, sizeof(*e));
	const char *s;

	if (!o || !e || !json_object_is_type(o, json_type_object))
		goto bad;
	if (!json_object_object_get_ex(o, "id", &v) || !json_object_is_type(v, json_type_string))
		goto bad;
	s = json_object_get_string(v);
	if (ctl_request_id_check(s, strlen(s), (char[8]){ 0 }, 8))
		goto bad;
	strcpy(e->id, s);
	if (!json_object_object_get_ex(o, "at", &v) || !json_object_is_type(v, json_type_int))
		goto bad;
	e->at_ns = json_object_get_uint64(v);
	if (json_object_object_get_ex(o, "in_doubt", &v) && json_object_get_boolean(v)) {
		e->in_doubt = true;
		if (json_object_object_get_ex(o, "vm", &v))
			snprintf(e->vm, sizeof(e->vm), "%s", json_object_get_string(v));
		json_object_put(o);
		return e;
	}
	if (!json_object_object_get_ex(o, "method", &v) || !json_object_is_type(v, json_type_string))
		goto bad;
	snprintf(e->method, sizeof(e->method), "%s", json_object_get_string(v));
	if (!json_object_object_get_ex(o, "fp", &v) || !json_object_is_type(v, json_type_string) ||
	    sscanf(json_object_get_string(v), "%" SCNx64, &e->fp) != 1)
		goto bad;
	e->error = json_object_object_get_ex(o, "error", &v) && json_object_get_boolean(v);
	if (!json_object_object_get_ex(o, "reply", &v) || !v)
		goto bad;
	s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
					   JSON_C_TO_STRING_NOSLASHESCAPE);
	e->len = strlen(s);
	if (!(e->reply = strdup(s)))
		goto bad;
	json_object_put(o);
	return e;
bad:
	json_object_put(o);
	if (e)
		free(e->reply);
	free(e);
	return NULL;
}

int ctl_requests_parse(struct ctl_requests *q, const char *text, uint64_t now,
		       unsigned *bad)
{
	const char *p = text;

	*bad = 0;
	while (p && *p) {
		const char *nl = strchr(p, '\n');
		struct req *e;
		char *line;

		if (!nl) {		/* torn: an outcome never answered */
			(*bad)++;
			break;
		}
		if (!(line = strndup(p, (size_t)(nl - p))))
			return -ENOMEM;
		e = req_parse(line);
		free(line);
		if (e)
			req_insert(q, e);
		else
			(*bad)++;
		p = nl + 1;
	}
	reqs_trim(q, now);
	return 0;
}

/* ---- interface --------------------------------------------------------------- */

int ctl_requests_new(const char *dir, struct ctl_requests **out)
{
	struct ctl_requests *q = calloc(1, sizeof(*q));

	if (!q || (dir && !(q->dir = strdup(dir)))) {
		free(q);
		return -ENOMEM;
	}
	TAILQ_INIT(&q->order);
	q->fd = -1;
	*out = q;
	return 0;
}

void ctl_requests_free(struct ctl_requests *q)
{
	struct req *e;

	if (!q)
		return;
	while ((e = TAILQ_FIRST(&q->order)))
		req_unlink(q, e);
	if (q->fd >= 0)
		close(q->fd);
	free(q->dir);
	free(q);
}

int ctl_requests_load(struct ctl_requests *q)
{
	char path[4200], *text = NULL;
	unsigned bad = 0;
	struct stat sb;
	int fd, r = 0;

	if (!q->dir)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", q->dir, REQ_FILE);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno != ENOENT)
		return -errno;
	if (fd >= 0) {
		if (fstat(fd, &sb) || !S_ISREG(sb.st_mode))
			r = -EINVAL;
		else if (!(text = calloc(1, (size_t)sb.st_size + 1)))
			r = -ENOMEM;
		else if (pread(fd, text, (size_t)sb.st_size, 0) != sb.st_size)
			r = -EIO;
		close(fd);
	}
	if (!r && text)
		r = ctl_requests_parse(q, text, realtime_ns(), &bad);
	free(text);
	if (r)
		return r;
	if (bad)
		slog_warn("state: %s: %u line(s) that are not a request's outcome ignored "
			  "(a torn last line is a reply never sent)", REQ_FILE, bad);
	if (q->count)
		slog_info("state: %zu request outcome(s) kept for retries", q->count);
	return file_rewrite(q);
}

size_t ctl_requests_count(const struct ctl_requests *q)
{
	return q->count;
}

int ctl_request_find(struct ctl *ctl, const char *id, struct ctl_request *out)
{
	struct ctl_requests *q = ctl->requests;
	struct req *e;

	reqs_trim(q, realtime_ns());
	if (!(e = req_lookup(q, id)))
		return -ENOENT;
	out->method = e->method;
	out->fingerprint = e->fp;
	out->error = e->error;
	out->in_doubt = e->in_doubt;
	out->vm = e->vm;
	out->reply = e->reply;
	out->len = e->len;
	out->at_ns = e->at_ns;
	return 0;
}

void ctl_request_begin(struct ctl *ctl, const char *id)
{
	snprintf(ctl->requests->current, sizeof(ctl->requests->current), "%s", id);
	if (ctl->store)
		store_rid_set(ctl->store, id, realtime_ns());
}

int ctl_request_end(struct ctl *ctl, const struct ctl_request *o, bool keep)
{
	struct ctl_requests *q = ctl->requests;
	struct req *e;
	int r;

	if (ctl->store)
		store_rid_set(ctl->store, NULL, 0);
	if (!keep || !q->current[0]) {
		q->current[0] = 0;
		return 0;
	}
	if (!(e = calloc(1, sizeof(*e))) || !(e->reply = malloc(o->len + 1))) {
		free(e);
		q->current[0] = 0;
		return -ENOMEM;
	}
	strcpy(e->id, q->current);
	q->current[0] = 0;
	snprintf(e->method, sizeof(e->method), "%s", o->method);
	e->fp = o->fingerprint;
	e->error = o->error;
	e->at_ns = realtime_ns();
	memcpy(e->reply, o->reply, o->len);
	e->reply[o->len] = 0;
	e->len = o->len;
	req_insert(q, e);
	r = file_append(q, e);
	reqs_trim(q, e->at_ns);
	if (r)
		slog_error("state: %s: request %s: outcome not written (%s); a retry after a "
			   "restart is answered as in doubt", REQ_FILE, e->id, strerror(-r));
	return r;
}

int ctl_request_doubt(struct ctl *ctl, const char *id, uint64_t at_ns, const char *vm)
{
	struct ctl_requests *q = ctl->requests;
	struct req *e;

	if (!id[0] || req_lookup(q, id) ||
	    at_ns + CTL_REQUEST_WINDOW_S * 1000000000ull < realtime_ns())
		return 0;
	if (!(e = calloc(1, sizeof(*e))))
		return -ENOMEM;
	snprintf(e->id, sizeof(e->id), "%s", id);
	snprintf(e->vm, sizeof(e->vm), "%s", vm);
	e->in_doubt = true;
	e->at_ns = at_ns;
	req_insert(q, e);
	slog_warn("state: VM %s: request %s was carried out but its reply was never recorded "
		  "(slotd stopped between the two); a retry is told so", vm, id);
	return file_append(q, e);
}
