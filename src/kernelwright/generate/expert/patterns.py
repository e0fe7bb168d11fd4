"""What the expert generator knows how to write: patterns, and the pointwise expressions inside them.

The analysis (`analysis.py`) turns a task's `Model.forward` into one Pattern;
templates (`templates/`) turn a Pattern and a parameter choice into candidate
source for one backend. Everything here is plain, frozen, picklable data.

Expressions are small trees over the forward's tensors:

    Input(0)                   the forward's first tensor argument
    Weight("ln.weight")        a parameter or buffer of the module, by dotted name
    Const(0.5)                 a number
    Call("add", (a, b))        an op of OPS applied to sub-expressions
    Value()                    inside an epilogue: the value the pattern computed (the
                               reduction's, the norm's or the matrix product's output),
                               before the epilogue

Every leaf tensor has a layout relative to the pattern's input shape (the
output shape for Pointwise, Matmul and Conv, the prologue's shape for reductions and norms):
"full" (the same shape, contiguous), "row" (a vector over the reduced last
dim(s), broadcast over the rows), "scalar" (one element) or "broadcast" (any
other broadcast by PyTorch's rules, up to 4 dims, read through the strides of
`leaf.expand(shape)`). A leaf may be unsqueezed first (`gate.unsqueeze(1)`):
its `unsqueeze` dims, applied in order, say how.

Reductions and norms work along the LAST `dims` dimensions (usually one):
rows = prod(shape[:-dims]), cols = prod(shape[-dims:]); a ColumnReduce along
dims followed by others, and group norm along parts of each row.
Templates read shapes from the tensors at run time (shape variants change them);
`shape` here is the task's main shape, for choosing defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# op name -> number of arguments. Extra arguments of ops like leaky_relu and clamp are Const operands.
OPS: dict[str, int] = {
    # unary
    "neg": 1, "abs": 1, "exp": 1, "log": 1, "sqrt": 1, "rsqrt": 1, "reciprocal": 1, "square": 1,
    "sigmoid": 1, "tanh": 1, "relu": 1, "silu": 1, "gelu": 1, "gelu_tanh": 1, "erf": 1, "sin": 1, "cos": 1,
    "softplus": 1,
    # Along the last dim, each element with the one half a row away: cat(-x[..., h:], x[..., :h], -1) (Llama's
    # rotate_half). Only triton.rotary writes it (other templates' tables lack it, so they do not match).
    "rotate_half": 1,
    # binary
    "add": 2, "sub": 2, "mul": 2, "div": 2, "maximum": 2, "minimum": 2, "pow": 2,
    "leaky_relu": 2,  # (x, Const(slope))
    # ternary
    "clamp": 3,  # (x, Const(lo) or Const(-inf), Const(hi) or Const(inf))
}

LAYOUTS = ("full", "row", "scalar", "broadcast")
MAX_BROADCAST_RANK = 4


@dataclass(frozen=True)
class Input:
    index: int
    layout: str = "full"
    unsqueeze: tuple[int, ...] = ()  # dims inserted (in order) before it broadcasts


@dataclass(frozen=True)
class Weight:
    name: str  # dotted attribute path on the module, e.g. "ln.weight" (read as self.ln.weight)
    layout: str = "row"
    unsqueeze: tuple[int, ...] = ()


@dataclass(frozen=True)
class Const:
    value: float


@dataclass(frozen=True)
class Value:
    """The pattern's own result, inside an epilogue."""


@dataclass(frozen=True)
class Call:
    op: str
    args: tuple[Expr, ...]


Expr = Input | Weight | Const | Value | Call

REDUCTIONS = ("sum", "mean", "max", "min", "logsumexp", "argmax", "argmin")  # one value per row
NORMALIZATIONS = ("softmax", "log_softmax")  # same shape as the row
NORMS = ("layer", "rms", "group")
COLUMN_REDUCTIONS = ("sum", "mean", "max", "min")  # over a block of dims that are not the last
SCANS = ("sum", "prod")
LOSS_REDUCTIONS = ("mean", "sum", "none")


