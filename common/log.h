/* Logging for the daemon and the modules it hosts: one line per event to
 * stderr or to a log file reopened on SIGHUP.  When stderr is the journal
 * (systemd's JOURNAL_STREAM names it), entries go to the journal natively
 * with structured fields: METHOD, VM, SLOT and PEER_UID, taken from the
 * calling thread's context (what it serves now) or given per call. */
#ifndef SLOTD_LOG_H
#define SLOTD_LOG_H

#include <stdbool.h>

enum slog_level {
	SLOG_ERROR,
	SLOG_WARN,
	SLOG_INFO,
	SLOG_DEBUG,
};

/* Journal fields of an entry; NULL or -1 leave a field out. */
struct slog_fields {
	const char *method;	/* METHOD: the JSON-RPC method being served */
	const char *vm;		/* VM: the VM's name */
	long long slot;		/* SLOT: memslot id */
	long long peer_uid;	/* PEER_UID: uid of the client served */
};

#define SLOG_FIELDS_NONE ((struct slog_fields){ NULL, NULL, -1, -1 })

/* Parses "error", "warn", "info", "debug"; -EINVAL otherwise. */
int slog_level_parse(const char *s, enum slog_level *out);
/* The name of a level ("info"). */
const char *slog_level_name(enum slog_level level);
/* Any thread, any time: takes effect for the next line logged. */
void slog_level_set(enum slog_level level);
enum slog_level slog_level_get(void);
/* Logs to path instead of stderr (NULL: stderr); reopened by slog_reopen. */
int slog_file_set(const char *path);
int slog_reopen(void);
/* The descriptor lines go to now (for child processes' stderr). */
int slog_fd(void);
/* Whether stderr is the journal: $JOURNAL_STREAM names its device and
 * inode (systemd.exec(5)); a stderr redirected elsewhere is not. */
bool slog_journal_detect(void);
/* Native journal entries (with fields) instead of timestamped lines. */
void slog_journal_set(int on);
/* The fields every entry of this thread carries until the next call;
 * the strings must outlive that (NULL clears). */
void slog_context_set(const struct slog_fields *f);

__attribute__((format(printf, 2, 3)))
void slog(enum slog_level level, const char *fmt, ...);
/* slog with fields of its own (they win over the thread's context). */
__attribute__((format(printf, 3, 4)))
void slog_fields(enum slog_level level, const struct slog_fields *f,
		 const char *fmt, ...);

#define slog_error(...)	slog(SLOG_ERROR, __VA_ARGS__)
#define slog_warn(...)	slog(SLOG_WARN, __VA_ARGS__)
#define slog_info(...)	slog(SLOG_INFO, __VA_ARGS__)
#define slog_debug(...)	slog(SLOG_DEBUG, __VA_ARGS__)

#endif
