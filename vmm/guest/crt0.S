/* Guest entry.  slotd starts every vCPU here in 64-bit mode at CPL 3 with
 * RDI = struct vmm_boot_params *, RSI = vCPU index, RSP = top of this
 * vCPU's stack.  vCPU 0 runs guest_main and powers off with its return
 * value; the others run guest_secondary (by default: park). */
	.section .text.start, "ax"
	.globl _start
_start:
	andq	$-16, %rsp
	testq	%rsi, %rsi
	jnz	1f
	call	guest_main
	movl	%eax, %edi
	call	g_exit
1:	call	guest_secondary
	call	g_park

	.section .note.GNU-stack, "", @progbits
