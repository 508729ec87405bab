/* Probing of the host's KVM: API version, limits, quirks, VM types. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/internal.h"

const struct vmm_quirk_desc vmm_quirk_descs[] = {
	{ "lint0_reenabled",		KVM_X86_QUIRK_LINT0_REENABLED },
	{ "cd_nw_cleared",		KVM_X86_QUIRK_CD_NW_CLEARED },
	{ "lapic_mmio_hole",		KVM_X86_QUIRK_LAPIC_MMIO_HOLE },
	{ "out_7e_inc_rip",		KVM_X86_QUIRK_OUT_7E_INC_RIP },
	{ "misc_enable_no_mwait",	KVM_X86_QUIRK_MISC_ENABLE_NO_MWAIT },
	{ "fix_hypercall_insn",		KVM_X86_QUIRK_FIX_HYPERCALL_INSN },
	{ "mwait_never_ud_faults",	KVM_X86_QUIRK_MWAIT_NEVER_UD_FAULTS },
	{ "slot_zap_all",		KVM_X86_QUIRK_SLOT_ZAP_ALL },
	{ "stuff_feature_msrs",		KVM_X86_QUIRK_STUFF_FEATURE_MSRS },
	{ "ignore_guest_pat",		KVM_X86_QUIRK_IGNORE_GUEST_PAT },
	{ "vmcs12_allow_freeze_in_smm",	KVM_X86_QUIRK_VMCS12_ALLOW_FREEZE_IN_SMM },
};
const size_t vmm_quirk_desc_count =
	sizeof(vmm_quirk_descs) / sizeof(vmm_quirk_descs[0]);

uint64_t vmm_quirk_slot_zap_all(void)
{
	return KVM_X86_QUIRK_SLOT_ZAP_ALL;
}

uint64_t vmm_quirks_all(void)
{
	uint64_t all = 0;

	for (size_t i = 0; i < vmm_quirk_desc_count; i++)
		all |= vmm_quirk_descs[i].bit;
	return all;
}

unsigned vmm_kvm_vm_type_protected(void)
{
	return KVM_X86_SW_PROTECTED_VM;
}

const struct vmm_quirk_desc *vmm_quirk_lookup(const char *name)
{
	for (size_t i = 0; i < vmm_quirk_desc_count; i++)
		if (!strcmp(vmm_quirk_descs[i].name, name))
			return &vmm_quirk_descs[i];
	return NULL;
}

const char *vmm_kvm_vm_type_name(unsigned type)
{
	static const char *const names[] = {
		[KVM_X86_DEFAULT_VM] = "default",
		[KVM_X86_SW_PROTECTED_VM] = "sw_protected",
		[KVM_X86_SEV_VM] = "sev",
		[KVM_X86_SEV_ES_VM] = "sev_es",
		[KVM_X86_SNP_VM] = "snp",
		[KVM_X86_TDX_VM] = "tdx",
	};

	if (type < sizeof(names) / sizeof(names[0]) && names[type])
		return names[type];
	return "unknown";
}

static int check_ext(int fd, unsigned long cap)
{
	int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);

	return r < 0 ? 0 : r;
}

void vmm_kvm_probe(int kvm_fd, struct vmm_caps *caps)
{
	int r;

	caps->api_version = ioctl(kvm_fd, KVM_GET_API_VERSION, 0);
	caps->max_memslots = check_ext(kvm_fd, KVM_CAP_NR_MEMSLOTS);
	caps->max_vcpus = check_ext(kvm_fd, KVM_CAP_MAX_VCPUS);
	caps->nr_vcpus = check_ext(kvm_fd, KVM_CAP_NR_VCPUS);
	r = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DISABLE_QUIRKS2);
	caps->disable_quirks2 = r > 0;
	caps->supported_quirks = r > 0 ? (uint64_t)r : 0;
	r = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
	caps->vm_types_cap = r > 0;
	/* Without KVM_CAP_VM_TYPES only the default type exists. */
	caps->vm_types = r > 0 ? (uint64_t)r : 1u << KVM_X86_DEFAULT_VM;
	caps->user_memory2 = check_ext(kvm_fd, KVM_CAP_USER_MEMORY2) > 0;
	caps->guest_memfd = check_ext(kvm_fd, KVM_CAP_GUEST_MEMFD) > 0;
	caps->readonly_mem = check_ext(kvm_fd, KVM_CAP_READONLY_MEM) > 0;
	caps->stats_fd = check_ext(kvm_fd, KVM_CAP_BINARY_STATS_FD) > 0;
	caps->memory_attributes = check_ext(kvm_fd, KVM_CAP_MEMORY_ATTRIBUTES) > 0;
}

