"""The entry points as a user runs them: one-line errors before any work, and a real run's outputs.

Most cases call the entry point's main() in this process (conftest.run_entry: its exit code and stderr as the
process would have them, without ~4 s of imports each); a fresh interpreter (run_cli) where that is the point: a
bad input, a data error after torch and Lightning are imported, and a whole run, each with its real exit status
and everything it prints."""

import pytest
from conftest import read_json, run_cli, run_entry

BAD_INPUTS = [
    (["model=gur"], "model='gur' is not a valid choice; choose one of: exprnn, gru, irnn, linear, lru, lstm, lstm97, "
                    "nfg_lstm, rnn"),
    (["task=parity"], "task='parity' is not a valid choice; choose one of: adding, adding_continual, adding_hs97, "
                      "addition_pascanu, copy, first_token, linear_teacher, reber_continual, temporal_order"),
    (["task.seq_len=1"], "task.seq_len=1 is out of range: must be an integer >= 2"),
    (["task.seq_len=-5"], "task.seq_len=-5 is out of range"),
    (["model.hidden_size=0"], "model.hidden_size=0 is out of range: must be an integer >= 1"),
    (["clip=norm", "clip.threshold=0"], "clip.threshold=0.0 is out of range: must be a number > 0"),
    (["clip=norm", "clip.threshold=0.5", "clip.tag=norm1.0"],
     "clip.tag='norm1.0' does not name clip=norm clip.threshold=0.5: it must be 'norm0.5'"),
    (["clip=value", "clip.threshold=-1"], "clip.threshold=-1.0 is out of range"),
    (["clip=maybe"], "clip='maybe' is not a valid choice; choose one of: none, norm, value"),
    (["model.hiden_size=8"], "unknown config key 'model.hiden_size'; valid keys under model: forget_bias, "
                             "hidden_size, name"),
    (["model=rnn", "model.hiden_size=8"], "unknown config key 'model.hiden_size'; valid keys under model: "
                                          "hidden_size, name, num_layers, recurrent_gain, recurrent_init"),
    (["model.truncate=true"], "model.truncate=true applies only to model=lstm97, not lstm"),
    (["learning_rate=1"], "unknown config key 'learning_rate'"),
    (["model.hidden_size=big"], "model.hidden_size"),
    (["model.recurrent_init=xavier"], "model.recurrent_init='xavier' is not a valid choice; choose one of: default, "
                                      "orthogonal, sparse"),
    (["optim=adagrad"], "optim='adagrad' is not a valid choice; choose one of: adam, adamw, rmsprop, sgd"),
    (["model=rnn", "model.forget_bias=1.0"], "model.forget_bias=1.0 applies only to model=lstm"),
    (["trainer.batch_size=20000"], "trainer.batch_size=20000 is larger than the training set"),
    (["trainer.max_steps=0"], "trainer.max_steps=0 is out of range: must be an integer >= 1"),
    (["optim.lr=-1"], "optim.lr=-1.0 is out of range: must be a number > 0"),
    (["optim=sgd", "optim.momentum=2"], "optim.momentum=2.0 is out of range: must be a number in [0, 1)"),
    (["trainer.precision=8"], "trainer.precision='8' is not a valid choice; choose one of: 32-true, 64-true, "
                              "bf16-mixed"),
    (["trainer.precision=16-mixed"], "trainer.precision='16-mixed' is refused: float16 (6e-8 to 65504) flushes to "
                                     "zero the gradients this tool measures as they vanish"),
    (["trainer.accelerator=tpu"], "trainer.accelerator='tpu' is not a valid choice; choose one of: auto, cpu"),
    (["logger.mode=loud"], "logger.mode='loud' is not a valid choice; choose one of: offline, online, disabled"),
    (["probe.every_n_steps=0"], "probe.every_n_steps=0 is out of range: must be an integer >= 1"),
    (["paper=bogus"], "paper='bogus' is not a valid choice; choose one of: arjovsky16_adding, arjovsky16_copy, "
                      "gers00_continual, hs97_adding, le15_adding, pascanu13_addition, pascanu13_temporal"),
    (["task=adding_hs97", "task.seq_len=10"], "task.seq_len=10 is out of range: must be an integer >= 22 for "
                                              "adding_hs97"),
    (["task=adding_continual", "task.n_marked=30"], "task.n_marked=30 is out of range: must be an integer in [1, "
                                                    "task.seq_len=20]"),
    (["optim=rmsprop", "optim.alpha=1.5"], "optim.alpha=1.5 is out of range: must be a number in [0, 1)"),
    (["probe.lyapunov_k=0"], "probe.lyapunov_k=0 is out of range: must be an integer >= 1"),
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
    result = run_entry("train.py", *args, cwd=tmp_path)
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []  # no run folder, no data, no Hydra outputs


@pytest.mark.slow
@pytest.mark.ci  # two fresh interpreters (~11 s): moved out of make test for time; make test has the in-process cases
@pytest.mark.parametrize("args,message", [BAD_INPUTS[0], BAD_INPUTS[2]], ids=["model=gur", "task.seq_len=1"])
def test_bad_input_in_a_fresh_interpreter_exits_1_with_one_line(tmp_path, args, message):
    """The same as the user's shell sees it: the process's own exit status, and nothing else on stderr (no warning,
    no traceback, no Hydra output) from a fresh interpreter."""
    result = run_cli("train.py", *args, cwd=tmp_path)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.stderr == f"error: {message}\n" if args == ["model=gur"] else message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []


def snapshot(root):
    """Every file under root with its bytes: what "nothing written or changed" is checked against. wandb's own
    diagnostic logs (`wandb/…/debug*.log`) are left out: its service process, shared by the in-process runs of
    a session, appends to an earlier run's log when it shuts down, on its own schedule."""
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()
            and not ("wandb" in p.parts and p.name.startswith("debug") and p.suffix == ".log")}


