/* Per-VM console: a ring of the serial output, a log file, and the log of
 * report-port records.  Written on vCPU threads, read on any thread. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vmm/internal.h"

/* Opens DIR/NAME.log (truncated) when dir is set. */
int console_init(struct vmm_console *c, const char *dir, const char *name)
{
	char path[PATH_MAX];

	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->log_fd = -1;
	if (!dir)
		return 0;
	snprintf(path, sizeof(path), "%s/%s.log", dir, name);
	c->log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (c->log_fd < 0) {
		pthread_mutex_destroy(&c->lock);
		return -errno;
	}
	return 0;
}

/* Writes the pending line to the log file, which stops growing at
 * VMM_CONSOLE_LOG_MAX (the ring keeps the newest output regardless).
 * Called with c->lock held. */
static void log_flush_locked(struct vmm_console *c)
{
	static const char cut[] = "\n[slotd: console log truncated here]\n";
	size_t off = 0;
	ssize_t n;

	if (c->log_fd >= 0 && c->log_bytes + c->line_len > VMM_CONSOLE_LOG_MAX) {
		if (c->log_bytes <= VMM_CONSOLE_LOG_MAX &&
		    write(c->log_fd, cut, sizeof(cut) - 1) > 0)
			c->log_bytes = VMM_CONSOLE_LOG_MAX + 1;
		c->line_len = 0;
		return;
	}
	c->log_bytes += c->line_len;
	while (c->log_fd >= 0 && off < c->line_len) {
		n = write(c->log_fd, c->line + off, c->line_len - off);
		if (n < 0 && errno == EINTR)	/* the kick signal */
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	c->line_len = 0;
}

void console_flush(struct vmm_console *c)
{
	pthread_mutex_lock(&c->lock);
	log_flush_locked(c);
	pthread_mutex_unlock(&c->lock);
}

void console_fini(struct vmm_console *c)
{
	console_flush(c);
	if (c->log_fd >= 0)
		close(c->log_fd);
	pthread_mutex_destroy(&c->lock);
}

/* Called with c->lock held. */
static void putc_locked(struct vmm_console *c, char ch)
{
	c->ring[c->total % VMM_CONSOLE_RING] = ch;
	c->total++;
	c->line[c->line_len++] = ch;
	if (ch == '\n' || c->line_len == sizeof(c->line))
		log_flush_locked(c);
}

void console_putc(struct vmm_vm *vm, char ch)
{
	pthread_mutex_lock(&vm->console.lock);
	putc_locked(&vm->console, ch);
	pthread_mutex_unlock(&vm->console.lock);
}

void console_puts(struct vmm_vm *vm, const char *s)
{
	pthread_mutex_lock(&vm->console.lock);
	while (*s)
		putc_locked(&vm->console, *s++);
	pthread_mutex_unlock(&vm->console.lock);
}

/* Stores one report record; also echoes it on the console. */
void console_report(struct vmm_vm *vm, unsigned vcpu, uint32_t tag,
		    uint64_t value)
{
	struct vmm_console *c = &vm->console;
	struct vmm_report *rec;
	char line[96];

	snprintf(line, sizeof(line), "[slotd report vcpu%u tag=%u value=%llu]\n",
		 vcpu, tag, (unsigned long long)value);
	pthread_mutex_lock(&c->lock);
	rec = &c->reports[c->nr_reports % VMM_REPORT_RING];
	rec->seq = c->nr_reports++;
	rec->host_ns = vmm_now_ns();
	rec->vcpu = vcpu;
	rec->tag = tag;
	rec->value = value;
	for (const char *p = line; *p; p++)
		putc_locked(c, *p);
	pthread_mutex_unlock(&c->lock);
}

/* Copies the newest bytes of the ring, oldest first. */
int vmm_vm_console_read(struct vmm_vm *vm, size_t tail, char *buf, size_t len,
			size_t *n)
{
	struct vmm_console *c = &vm->console;
	uint64_t avail, want, from;

	pthread_mutex_lock(&c->lock);
	avail = c->total < VMM_CONSOLE_RING ? c->total : VMM_CONSOLE_RING;
	want = tail && tail < len ? tail : len;
	want = want < avail ? want : avail;
	from = c->total - want;
	for (uint64_t i = 0; i < want; i++)
		buf[i] = c->ring[(from + i) % VMM_CONSOLE_RING];
	pthread_mutex_unlock(&c->lock);
	*n = (size_t)want;
	return 0;
}

/* Copies kept records with seq >= from. */
int vmm_vm_reports_read(struct vmm_vm *vm, uint64_t from,
			struct vmm_report *recs, size_t max, size_t *n)
{
	struct vmm_console *c = &vm->console;
	uint64_t oldest, i;
	size_t k = 0;

	pthread_mutex_lock(&c->lock);
	oldest = c->nr_reports > VMM_REPORT_RING ?
		 c->nr_reports - VMM_REPORT_RING : 0;
	for (i = from > oldest ? from : oldest; i < c->nr_reports && k < max; i++)
		recs[k++] = c->reports[i % VMM_REPORT_RING];
	pthread_mutex_unlock(&c->lock);
	*n = k;
	return 0;
}
