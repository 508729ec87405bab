/* ThreadSanitizer builds only: lets Criterion start at all.
 *
 * Criterion 2.4 (BoxFort 0.1.2) places its shared arena at a random 16 MiB
 * step in [0x2000'0000'0000, 0x6000'0000'0000) and gives up after ten
 * tries.  TSan reserves all of that range except the PIE window
 * [0x5500'0000'0000, 0x5680'0000'0000), so the runner aborts with "Could
 * not initialize inheritable arena" nine times in ten (Criterion issue
 * #274).  This rand_r steers only BoxFort's draws (those called from
 * libcriterion) into the PIE window; every other caller, our tests
 * included, gets the real rand_r.  Nothing here touches the engine. */
#if defined(__SANITIZE_THREAD__)
#include <dlfcn.h>
#include <string.h>

#define ARENA_BASE 0x200000000000ull /* BoxFort's mmap_base */
#define ARENA_STEP (1ull << 24)	     /* BoxFort's mmap_off */
#define APP_LO 0x550000000000ull     /* TSan PIE window */
#define APP_HI 0x568000000000ull

int rand_r(unsigned *seedp);

int rand_r(unsigned *seedp)
{
	static int (*real_fn)(unsigned *);
	int (*real)(unsigned *) = __atomic_load_n(&real_fn, __ATOMIC_ACQUIRE);
	Dl_info info;
	unsigned steps = (unsigned)((APP_HI - APP_LO) / ARENA_STEP) - 64;
	int r;

	if (!real) {
		real = (int (*)(unsigned *))dlsym(RTLD_NEXT, "rand_r");
		__atomic_store_n(&real_fn, real, __ATOMIC_RELEASE);
	}
	r = real(seedp);
	if (dladdr(__builtin_return_address(0), &info) && info.dli_fname &&
	    strstr(info.dli_fname, "libcriterion"))
		r = (int)((APP_LO - ARENA_BASE) / ARENA_STEP +
			  (unsigned)r % steps);
	return r;
}
#else
/* ISO C wants a translation unit to declare something. */
extern int mmu_tsan_unused;
#endif
