"""The choices of gradlab's config keys, one Enum each: OmegaConf checks a value against them and names the valid
ones; the code compares against the members. StrEnum, so that a member is its own string (`ClipMode.norm == "norm"`,
f"{ClipMode.norm}" == "norm") in run names, logs and saved configs. The models are not here: they are the registry of
cells (gradlab.cells), which names its choices the same way."""


from enum import Enum, StrEnum


class RecurrentInit(StrEnum):
    default = "default"  # PyTorch's uniform init
    orthogonal = "orthogonal"  # every W_hh gate block = gain * Q
    sparse = "sparse"  # Pascanu et al. 2013's smart init: 15 nonzero N(0, 0.01) per row, spectral radius = gain


class OptimizerName(StrEnum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"
    rmsprop = "rmsprop"


class ClipMode(StrEnum):
    none = "none"
    norm = "norm"
    value = "value"


class RegulariserName(StrEnum):
    none = "none"
    # Pascanu, Mikolov & Bengio 2013's vanishing-gradient regulariser Ω (gradlab.models.regulariser)
    pascanu = "pascanu"


class Accelerator(StrEnum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"
    cuda = "cuda"
    mps = "mps"


class Strategy(StrEnum):
    auto = "auto"  # one process, or ddp when devices x num_nodes > 1
    ddp = "ddp"


class Precision(Enum):
    """Lightning's precision strings are not identifiers, so `trainer.precision` stays a string checked against
    these values."""

    f32 = "32-true"
    f64 = "64-true"
    bf16_mixed = "bf16-mixed"


class ProbeDtype(StrEnum):
    float64 = "float64"  # the unrolled twin cast to double: ‖∂ℓ/∂h_t‖ finite down to ~1e-308
    float32 = "float32"  # the model's own float32: values below ~1e-38 (1.4e-45 subnormal) read as 0


class LoggerMode(StrEnum):
    offline = "offline"
    online = "online"
    disabled = "disabled"


class Distribution(StrEnum):
    cube = "cube"  # uniform in [-1, 1]^D, as in the curse-of-dimensionality article (docs/geometry.md)
    gaussian = "gaussian"  # N(0, I)
    sphere = "sphere"  # uniform on the unit sphere


def choose(enum: type[Enum], key: str, value: object) -> Enum:
    """The member of `enum` whose value is `value`; ConfigError naming the choices otherwise (for values that reach
    gradlab without OmegaConf's check: function arguments, params.yaml)."""
    from gradlab.core.errors import ConfigError

    try:
        return enum(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r} is not a valid choice; choose one of: "
                          f"{', '.join(str(m.value) for m in enum)}") from None
