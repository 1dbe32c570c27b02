import csv
import math

import pytest
import pytorch_lightning as pl
import torch
from conftest import compose_cfg, read_json

SMOKE = ("profile=smoke",)


def rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def step_rows(run_dir):
    return [r for r in rows(run_dir) if r["grad/norm_preclip"]]


@pytest.mark.parametrize("task", ["adding", "copy", "first_token"])
@pytest.mark.parametrize("model", ["rnn", "lstm", "nfg_lstm"])
def test_every_model_trains_on_every_task(train, task, model):
    metrics, run_dir = train(*SMOKE, f"task={task}", f"model={model}", "task.seq_len=12", "trainer.max_steps=4",
                             "trainer.val_every_n_steps=2")
    assert run_dir.name == f"{task}-T12-{model}-none-s0"
    assert metrics["status"] == "completed" and metrics["steps"] == 4
    assert math.isfinite(metrics["test_loss"]) and metrics["baseline_loss"] > 0
    assert (metrics["test_acc"] is None) == (task == "adding")
    saved = read_json(run_dir / "metrics.json")
    for key in ("status", "steps", "test_loss", "baseline_loss", "solved", "solved_at_step"):
        assert key in saved
    assert (run_dir / "config.yaml").exists() and (run_dir / "model.ckpt").exists()
    assert len(step_rows(run_dir)) == 4
    assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb")), "no wandb offline run"


def test_norm_clipping_statistics(train):
    _, run_dir = train(*SMOKE, "model=rnn", "clip=norm", "clip.threshold=0.5", "trainer.max_steps=30",
                       "model.recurrent_init=orthogonal", "model.recurrent_gain=1.5", "optim.lr=0.01")
    assert run_dir.name == "adding-T100-rnn-norm0.5-s0"
    steps = step_rows(run_dir)
    assert len(steps) == 30
    fired = 0
    for r in steps:
        pre, post, clipped = float(r["grad/norm_preclip"]), float(r["grad/norm_postclip"]), float(r["grad/clipped"])
        assert post <= 0.5 + 1e-6
        assert clipped == float(pre > 0.5)
        if pre <= 0.5:
            assert post == pytest.approx(pre)
        fired += clipped
    assert fired > 0, "the test needs steps where clipping fires"


class GradientSpy(pl.Callback):
    """Records the largest |gradient entry| the optimizer stepped with (Lightning's closure runs inside step)."""

    def __init__(self):
        self.max_abs = []

    def on_train_start(self, trainer, pl_module):
        def hook(optimizer, args, kwargs):
            self.max_abs.append(max(p.grad.abs().max().item() for p in pl_module.parameters() if p.grad is not None))
        trainer.optimizers[0].register_step_post_hook(hook)


def test_value_clipping_bounds_every_entry(tmp_path):
    from omegaconf import OmegaConf

    from gradlab.experiment import build_trainer, prepare_data
    from gradlab.module import RecurrentModule

    cfg = compose_cfg([*SMOKE, "model=rnn", "clip=value", "clip.threshold=0.01", "trainer.max_steps=10"], tmp_path)
    dm = prepare_data(cfg)
    module = RecurrentModule(OmegaConf.to_container(cfg, resolve=True))
    spy = GradientSpy()
    build_trainer(cfg, tmp_path / "run", [], [spy]).fit(module, datamodule=dm)
    assert len(spy.max_abs) == 10
    assert all(m <= 0.01 for m in spy.max_abs)
    assert module.clip_count == 10  # unclipped gradients of this net exceed 0.01


def test_divergence_is_a_result(train):
    metrics, run_dir = train(*SMOKE, "optim=sgd", "optim.lr=1e30", "optim.momentum=0", "trainer.max_steps=20")
    assert metrics["status"] == "diverged"
    assert metrics["diverged_reason"] == "non-finite loss"
    assert metrics["diverged_at_step"] is not None and metrics["steps"] == metrics["diverged_at_step"] < 20
    assert read_json(run_dir / "metrics.json")["status"] == "diverged"
    logged = step_rows(run_dir)  # the logs up to that step are kept, the non-finite step included
    assert len(logged) == metrics["steps"] + 1
    assert all(math.isfinite(float(r["train/loss"])) for r in logged[:-1])
    assert not math.isfinite(float(logged[-1]["train/loss"]))


class PoisonGradient(pl.Callback):
    """A NaN in one gradient at step 3, as an overflow in backward would leave it."""

    def on_after_backward(self, trainer, pl_module):
        if trainer.global_step == 3:
            next(pl_module.parameters()).grad[0, 0] = float("nan")


def test_nonfinite_gradient_stops_cleanly(tmp_path):
    from omegaconf import OmegaConf

    from gradlab.experiment import build_trainer, prepare_data
    from gradlab.module import RecurrentModule

    cfg = compose_cfg([*SMOKE, "trainer.max_steps=10"], tmp_path)
    module = RecurrentModule(OmegaConf.to_container(cfg, resolve=True))
    trainer = build_trainer(cfg, tmp_path / "run", [], [PoisonGradient()])
    trainer.fit(module, datamodule=prepare_data(cfg))
    assert module.status == "diverged" and module.diverged_reason == "non-finite gradient"
    assert module.diverged_at_step == 3
    assert all(torch.isfinite(p).all() for p in module.parameters())  # the bad step was not applied


def test_same_command_twice_gives_identical_metrics(train, tmp_path):
    a, dir_a = train(*SMOKE, "model=lstm", "trainer.max_steps=15", tmp=tmp_path / "a")
    b, dir_b = train(*SMOKE, "model=lstm", "trainer.max_steps=15", tmp=tmp_path / "b")
    assert (dir_a / "metrics.json").read_bytes() == (dir_b / "metrics.json").read_bytes()
    c, _ = train(*SMOKE, "model=lstm", "trainer.max_steps=15", "seed=1", tmp=tmp_path / "c")
    assert c["test_loss"] != a["test_loss"]