def assert_clean_error(result, message, root, before):
    """Exit 1, one line on stderr starting with `error:` that contains message, no traceback, nothing changed."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert snapshot(root) == before


DATA = ("task=first_token", "task.seq_len=10", "data.n_train=64", "data.n_val=8", "data.n_test=8")
TRAIN_SMALL = (*DATA, "trainer.batch_size=8", "probe.batch_size=4", "trainer.max_steps=2", "logger.mode=disabled")


@pytest.fixture
def generated(tmp_path):
    ok = run_entry("generate.py", *DATA, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    return tmp_path / "data" / "first_token" / "T10"


def test_corrupt_data_file_fails_cleanly(tmp_path, generated):
    """In a fresh interpreter: torch and Lightning are imported by then, and must print nothing on stderr."""
    train_file = generated / "train.pt"
    train_file.write_bytes(train_file.read_bytes()[:-10] + b"0123456789")
    before = snapshot(tmp_path)
    assert_clean_error(run_cli("train.py", *TRAIN_SMALL, cwd=tmp_path),
                       "data/first_token/T10/train.pt is corrupt (sha256 does not match its manifest); delete "
                       "data/first_token/T10 and regenerate it", tmp_path, before)


def test_missing_data_file_fails_cleanly(tmp_path, generated):
    (generated / "val.pt").unlink()
    before = snapshot(tmp_path)
    assert_clean_error(run_entry("train.py", *TRAIN_SMALL, cwd=tmp_path),
                       "data/first_token/T10/val.pt is missing; delete data/first_token/T10 and regenerate it",
                       tmp_path, before)


def test_data_of_another_seed_or_size_fails_cleanly(tmp_path, generated):
    before = snapshot(tmp_path)
    assert_clean_error(run_entry("train.py", *TRAIN_SMALL, "data.seed=7", cwd=tmp_path),
                       "data/first_token/T10 holds sizes {'train': 64, 'val': 8, 'test': 8} with data seed 1234, but "
                       "the config asks for {'train': 64, 'val': 8, 'test': 8} with seed 7", tmp_path, before)
    assert_clean_error(run_entry("train.py", *TRAIN_SMALL, "data.n_train=32", cwd=tmp_path),
                       "holds sizes {'train': 64, 'val': 8, 'test': 8}", tmp_path, before)


def test_analyze_errors_are_one_line_and_change_nothing(tmp_path, generated):
    assert run_entry("train.py", *TRAIN_SMALL, cwd=tmp_path).returncode == 0
    before = snapshot(tmp_path)
    assert_clean_error(run_entry("analyze.py", *TRAIN_SMALL, "model.hidden_size=32", cwd=tmp_path),
                       "checkpoint runs/first_token-T10-lstm-none-s0/model.ckpt was trained with another config "
                       "(model.hidden_size: 64 -> 32); use the overrides it was trained with or another run_name=",
                       tmp_path, before)
    assert_clean_error(run_entry("analyze.py", *TRAIN_SMALL, "model=rnn", cwd=tmp_path),
                       "no checkpoint at runs/first_token-T10-rnn-none-s0/model.ckpt: train the run first", tmp_path,
                       before)
    (tmp_path / "runs" / "first_token-T10-lstm-none-s0" / "model.ckpt").write_bytes(b"not a checkpoint")
    before = snapshot(tmp_path)
    assert_clean_error(run_entry("analyze.py", *TRAIN_SMALL, cwd=tmp_path), "unreadable", tmp_path, before)


def test_compare_without_a_probe_table_is_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "runs" / "r").mkdir(parents=True)
    assert_clean_error(run_entry("compare.py", "runs/r", "--out", "cmp.png", cwd=tmp_path),
                       "runs/r/bptt.csv does not exist; train the run with the probe on (probe.enabled=true)",
                       tmp_path, {})


BF16_REFUSAL = ("trainer.precision='bf16-mixed' with model=lstm on this CPU: its oneDNN has no bfloat16 kernel for it "
                "(that needs AVX-512 BF16 or AMX); use trainer.precision=32-true, or a GPU")


def test_bf16_on_a_cpu_without_the_kernel_is_refused_in_one_line(tmp_path, monkeypatch):
    """The refusal on every CPU: the kernel probe answers "no" as it does on a CPU without AVX-512 BF16 or AMX
    (an AMD EPYC here), whatever this one has."""
    from gradlab.launch import machine

    monkeypatch.setattr(machine, "cpu_runs_bf16", lambda model: False)
    assert_clean_error(run_entry("train.py", *TRAIN_SMALL, "trainer.precision=bf16-mixed", cwd=tmp_path),
                       BF16_REFUSAL, tmp_path, {})


def test_bf16_runs_on_every_cpu_with_a_model_atens_kernels_run(tmp_path):
    """The bf16 run on every CPU: the tanh RNN's fused module is ATen's, which takes bfloat16 anywhere (the real
    probe says so here, and the run completes)."""
    from gradlab.launch import machine

    assert machine.cpu_runs_bf16("rnn")
    result = run_entry("train.py", *TRAIN_SMALL, "model=rnn", "trainer.precision=bf16-mixed", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_json(tmp_path / "runs" / "first_token-T10-rnn-none-s0" / "metrics.json")["status"] == "completed"


def test_bf16_lstm_as_this_cpu_answers(tmp_path):
    """The real CPU asked: oneDNN's bfloat16 LSTM runs (AVX-512 BF16 or AMX: the run completes) or not (the
    refusal, before any work); which one happened is checked against the probe's answer."""
    import torch

    from gradlab.launch import machine

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU takes bf16-mixed runs; this is about CPUs")
    result = run_entry("train.py", *TRAIN_SMALL, "trainer.precision=bf16-mixed", cwd=tmp_path)
    if machine.cpu_runs_bf16("lstm"):
        assert result.returncode == 0, result.stderr
        assert read_json(tmp_path / "runs" / "first_token-T10-lstm-none-s0" / "metrics.json")["status"] == "completed"
    else:
        assert_clean_error(result, BF16_REFUSAL, tmp_path, {})


