/* Logging: thread-safe single-line writes to stderr or a log file. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

static enum slog_level cur_level = SLOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_path;
static int log_fd = 2;
static int journal;

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

void slog_level_set(enum slog_level level)
{
	__atomic_store_n(&cur_level, level, __ATOMIC_RELAXED);
}

enum slog_level slog_level_get(void)
{
	return __atomic_load_n(&cur_level, __ATOMIC_RELAXED);
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

void slog(enum slog_level level, const char *fmt, ...)
{
	char line[2048];
	int n = 0;
	va_list ap;

	if (level > slog_level_get())
		return;
	if (journal && log_fd == 2) {
		n = snprintf(line, sizeof(line), "%s", level_prio[level]);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %s: ",
			      ts.tv_nsec / 1000000, level_names[level]);
	}
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	pthread_mutex_lock(&log_lock);
	if (write(log_fd, line, (size_t)n) < 0) {
		/* Nowhere left to report a failing log write. */
	}
	pthread_mutex_unlock(&log_lock);
}
