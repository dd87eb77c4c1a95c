#include "textflag.h"

// func fpWalk(pcs []uintptr, top unsafe.Pointer) int
//
// Frameless, so BP is still the caller's frame pointer: [BP] holds the
// caller's caller's frame pointer and [BP+8] the caller's return address.
// It follows the chain while the frame pointers go strictly up the stack,
// are 8-byte aligned and stay below top, so it only ever reads the stack
// between its caller's frame and top.
TEXT ·fpWalk(SB), NOSPLIT|NOFRAME, $0-40
	MOVQ pcs_base+0(FP), DI
	MOVQ pcs_len+8(FP), CX
	MOVQ top+24(FP), DX
	MOVQ BP, SI
	XORQ AX, AX
loop:
	CMPQ AX, CX
	JGE  done
	TESTQ SI, SI
	JZ   done
	TESTQ $7, SI
	JNZ  done
	LEAQ 16(SI), R10
	CMPQ R10, DX
	JHI  done
	MOVQ 8(SI), R8
	MOVQ R8, (DI)(AX*8)
	INCQ AX
	MOVQ 0(SI), R9
	CMPQ R9, SI
	JLS  done
	MOVQ R9, SI
	JMP  loop
done:
	MOVQ AX, ret+32(FP)
	RET

// func fpWalkTo(pcs []uintptr, stop uintptr) int
//
// fpWalk without top: it records return addresses up the chain while the
// frame pointers go strictly up the stack and are 8-byte aligned, and
// stops after recording stop.
TEXT ·fpWalkTo(SB), NOSPLIT|NOFRAME, $0-40
	MOVQ pcs_base+0(FP), DI
	MOVQ pcs_len+8(FP), CX
	MOVQ stop+24(FP), DX
	MOVQ BP, SI
	XORQ AX, AX
loop:
	CMPQ AX, CX
	JGE  done
	TESTQ SI, SI
	JZ   done
	TESTQ $7, SI
	JNZ  done
	MOVQ 8(SI), R8
	MOVQ R8, (DI)(AX*8)
	INCQ AX
	CMPQ R8, DX
	JEQ  done
	MOVQ 0(SI), R9
	CMPQ R9, SI
	JLS  done
	MOVQ R9, SI
	JMP  loop
done:
	MOVQ AX, ret+32(FP)
	RET
