"""Eight float32 lanes as a numba value: what the generated direct convolution (``direct``) is made of.

LLVM's loop vectorizer decides on its own which loop to vectorize and how far to unroll it;
for a convolution's inner product it spilled the accumulators to the stack (measured 2-20x
slower than these). Here the vector is a type of its own (``f32x8``, LLVM's ``<8 x float>``)
and each operation is one instruction: a load, a store, a broadcast and a fused multiply-add.
Kept in local variables, the accumulators stay in registers. Eight lanes are one AVX2 register
(a NEON machine gets two); this module imports numba, so only compiled code imports it.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

LANES = 8
_VECTOR = ir.VectorType(ir.FloatType(), LANES)


class F32x8(types.Type):
    """Eight float32 values in one register."""

    def __init__(self):
        super().__init__(name="f32x8")


f32x8 = F32x8()


@register_model(F32x8)
class _F32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VECTOR)


def _address(context, builder, array_type, array, index):
    """The address of ``array[index]`` (a 1-D contiguous float32 array), with no bounds or sign checks."""
    data = context.make_array(array_type)(context, builder, array).data
    return builder.gep(data, [index], inbounds=True)


def _check(array):
    if not (isinstance(array, types.Array) and array.dtype == types.float32 and array.ndim == 1):
        raise TypeError(f"simd needs a 1-D float32 array, got {array}")


@intrinsic
def load(typingctx, array, index):
    """The eight values ``array[index:index + 8]``."""
    _check(array)

    def codegen(context, builder, signature, args):
        address = _address(context, builder, signature.args[0], *args)
        return builder.load(builder.bitcast(address, _VECTOR.as_pointer()), align=4)

    return f32x8(array, index), codegen


@intrinsic
def store(typingctx, array, index, vector):
    """``array[index:index + 8] = vector``."""
    _check(array)

    def codegen(context, builder, signature, args):
        address = _address(context, builder, signature.args[0], args[0], args[1])
        builder.store(args[2], builder.bitcast(address, _VECTOR.as_pointer()), align=4)
        return context.get_dummy_value()

    return types.void(array, index, vector), codegen


@intrinsic
def broadcast(typingctx, array, index):
    """``array[index]`` in all eight lanes."""
    _check(array)

    def codegen(context, builder, signature, args):
        value = builder.load(_address(context, builder, signature.args[0], *args), align=4)
        undefined = ir.Constant(_VECTOR, ir.Undefined)
        one = builder.insert_element(undefined, value, ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(one, undefined, ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))

    return f32x8(array, index), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` lane by lane, rounded once (LLVM's ``llvm.fma``)."""

    def codegen(context, builder, signature, args):
        function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VECTOR, [_VECTOR] * 3),
                                                  f"llvm.fma.v{LANES}f32")
        return builder.call(function, args)

    return f32x8(a, b, c), codegen


@intrinsic
def add(typingctx, a, b):
    """``a + b`` lane by lane."""

    def codegen(context, builder, signature, args):
        return builder.fadd(*args)

    return f32x8(a, b), codegen


@intrinsic
def zeros(typingctx):
    """Eight zeros."""

    def codegen(context, builder, signature, args):
        return ir.Constant(_VECTOR, [0.0] * LANES)

    return f32x8(), codegen
