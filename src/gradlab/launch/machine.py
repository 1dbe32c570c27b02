"""What the machine must offer a training run, checked before any work: a CUDA GPU when asked for one, room on it
for the run (a rough estimate of its memory), the model's bfloat16 kernel on a CPU. The config's own rules, which
hold on any machine, are in the schemas. Within slurm.machine_elsewhere (a sweep checked here, run on a cluster)
nothing is
checked: each job checks its own machine as it starts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gradlab import cells
from gradlab.core.choices import Accelerator, Precision
from gradlab.core.errors import ConfigError
from gradlab.launch.slurm import _ELSEWHERE

if TYPE_CHECKING:
    from gradlab.training.config import TrainConfig


def training_memory_bytes(cfg: TrainConfig) -> int:
    """A rough upper estimate of one training step's device memory: weights, gradients and Adam's two moments,
    plus what the fused kernel keeps for the backward pass (gates, h and c of every step and layer) and its
    gradients. Deliberately generous (x2 on activations): it only has to catch sizes that cannot fit."""
    m, t = cfg.model, cfg.trainer
    gates = cells.get(m.name).gates
    H, L, B, T = m.hidden_size, m.num_layers, t.batch_size, cfg.task.spec().total_len
    width = 8 if t.precision == Precision.f64.value else 4
    n_params = L * gates * H * (2 * H + 2) + gates * H * 16
    activations = B * T * L * H * (gates + 2) * width
    return 4 * n_params * width + 2 * 2 * activations


def check_gpu_memory(cfg: TrainConfig, total_bytes: int) -> None:
    """ConfigError when the estimate exceeds 90% of the GPU's memory, naming the sizes that drive it."""
    need = training_memory_bytes(cfg)
    if need > 0.9 * total_bytes:
        raise ConfigError(
            f"model.hidden_size={cfg.model.hidden_size} with trainer.batch_size={cfg.trainer.batch_size} and "
            f"task.seq_len={cfg.task.seq_len} needs about {need / 2**30:.1f} GiB on the GPU, which has "
            f"{total_bytes / 2**30:.1f} GiB; lower one of them")


def cuda_will_be_used(accelerator: Accelerator) -> bool:
    if accelerator in (Accelerator.gpu, Accelerator.cuda):
        return True
    if accelerator != Accelerator.auto or not Path("/proc/driver/nvidia").exists():
        return False  # the common CPU path never imports torch here
    import torch

    return torch.cuda.is_available()




def check_machine(cfg: TrainConfig) -> None:
    """What this machine must offer the run: a CUDA GPU when asked for one, room on it, a bf16 kernel on a CPU."""
    if _ELSEWHERE:
        return
    t = cfg.trainer
    if cuda_will_be_used(t.accelerator):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.accelerator={t.accelerator} but this machine has no CUDA GPU; use "
                              f"trainer.accelerator=auto (GPU when there is one) or cpu")
        check_gpu_memory(cfg, torch.cuda.get_device_properties(0).total_memory)
    elif t.precision == Precision.bf16_mixed.value:
        _check_cpu_bf16(cfg.model.name)


def cpu_runs_bf16(model: str) -> bool:
    """Whether this CPU runs the model's fused module under bfloat16 autocast (oneDNN's bfloat16 LSTM needs AVX-512
    BF16 or AMX; ATen's RNN and GRU run anywhere): tried on a tiny input. A cell without a fused kernel runs its step
    in ATen's ops, which take bfloat16 on every CPU. Tests replace this to take either answer on any CPU."""
    import torch

    cell = cells.get(model)
    if not cell.fused_kernel:
        return True
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cell.fused(2, 4, 1)(torch.zeros(1, 2, 2))
    except RuntimeError:
        return False
    return True


def _check_cpu_bf16(model: str) -> None:
    if not cpu_runs_bf16(model):
        raise ConfigError(f"trainer.precision='bf16-mixed' with model={model} on this CPU: its oneDNN has no bfloat16 "
                          f"kernel for it (that needs AVX-512 BF16 or AMX); use trainer.precision=32-true, or a GPU")