@dataclass(frozen=True)
class Pointwise:
    expr: Expr
    shape: tuple[int, ...]
    dtype: str  # "float32", "bfloat16", "float16"


@dataclass(frozen=True)
class RowReduce:
    kind: str  # one of REDUCTIONS or NORMALIZATIONS
    prologue: Expr  # what is reduced, per element (often Input(0))
    shape: tuple[int, ...]  # the prologue's shape
    dtype: str
    keepdim: bool = False  # for REDUCTIONS: output shape[:-dims] + (1,) * dims instead of shape[:-dims]
    epilogue: Expr | None = None  # applied per output element, over Value()
    dims: int = 1  # how many trailing dims are reduced (REDUCTIONS only; softmax-like kinds: 1)


@dataclass(frozen=True)
class ColumnReduce:
    """A reduction over a block of adjacent dims that are not the last: x.sum(dim=1) of [B, T, H].

    The prologue's `shape` is read as (outer, reduced, inner): the dims before the block, the `dims`
    reduced ones, and the `inner` (at least one) after them, so each output element reduces a column of
    an (reduced, inner) matrix, whose elements lie `inner` apart. A "row" leaf of the prologue is a vector
    over the inner dims (`row_dims` = inner when the analysis lays leaves out); the epilogue, as a
    RowReduce's, reads the value, numbers and scalars only.
    """

    kind: str  # one of COLUMN_REDUCTIONS
    prologue: Expr
    shape: tuple[int, ...]
    dtype: str
    dims: int  # how many dims are reduced
    inner: int  # how many dims follow them
    keepdim: bool = False  # output shape[:start] + (1,) * dims + shape[start + dims:] instead of without the 1s
    epilogue: Expr | None = None

    @property
    def start(self) -> int:
        """The first reduced dim."""
        return len(self.shape) - self.inner - self.dims


@dataclass(frozen=True)
class Norm:
    kind: str  # one of NORMS
    prologue: Expr  # the normalized value per element: Input(0), or Input(0) + Input(1) (a residual)
    shape: tuple[int, ...]
    dtype: str
    eps: float
    # Layer and RMS norm: "row" vectors over the normalized dims. Group norm: one value per channel (dim 1),
    # a [C] vector unsqueezed to [C, 1, ...] as batch norm's are ("broadcast", over the dims after dim 1).
    weight: Weight | None = None
    bias: Weight | None = None  # layer and group norm only
    epilogue: Expr | None = None  # over Value(), after the affine step
    dims: int = 1  # how many trailing dims are normalized together (instance norm: H and W; group norm: all but N)
    # Group norm: the `dims` trailing dims ([C, *spatial]) are split into this many equal contiguous parts
    # (C / groups channels each), each normalized alone.
    groups: int = 1
    # What forward returns, in order: "value" (the norm's output) and maybe "prologue" (its input, say
    # the residual sum h = x + residual that the next layer needs too).
    outputs: tuple[str, ...] = ("value",)


@dataclass(frozen=True)
class Matmul:
    """out = epilogue(a @ b + bias): one matrix product, its bias and the elementwise ops after it.

    `a` is [..., M, K]. `b` is read as the task holds it: [K, N] (or [N, K] when `b_transposed`,
    as nn.Linear's weight), or with batch dims equal to a's ([*batch, K, N], torch.bmm). With a 2-D
    `b` all of a's leading dims are rows: M = prod(a.shape[:-1]). `shape` is the output's shape,
    which the epilogue's leaf layouts are relative to (a residual is "full", a bias-like vector "row").
    """

    a: Input
    b: Input | Weight
    b_transposed: bool
    batched: bool  # b has a's batch dims; otherwise b is 2-D
    shape: tuple[int, ...]  # the output's: a.shape[:-1] + (N,)
    k: int
    dtype: str
    bias: Weight | None = None  # a vector over N, added before the epilogue
    epilogue: Expr | None = None  # over Value(): a @ b + bias

    @property
    def batch(self) -> int:
        return math.prod(self.shape[:-2]) if self.batched else 1

    @property
    def m(self) -> int:
        return self.shape[-2] if self.batched else math.prod(self.shape[:-1])

    @property
    def n(self) -> int:
        return self.shape[-1]