def test_experiment_command_writes_run_folder_and_wandb_offline_run(tmp_path):
    result = run_cli("train.py", "task=adding", "task.seq_len=10", "model=lstm", "profile=smoke", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "runs" / "adding-T10-lstm-none-s0"
    assert f"run folder:  {run_dir.relative_to(tmp_path)}/" in result.stdout
    assert "wandb run:" in result.stdout and "wandb sync" in result.stdout
    assert read_json(run_dir / "metrics.json")["status"] == "completed"
    assert list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert (tmp_path / "data" / "adding" / "T10" / "manifest.json").exists()
    assert "step 20/20" in result.stdout  # plain progress lines when stdout is not a terminal


def test_every_bad_input_is_in_the_docs_table():
    """docs/bad-inputs.md lists what each bad input prints; it must not fall behind the tests."""
    from conftest import ROOT

    table = (ROOT / "docs" / "bad-inputs.md").read_text()
    for args, message in BAD_INPUTS:
        assert f"`{' '.join(args)}`" in table, args
        assert message in table, message  # what the user sees, as the tests hold it
    assert BF16_REFUSAL in table
    import re

    cited = re.findall(r"`(test_\w+\.py)::(test_\w+)`", table)
    assert len(cited) >= 10
    for module, name in cited:  # every file row names a test that exists
        assert f"def {name}(" in (ROOT / "tests" / module).read_text(), (module, name)


def test_gpu_accelerator_without_a_gpu_is_refused(tmp_path, monkeypatch):
    """On every machine: a GPU machine is made to answer as one without (torch.cuda.is_available faked)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = run_entry("train.py", "trainer.accelerator=gpu", cwd=tmp_path)
    assert result.returncode == 1 and list(tmp_path.iterdir()) == []
    assert result.stderr.strip() == ("error: trainer.accelerator=gpu but this machine has no CUDA GPU; use "
                                     "trainer.accelerator=auto (GPU when there is one) or cpu")


def test_gpu_memory_estimate_refuses_sizes_that_cannot_fit(tmp_path):
    from conftest import compose_cfg

    from gradlab.core.errors import ConfigError
    from gradlab.launch.machine import check_gpu_memory, training_memory_bytes

    small = compose_cfg(["model.hidden_size=128"], tmp_path)
    big = compose_cfg(["model.hidden_size=4096", "trainer.batch_size=1024", "task.seq_len=1000"], tmp_path)
    assert training_memory_bytes(big) > 1000 * training_memory_bytes(small)
    check_gpu_memory(small, 80 * 2**30)  # an H100 holds the default sizes easily
    with pytest.raises(ConfigError, match=r"model.hidden_size=4096 with trainer.batch_size=1024 and "
                                          r"task.seq_len=1000 needs about \d+\.\d GiB on the GPU, which has 80.0 GiB"):
        check_gpu_memory(big, 80 * 2**30)
