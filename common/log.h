/* Logging for the daemon and the modules it hosts: one line per event to
 * stderr (the journal under systemd, with <N> priority prefixes) or to a
 * log file reopened on SIGHUP. */
#ifndef SLOTD_LOG_H
#define SLOTD_LOG_H

enum slog_level {
	SLOG_ERROR,
	SLOG_WARN,
	SLOG_INFO,
	SLOG_DEBUG,
};

/* Parses "error", "warn", "info", "debug"; -EINVAL otherwise. */
int slog_level_parse(const char *s, enum slog_level *out);
void slog_level_set(enum slog_level level);
enum slog_level slog_level_get(void);
/* Logs to path instead of stderr (NULL: stderr); reopened by slog_reopen. */
int slog_file_set(const char *path);
int slog_reopen(void);
/* The descriptor lines go to now (for child processes' stderr). */
int slog_fd(void);
/* Prefix lines with journal priorities instead of timestamps. */
void slog_journal_set(int on);

__attribute__((format(printf, 2, 3)))
void slog(enum slog_level level, const char *fmt, ...);

#define slog_error(...)	slog(SLOG_ERROR, __VA_ARGS__)
#define slog_warn(...)	slog(SLOG_WARN, __VA_ARGS__)
#define slog_info(...)	slog(SLOG_INFO, __VA_ARGS__)
#define slog_debug(...)	slog(SLOG_DEBUG, __VA_ARGS__)

#endif