@dataclass(frozen=True)
class Conv:
    """out = epilogue(conv2d(x, weight, bias, stride, padding, dilation, groups)): a 2-D convolution with zero
    padding over NCHW tensors, its bias and the elementwise ops after it.

    `x` is [N, C, H, W], `weight` [K, C / groups, R, S], the output [N, K, P, Q] (`shape`), which the
    epilogue's leaf layouts are relative to: "full" (the output's shape), "scalar", or "broadcast", which
    in a Conv is always per output channel (a [K] vector unsqueezed to [K, 1, 1] as batch norm's are, or
    a [K, 1, 1] / [1, K, 1, 1] tensor: the analysis refuses other broadcasts). `bias` is such a vector
    too. As a GEMM: M = N * P * Q output pixels, N = K output channels, K = C / groups * R * S.
    """

    x: Input
    weight: Weight
    bias: Weight | None
    stride: tuple[int, int]
    padding: tuple[int, int]  # zeros on both sides of H and of W
    dilation: tuple[int, int]
    groups: int
    shape: tuple[int, int, int, int]  # the output's [N, K, P, Q]
    in_shape: tuple[int, int, int, int]  # x's [N, C, H, W]
    kernel_size: tuple[int, int]  # (R, S)
    dtype: str
    epilogue: Expr | None = None  # over Value(): the convolution + bias

    @property
    def m(self) -> int:
        return self.shape[0] * self.shape[2] * self.shape[3]

    @property
    def n(self) -> int:
        return self.shape[1]

    @property
    def k(self) -> int:
        return self.in_shape[1] // self.groups * self.kernel_size[0] * self.kernel_size[1]

    @property
    def depthwise(self) -> bool:
        """One input channel per output channel: groups == C == K."""
        return self.groups == self.in_shape[1] == self.shape[1]


@dataclass(frozen=True)
class PatchEmbed:
    """ViT's patch embedding: cat((cls_token.expand(N, -1, -1), conv2d(x, weight, bias, stride=kernel)
    .flatten(2).transpose(1, 2)), dim=1) + pos_embed.

    The convolution's stride equals its kernel (`patch`), with no padding, dilation 1 and one group: the
    patches do not overlap, so it is a GEMM of the gathered patches [N * P, C * ph * pw] by the weight
    [D, C * ph * pw] read transposed. The output [N, 1 + P, D] (`shape`) holds each image's class token
    row first (`cls_token`, D elements), then its P patch rows; `pos_embed` ((1 + P) * D elements, [1, 1 + P,
    D] or [1 + P, D]) is added to every image's rows.
    """

    x: Input
    weight: Weight  # [D, C, ph, pw]
    bias: Weight | None  # [D]
    cls_token: Weight
    pos_embed: Weight
    patch: tuple[int, int]  # (ph, pw): the kernel and the stride
    shape: tuple[int, int, int]  # the output's [N, 1 + P, D]
    in_shape: tuple[int, int, int, int]  # x's [N, C, H, W]
    dtype: str

    @property
    def m(self) -> int:
        return self.shape[0] * (self.shape[1] - 1)

    @property
    def n(self) -> int:
        return self.shape[2]

    @property
    def k(self) -> int:
        return self.in_shape[1] * self.patch[0] * self.patch[1]


