"""The entry points as a user runs them: one-line errors before any work, and a real run's outputs."""

import pytest
from conftest import read_json, run_cli

BAD_INPUTS = [
    (["model=gru"], "model='gru' is not a valid choice; choose one of: lstm, nfg_lstm, rnn"),
    (["task=parity"], "task='parity' is not a valid choice; choose one of: adding, copy, first_token"),
    (["task.seq_len=1"], "task.seq_len=1 is out of range: must be an integer >= 2"),
    (["task.seq_len=-5"], "task.seq_len=-5 is out of range"),
    (["model.hidden_size=0"], "model.hidden_size=0 is out of range: must be an integer >= 1"),
    (["clip=norm", "clip.threshold=0"], "clip.threshold=0.0 is out of range: must be a number > 0"),
    (["clip=norm", "clip.threshold=0.5", "clip.tag=norm1.0"],
     "clip.tag='norm1.0' does not name clip=norm clip.threshold=0.5: it must be 'norm0.5'"),
    (["clip=value", "clip.threshold=-1"], "clip.threshold=-1.0 is out of range"),
    (["clip=maybe"], "clip='maybe' is not a valid choice; choose one of: none, norm, value"),
    (["model.hiden_size=8"], "unknown config key 'model.hiden_size'; valid keys under model: forget_bias, hidden_size"),
    (["learning_rate=1"], "unknown config key 'learning_rate'"),
    (["model.hidden_size=big"], "model.hidden_size"),
    (["model.recurrent_init=xavier"], "model.recurrent_init='xavier' is not a valid choice; choose one of: default, "
                                      "orthogonal"),
    (["optim=rmsprop"], "optim='rmsprop' is not a valid choice; choose one of: adam, adamw, sgd"),
    (["model=rnn", "model.forget_bias=1.0"], "model.forget_bias=1.0 applies only to model=lstm"),
    (["trainer.batch_size=20000"], "trainer.batch_size=20000 is larger than the training set"),
    (["trainer.max_steps=0"], "trainer.max_steps=0 is out of range: must be an integer >= 1"),
    (["optim.lr=-1"], "optim.lr=-1.0 is out of range: must be a number > 0"),
    (["optim=sgd", "optim.momentum=2"], "optim.momentum=2.0 is out of range: must be a number in [0, 1)"),
    (["trainer.precision=8"], "trainer.precision='8' is not a valid choice; choose one of: 32-true, 64-true"),
    (["trainer.accelerator=tpu"], "trainer.accelerator='tpu' is not a valid choice; choose one of: auto, cpu"),
    (["logger.mode=loud"], "logger.mode='loud' is not a valid choice; choose one of: offline, online, disabled"),
    (["probe.every_n_steps=0"], "probe.every_n_steps=0 is out of range: must be an integer >= 1"),
    (["probe.batch_size=5000"], "probe.batch_size=5000 is larger than the val split (data.n_val=1000)"),
    (["trainer.explode_threshold=0"], "trainer.explode_threshold=0.0 is out of range: must be a number > 0 or null"),
    (["task=copy", "task.copy_len=0"], "task.copy_len=0 is out of range: must be an integer >= 1"),
    (["task=first_token", "task.n_classes=1"], "task.n_classes=1 is out of range: must be an integer >= 2"),
    (["resume=maybe"], "resume: Value 'maybe' is not a valid bool"),
    (["seed=abc"], "seed: Value 'abc' of type 'str' could not be converted to Integer"),
    (["task.seq_len=1.5"], "task.seq_len: Value '1.5' of type 'float' could not be converted to Integer"),
    (["run_name=a/b"], "run_name='a/b' is not a folder name"),
    (["data.n_train=0"], "data.n_train=0 is out of range: must be an integer >= 1"),
    (["profile=huge"], "profile='huge' is not a valid choice; choose one of: default, smoke"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_fails_cleanly_before_any_work(tmp_path, args, message):
    result = run_cli("train.py", *args, cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []  # no run folder, no data, no Hydra outputs


def test_corrupt_data_file_fails_cleanly(tmp_path):
    ok = run_cli("generate.py", "task=first_token", "task.seq_len=10", "data.n_train=64", "data.n_val=8",
                 "data.n_test=8", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    train_file = tmp_path / "data" / "first_token" / "T10" / "train.pt"
    train_file.write_bytes(train_file.read_bytes()[:-10] + b"0123456789")
    before = {p: p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file()}
    result = run_cli("train.py", "task=first_token", "task.seq_len=10", "data.n_train=64", "data.n_val=8",
                     "data.n_test=8", "trainer.batch_size=8", "probe.batch_size=4", cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "train.pt is corrupt" in lines[0], result.stderr
    assert not (tmp_path / "runs").exists()
    assert {p: p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file()} == before


def test_experiment_command_writes_run_folder_and_wandb_offline_run(tmp_path):
    result = run_cli("train.py", "task=adding", "task.seq_len=50", "model=lstm", "profile=smoke", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "runs" / "adding-T50-lstm-none-s0"
    assert f"run folder:  {run_dir.relative_to(tmp_path)}/" in result.stdout
    assert "wandb run:" in result.stdout and "wandb sync" in result.stdout
    assert read_json(run_dir / "metrics.json")["status"] == "completed"
    assert list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert (tmp_path / "data" / "adding" / "T50" / "manifest.json").exists()
    assert "step 20/20" in result.stdout  # plain progress lines when stdout is not a terminal


def test_every_bad_input_is_in_the_docs_table():
    """docs/bad-inputs.md lists what each bad input prints; it must not fall behind the tests."""
    from conftest import ROOT

    table = (ROOT / "docs" / "bad-inputs.md").read_text()
    for args, _ in BAD_INPUTS:
        assert f"`{' '.join(args)}`" in table, args


def test_gpu_accelerator_without_a_gpu_is_refused(tmp_path):
    import torch

    if torch.cuda.is_available():
        return  # the check is about machines without one
    result = run_cli("train.py", "trainer.accelerator=gpu", cwd=tmp_path)
    assert result.returncode != 0 and list(tmp_path.iterdir()) == []
    assert result.stderr.strip() == ("error: trainer.accelerator=gpu but this machine has no CUDA GPU; use "
                                     "trainer.accelerator=auto (GPU when there is one) or cpu")


def test_gpu_memory_estimate_refuses_sizes_that_cannot_fit(tmp_path):
    from conftest import compose_cfg

    from gradlab.config import ConfigError, check_gpu_memory, training_memory_bytes

    small = compose_cfg(["model.hidden_size=128"], tmp_path)
    big = compose_cfg(["model.hidden_size=4096", "trainer.batch_size=1024", "task.seq_len=1000"], tmp_path)
    assert training_memory_bytes(big) > 1000 * training_memory_bytes(small)
    check_gpu_memory(small, 80 * 2**30)  # an H100 holds the default sizes easily
    with pytest.raises(ConfigError, match=r"model.hidden_size=4096 with trainer.batch_size=1024 and "
                                          r"task.seq_len=1000 needs about \d+\.\d GiB on the GPU, which has 80.0 GiB"):
        check_gpu_memory(big, 80 * 2**30)