/* Opens the KVM device; on failure records why in caps and returns -errno. */
static int kvm_open(const char *path, struct vmm_caps *caps)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		caps->kvm_errno = errno;
		snprintf(caps->kvm_error, sizeof(caps->kvm_error),
			 "cannot open %s: %s", path, strerror(errno));
		return -caps->kvm_errno;
	}
	if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		caps->kvm_errno = ENOTSUP;
		snprintf(caps->kvm_error, sizeof(caps->kvm_error),
			 "%s speaks an unexpected KVM API version", path);
		close(fd);
		return -ENOTSUP;
	}
	return fd;
}

/* KVM_GET_SUPPORTED_CPUID, growing the buffer until it fits. */
static struct kvm_cpuid2 *supported_cpuid(int kvm_fd)
{
	struct kvm_cpuid2 *c = NULL;

	for (unsigned n = 64; n <= 4096; n *= 2) {
		free(c);
		c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return NULL;
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		if (errno != E2BIG)
			break;
	}
	free(c);
	return NULL;
}

bool cpuid_1g_pages(const struct kvm_cpuid2 *c)
{
	for (unsigned i = 0; c && i < c->nent; i++)
		if (c->entries[i].function == 0x80000001)
			return c->entries[i].edx & (1u << 26);
	return false;
}

/* Guest physical address width (CPUID 0x80000008), 36 if unknown. */
unsigned cpuid_phys_bits(const struct kvm_cpuid2 *c)
{
	for (unsigned i = 0; c && i < c->nent; i++)
		if (c->entries[i].function == 0x80000008)
			return c->entries[i].eax & 0xff;
	return 36;
}

int vmm_caps_probe(const char *kvm_path, struct vmm_caps *caps)
{
	struct kvm_cpuid2 *cpuid;
	int fd;

	memset(caps, 0, sizeof(*caps));
	fd = kvm_open(kvm_path ? kvm_path : "/dev/kvm", caps);
	if (fd < 0)
		return fd;
	caps->kvm_available = true;
	vmm_kvm_probe(fd, caps);
	cpuid = supported_cpuid(fd);
	caps->guest_phys_bits = cpuid_phys_bits(cpuid);
	caps->cpuid_1g_pages = cpuid_1g_pages(cpuid);
	free(cpuid);
	return fd;
}

/* Copies the NULL-terminated list of directories file backings may use. */
static int dirs_copy(struct vmm *vmm, const char *const *dirs)
{
	size_t n = 0;

	while (dirs[n])
		n++;
	vmm->file_dirs = calloc(n + 1, sizeof(char *));
	if (!vmm->file_dirs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!(vmm->file_dirs[i] = strdup(dirs[i])))
			return -ENOMEM;
	return 0;
}

int vmm_create(const struct vmm_config *cfg, struct vmm **out)
{
	const char *path = cfg && cfg->kvm_path ? cfg->kvm_path : "/dev/kvm";
	struct vmm *vmm = calloc(1, sizeof(*vmm));

	if (!vmm)
		return -ENOMEM;
	if (cfg)
		vmm->cfg = *cfg;
	vmm->cfg.kvm_path = NULL;
	vmm->cfg.console_dir = NULL;	/* use the owned copy */
	if (cfg && cfg->console_dir) {
		vmm->console_dir = strdup(cfg->console_dir);
		if (!vmm->console_dir) {
			free(vmm);
			return -ENOMEM;
		}
	}
	vmm->cfg.file_dirs = NULL;	/* use the owned copy */
	if (cfg && cfg->file_dirs && dirs_copy(vmm, cfg->file_dirs)) {
		free(vmm->console_dir);
		free(vmm);
		return -ENOMEM;
	}
	pthread_mutex_init(&vmm->lock, NULL);
	pthread_mutex_init(&vmm->bcache.lock, NULL);
	vmm->kvm_fd = cfg && cfg->kvm_fd > 0 ? cfg->kvm_fd : kvm_open(path, &vmm->caps);
	vmm->cfg.kvm_fd = 0;
	if (vmm->kvm_fd >= 0) {
		vmm->caps.kvm_available = true;
		vmm_kvm_probe(vmm->kvm_fd, &vmm->caps);
		vmm->cpuid = supported_cpuid(vmm->kvm_fd);
		vmm->caps.guest_phys_bits = vmm_guest_phys_bits(vmm);
		vmm->caps.cpuid_1g_pages = vmm_cpuid_has_1g_pages(vmm);
		vmm_kick_install();
		vm_bus_install();
	}
	*out = vmm;
	return 0;
}

void vmm_destroy(struct vmm *vmm)
{
	if (!vmm)
		return;
	vm_destroy_all(vmm);
	vmm_bcache_fini(&vmm->bcache);
	if (vmm->kvm_fd >= 0)
		close(vmm->kvm_fd);
	pthread_mutex_destroy(&vmm->lock);
	free(vmm->cpuid);
	free(vmm->console_dir);
	for (char **d = vmm->file_dirs; d && *d; d++)
		free(*d);
	free(vmm->file_dirs);
	free(vmm);
}

const struct vmm_caps *vmm_caps_get(const struct vmm *vmm)
{
	return &vmm->caps;
}