@dataclass(frozen=True)
class Scan:
    """A cumulative sum or product along the last dim: out[..., i] = epilogue(prologue[..., 0] (+ or *) ...
    (+ or *) prologue[..., i]).

    `reverse` scans from the last column to the first (the flip-scan-flip idiom: out[i] combines i..cols-1);
    `exclusive` leaves out the element itself (out[i] combines the columns before i, or after it when
    reversed; the first column gets 0 for a sum, 1 for a product). `shape` is the prologue's, which is
    also the output's; the epilogue may read full, row and scalar tensors of that shape.
    """

    kind: str  # one of SCANS
    prologue: Expr
    shape: tuple[int, ...]
    dtype: str
    reverse: bool = False
    exclusive: bool = False
    epilogue: Expr | None = None  # per output element, over Value() (the scanned value)

    @property
    def what(self) -> str:
        """In words, e.g. "reverse exclusive cumsum"."""
        return ("reverse " if self.reverse else "") + ("exclusive " if self.exclusive else "") + f"cum{self.kind}"


@dataclass(frozen=True)
class CrossEntropy:
    """F.cross_entropy(logits, targets, ignore_index=..., reduction=...) with class-index targets.

    `logits` is read as (N, C) rows (`shape`), `targets` as N int64 class indices (one per row). A row
    whose target is `ignore_index` contributes 0 and, for "mean", is not counted. No class weights and
    no label smoothing (the analysis refuses them).
    """

    logits: Input
    targets: Input
    ignore_index: int
    reduction: str  # one of LOSS_REDUCTIONS
    shape: tuple[int, ...]  # (N, C)
    dtype: str  # the logits'


KL_REDUCTIONS = ("batchmean", "sum", "mean")


@dataclass(frozen=True)
class KLDivergence:
    """The distillation loss: F.kl_div(log_softmax(student), softmax(teacher), reduction=...), both over the
    last dim, summed over every row of KL(softmax(teacher) || softmax(student)), then an epilogue.

    `student` and `teacher` are the logits per element before the softmaxes: elementwise expressions of
    `shape` (say Input(0) / T). log_target=True with log_softmax(teacher) as the target is the same loss,
    so it is this pattern too. The reduction divides the sum: "batchmean" by shape[0] (PyTorch's
    input.size(0)), "mean" by the element count. The epilogue, over Value() with numbers and scalar
    tensors only, finishes the one output value (the T^2 factor).
    """

    student: Expr
    teacher: Expr
    reduction: str  # one of KL_REDUCTIONS
    shape: tuple[int, ...]  # the logits', rows by the last dim
    dtype: str
    epilogue: Expr | None = None


@dataclass(frozen=True)
class Attention:
    """out = softmax(scale * q @ k^T (+ causal mask)) @ v over the last two dims, per batch and head.

    q is [..., heads, seq_q, head_dim], k and v [..., kv_heads, seq_k, head_dim]: with fewer kv heads
    (grouped-query attention, kv_heads dividing heads) query head h reads kv head h // (heads // kv_heads),
    as Llama's repeat_kv and sdpa's enable_gqa arrange them. `causal` keeps key j for query i when
    j <= i (aligned at the top left, as sdpa's is_causal). `scale` None is head_dim ** -0.5 of the
    tensors at run time (sdpa's default, or a task that computes it from the shapes); a number is fixed.
    `shape` is the task's (batch, heads, seq_q, seq_k, head_dim), batch the product of the leading dims.
    `rounds_scores`: the reference holds the scores in `dtype` (a 16-bit product written out), rounded
    after the product and after scaling; a kernel rounds them alike, since for scores in the tens that
    rounding moves the probabilities by percents, more than the tolerance lets a more exact kernel differ.
    """

    q: Input
    k: Input
    v: Input
    causal: bool
    scale: float | None
    shape: tuple[int, int, int, int, int]
    dtype: str
    kv_heads: int  # equal to heads unless grouped
    rounds_scores: bool = False

    @property
    def head_dim(self) -> int:
        return self.shape[4]

    @property
    def group(self) -> int:
        """Query heads per kv head."""
        return self.shape[1] // self.kv_heads



@dataclass(frozen=True)
class Dim:
    """A size read at run time: forward argument `index`'s shape[dim] (a view's `b, s, _ = x.shape`)."""

    index: int
    dim: int


