/* Logging: thread-safe single-line writes to stderr or a log file, or
 * native journal entries with structured fields when stderr is the
 * journal. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "common/log.h"

static enum slog_level cur_level = SLOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_path;
static int log_fd = 2;
static int journal;
static __thread struct slog_fields context = { NULL, NULL, -1, -1 };

static const char *const level_names[] = { "error", "warn", "info", "debug" };
/* sd-daemon(3) priorities: <3> err, <4> warning, <6> info, <7> debug. */
static const char *const level_prio[] = { "<3>", "<4>", "<6>", "<7>" };

int slog_level_parse(const char *s, enum slog_level *out)
{
	for (int i = 0; i <= SLOG_DEBUG; i++) {
		if (!strcmp(s, level_names[i])) {
			*out = (enum slog_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *slog_level_name(enum slog_level level)
{
	return level <= SLOG_DEBUG ? level_names[level] : "?";
}

void slog_level_set(enum slog_level level)
{
	__atomic_store_n(&cur_level, level, __ATOMIC_RELAXED);
}

enum slog_level slog_level_get(void)
{
	return __atomic_load_n(&cur_level, __ATOMIC_RELAXED);
}

bool slog_journal_detect(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(2, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void slog_journal_set(int on)
{
	journal = on;
}

int slog_fd(void)
{
	int fd;

	pthread_mutex_lock(&log_lock);
	fd = log_fd;
	pthread_mutex_unlock(&log_lock);
	return fd;
}

void slog_context_set(const struct slog_fields *f)
{
	context = f ? *f : SLOG_FIELDS_NONE;
}

int slog_file_set(const char *path)
{
	pthread_mutex_lock(&log_lock);
	free(log_path);
	log_path = path ? strdup(path) : NULL;
	pthread_mutex_unlock(&log_lock);
	return slog_reopen();
}

int slog_reopen(void)
{
	int fd, r = 0;

	pthread_mutex_lock(&log_lock);
	if (log_path) {
		fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0) {
			r = -errno;
		} else {
			if (log_fd > 2)
				close(log_fd);
			log_fd = fd;
		}
	} else if (log_fd > 2) {
		close(log_fd);
		log_fd = 2;
	}
	pthread_mutex_unlock(&log_lock);
	return r;
}

/* One "NAME=value" iovec in buf; returns the next free byte of buf. */
__attribute__((format(printf, 5, 6)))
static char *field_add(struct iovec *iov, int *n, char *buf, size_t room,
		       const char *fmt, ...)
{
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(buf, room, fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= room)
		return buf;	/* no room: the field is left out */
	iov[(*n)++] = (struct iovec){ buf, (size_t)len };
	return buf + len + 1;
}

/* Sends one native journal entry: the message, its priority and the
 * fields that are set.  0 or a negative errno from sd_journal_sendv. */
static int journal_send(enum slog_level level, const struct slog_fields *f,
			const char *msg)
{
	static const int prio[] = { 3, 4, 6, 7 };
	char buf[1024], *p = buf, *end = buf + sizeof(buf);
	struct iovec iov[8];
	int n = 0;

	iov[n++] = (struct iovec){ (void *)msg, strlen(msg) };
	p = field_add(iov, &n, p, (size_t)(end - p), "PRIORITY=%d", prio[level]);
	p = field_add(iov, &n, p, (size_t)(end - p), "SYSLOG_IDENTIFIER=slotd");
	if (f->method)
		p = field_add(iov, &n, p, (size_t)(end - p), "METHOD=%s", f->method);
	if (f->vm)
		p = field_add(iov, &n, p, (size_t)(end - p), "VM=%s", f->vm);
	if (f->slot >= 0)
		p = field_add(iov, &n, p, (size_t)(end - p), "SLOT=%lld", f->slot);
	if (f->peer_uid >= 0)
		field_add(iov, &n, p, (size_t)(end - p), "PEER_UID=%lld", f->peer_uid);
	return sd_journal_sendv(iov, n);
}

/* Fields of an entry: explicit ones win over the thread's context. */
static struct slog_fields fields_merge(const struct slog_fields *f)
{
	struct slog_fields m = context;

	if (!f)
		return m;
	if (f->method)
		m.method = f->method;
	if (f->vm)
		m.vm = f->vm;
	if (f->slot >= 0)
		m.slot = f->slot;
	if (f->peer_uid >= 0)
		m.peer_uid = f->peer_uid;
	return m;
}

/* Formats and writes one entry: to the journal natively when stderr is
 * the journal (falling back to a <N>-prefixed line if that fails), else a
 * timestamped line. */
__attribute__((format(printf, 3, 0)))
static void slog_emit(enum slog_level level, const struct slog_fields *f,
		      const char *fmt, va_list ap)
{
	char line[2048];
	int n = 0;

	if (journal && log_fd == 2) {
		struct slog_fields m = fields_merge(f);
		char msg[sizeof(line)] = "MESSAGE=";

		vsnprintf(msg + 8, sizeof(msg) - 8, fmt, ap);
		if (journal_send(level, &m, msg) >= 0)
			return;
		n = snprintf(line, sizeof(line), "%s%s", level_prio[level], msg + 8);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %s: ",
			      ts.tv_nsec / 1000000, level_names[level]);
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	}
	if (n >= (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	pthread_mutex_lock(&log_lock);
	if (write(log_fd, line, (size_t)n) < 0) {
		/* Nowhere left to report a failing log write. */
	}
	pthread_mutex_unlock(&log_lock);
}

void slog(enum slog_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > slog_level_get())
		return;
	va_start(ap, fmt);
	slog_emit(level, NULL, fmt, ap);
	va_end(ap);
}

void slog_fields(enum slog_level level, const struct slog_fields *f,
		 const char *fmt, ...)
{
	va_list ap;

	if (level > slog_level_get())
		return;
	va_start(ap, fmt);
	slog_emit(level, f, fmt, ap);
	va_end(ap);
}
