/*
 * tssx_copy_leaf: dst in rdi, src in rsi, len in rdx; rax 0, or -EFAULT
 * when a load or store faults.  Called by tssx_copy()'s inline assembly
 * (include/tssx/copy.h), which names what it touches: rax, rcx, rdx,
 * rsi, rdi, xmm0-xmm3 and the flags; keep that list in step with the
 * code below.  A leaf that never touches the stack, so that the
 * SIGSEGV/SIGBUS handler can resume a faulting access at
 * tssx_copy_landing, whose `ret` returns to the caller.  Sizes
 * from 8 to 64 bytes move with overlapping 8- and 16-byte loads and stores
 * (glibc's memcpy does the same), smaller ones byte by byte, larger ones
 * with `rep movsb` (fast strings: ERMS/FSRM).  The bytes of an overlapping
 * pair are written twice with the same values, which neither side of the
 * ring minds.
 */
#include <cet.h>

/* len in [w, 2w]: the first and the last w bytes, through r0 and r1. */
.macro copy_ends mov, r0, r1, w
	\mov	(%rsi), \r0
	\mov	-\w(%rsi,%rdx), \r1
	\mov	\r0, (%rdi)
	\mov	\r1, -\w(%rdi,%rdx)
.endm

	.text
	.globl	tssx_copy_leaf
	.hidden	tssx_copy_leaf
	.type	tssx_copy_leaf, @function
	.p2align 4
tssx_copy_leaf:
	_CET_ENDBR
	cmp	$16, %rdx
	jb	.Lbelow16
	cmp	$32, %rdx
	ja	.Labove32
	copy_ends movdqu, %xmm0, %xmm1, 16
	xor	%eax, %eax
	ret
.Labove32:
	cmp	$64, %rdx
	ja	.Lrep
	movdqu	(%rsi), %xmm0
	movdqu	16(%rsi), %xmm1
	movdqu	-32(%rsi,%rdx), %xmm2
	movdqu	-16(%rsi,%rdx), %xmm3
	movdqu	%xmm0, (%rdi)
	movdqu	%xmm1, 16(%rdi)
	movdqu	%xmm2, -32(%rdi,%rdx)
	movdqu	%xmm3, -16(%rdi,%rdx)
	xor	%eax, %eax
	ret
.Lbelow16:
	cmp	$8, %rdx
	jb	.Lbelow8
	copy_ends mov, %rax, %rcx, 8
	jmp	.Ldone
.Lbelow8:
	test	%rdx, %rdx
	jz	.Ldone
.Lbytes:
	movzbl	(%rsi), %eax
	mov	%al, (%rdi)
	inc	%rsi
	inc	%rdi
	dec	%rdx
	jnz	.Lbytes
.Ldone:
	xor	%eax, %eax
	ret
.Lrep:
	mov	%rdx, %rcx
	rep movsb
	xor	%eax, %eax
	ret
	.globl	tssx_copy_landing
	.hidden	tssx_copy_landing
tssx_copy_landing:
	mov	$-14, %rax		/* -EFAULT */
	ret
	.size	tssx_copy_leaf, . - tssx_copy_leaf

	.section .note.GNU-stack, "", @progbits