@dataclass(frozen=True)
class View:
    """One view forward applies to an output, replayed as written: "view" or "reshape" with sizes (numbers,
    -1, or Dims), "transpose" with two dims, "permute" with all of them."""

    op: str
    args: tuple[int | Dim, ...]


@dataclass(frozen=True)
class Projections:
    """Several matrix products of one input, each returned through free views: Llama's q, k and v
    (q_proj(x).view(b, s, -1, head_dim).transpose(1, 2), and k's and v's alike).

    Each product is a Matmul over the same `a` with a 2-D `b` (a weight as the task holds it: nothing
    is concatenated), a bias or none, and no epilogue; `views[i]` are the views forward applies to
    product i's output (a.shape[:-1] + (N_i,)), in order. The outputs are forward's, in order.
    """

    products: tuple[Matmul, ...]
    views: tuple[tuple[View, ...], ...]

    @property
    def dtype(self) -> str:
        return self.products[0].dtype


@dataclass(frozen=True)
class Rotary:
    """Several elementwise outputs of one forward, at least one rotating halves of its rows (rotate_half):
    rotary position embeddings, q * cos + rotate_half(q) * sin and k's alike.

    Each output is a Pointwise over its own shape (q's and k's head counts differ), whose last dim, the
    one rotate_half works along, is even; cos and sin are broadcast leaves (unsqueezed over heads). A
    single such output is a Pointwise whose expression holds rotate_half.
    """

    outputs: tuple[Pointwise, ...]

    @property
    def dtype(self) -> str:
        return self.outputs[0].dtype


@dataclass(frozen=True)
class Chain:
    """Several kernels in sequence: an MLP's matrix products (c_proj(gelu(c_fc(x)))), a product then a norm.

    Each stage is a single-kernel pattern (a Matmul with its bias and epilogue, or a Norm) that writes one
    intermediate tensor, the last stage the output. A stage's Input(i) with i past the forward's arguments
    reads an earlier stage's output: Input(len(forward_args) + j) is stage j's (so Llama's SwiGLU is the gate
    product with silu, the up product times that, then the down product of the result). Intermediates are
    stored in the task's dtype, as the reference stores each op's output.
    """

    stages: tuple[Matmul | Norm, ...]

    @property
    def dtype(self) -> str:
        return self.stages[-1].dtype


Pattern = (Pointwise | RowReduce | ColumnReduce | Norm | Matmul | Conv | Scan | CrossEntropy | Attention | KLDivergence
           | Projections | Rotary | PatchEmbed | Chain)


@dataclass(frozen=True)
class Analysis:
    """A task as the expert generator sees it."""

    pattern: Pattern
    forward_args: tuple[str, ...]  # the forward's parameter names, in order
    init_source: str  # `def __init__(...)` of the task's Model, reused as ModelNew's (same weights, same names)
    imports: str  # the task module's import lines (the __init__ may need them)
    outputs_fp32: bool = False  # reduce in fp32 and cast back (always true for fp16/bf16 inputs)
    # The lowest arithmetic the task's tolerance admits ("fp32", "tf32", "fp16", "bf16"); None: its dtype's.
    precision: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


class Unsupported(Exception):
    """The task holds an op or a structure no template covers; the message names it (and the line)."""


def leaves(expr: Expr) -> list[Input | Weight]:
    """The tensor leaves of an expression, each once, in first-seen order."""
    found: list[Input | Weight] = []

    def walk(e: Expr) -> None:
        if isinstance(e, (Input, Weight)):
            if e not in found:
                found.append(e)
        elif isinstance(e, Call):
            for a in e.args:
                walk(a)

    walk(expr)
    return found


def calls(expr: Expr) -> set[str]:
    """The ops an expression calls (whether it holds rotate_half, say)."""
    return {expr.op, *(op for a in expr.args for op in calls(a))} if isinstance(expr, Call) else set()
