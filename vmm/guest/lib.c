/* Guest kit runtime: serial printf, report port, DMA, power, libc bits. */
#include "vmm/guest/guest.h"

void g_putc(char c)
{
	mmio_write8(VMM_PORT_SERIAL, (uint8_t)c);	/* THR is always ready */
}

void g_puts(const char *s)
{
	while (*s)
		g_putc(*s++);
}

static void put_uint(uint64_t v, unsigned base, int width, char pad)
{
	char buf[24];
	int n = 0;

	do {
		buf[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (width-- > n)
		g_putc(pad);
	while (n)
		g_putc(buf[--n]);
}

/* Formats one conversion; returns the advanced fmt. */
static const char *put_conv(const char *f, va_list *ap)
{
	int longs = 0, width = 0;
	char pad = *f == '0' ? '0' : ' ';
	int64_t s;

	while (*f >= '0' && *f <= '9')
		width = width * 10 + (*f++ - '0');
	while (*f == 'l' || *f == 'z') {
		longs++;
		f++;
	}
	switch (*f) {
	case 'd':
		s = longs ? va_arg(*ap, int64_t) : va_arg(*ap, int);
		if (s < 0)
			g_putc('-');
		put_uint(s < 0 ? -(uint64_t)s : (uint64_t)s, 10, width, pad);
		break;
	case 'u':
	case 'x':
		put_uint(longs ? va_arg(*ap, uint64_t) : va_arg(*ap, unsigned),
			 *f == 'x' ? 16 : 10, width, pad);
		break;
	case 'p':
		g_puts("0x");
		put_uint((uintptr_t)va_arg(*ap, void *), 16, 0, ' ');
		break;
	case 's':
		g_puts(va_arg(*ap, const char *));
		break;
	case 'c':
		g_putc((char)va_arg(*ap, int));
		break;
	default:
		g_putc(*f);
	}
	return f + 1;
}

void g_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	while (*fmt) {
		if (*fmt != '%') {
			g_putc(*fmt++);
			continue;
		}
		fmt = put_conv(fmt + 1, &ap);
	}
	va_end(ap);
}

void g_report(uint32_t tag, uint64_t value)
{
	mmio_write32(VMM_PORT_REPORT_TAG, tag);
	mmio_write64(VMM_PORT_REPORT_LO, value);	/* LO, then HI commits */
}

uint32_t g_dma(struct vmm_dma_desc *d)
{
	uint64_t gpa = (uintptr_t)d;	/* identity mapped */

	d->status = VMM_DMA_ST_PENDING;
	__asm__ volatile("" : : : "memory");
	mmio_write64(VMM_PORT_DMA_LO, gpa);	/* LO, then HI runs it */
	__asm__ volatile("" : : : "memory");
	return *(volatile uint32_t *)&d->status;
}

void g_exit(uint32_t status)
{
	for (;;)
		mmio_write32(VMM_PORT_POWER, status);
}

void g_park(void)
{
	for (;;)
		mmio_write8(VMM_PORT_PARK, 0);
}

__attribute__((weak)) void guest_secondary(struct vmm_boot_params *bp,
					   unsigned cpu)
{
	(void)bp;
	(void)cpu;
}

uint64_t g_tsc_to_ns(const struct vmm_boot_params *bp, uint64_t t)
{
	uint64_t k = bp->tsc_khz;

	if (!k)
		return t;
	return t / k * 1000000 + (t % k) * 1000000 / k;
}

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;

	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;

	while (n--)
		*p++ = *q++;
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;

	if (p < q)
		return memcpy(d, s, n);
	while (n--)
		p[n] = q[n];
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *p = a, *q = b;

	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}
