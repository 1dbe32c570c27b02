"""The renderers of the pages' result blocks (gradlab.pages.markers.RENDERERS): each turns one docs/results/*.json
record into the block's Markdown, every number taken from the record."""

from __future__ import annotations

import math
from typing import Any

from gradlab.pages.recording import machine_line, steps_per_T
from gradlab.study.judging import VERDICT_RULE


def g(x: float | None, digits: int = 2) -> str:
    """A number as README prints it: `digits` significant digits, e.g. 9.9e-11, 0.23, 12."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}g}"


def steps_text(max_steps: int | str | dict, seq_lens: list[int] | None = None) -> str:
    """train.max_steps in words: '2000 steps', or for {T: steps} '400/800/1600 steps at T=20/50/100' (T ascending;
    with `seq_lens`, the T among them only)."""
    steps = steps_per_T(max_steps)
    if isinstance(steps, int):
        return f"{steps} steps"
    Ts = sorted(T for T in steps if seq_lens is None or T in seq_lens) or sorted(steps)
    return f"{'/'.join(str(steps[T]) for T in Ts)} steps at T={'/'.join(map(str, Ts))}"


def render_documented_run(r: dict[str, Any]) -> str:
    rnn, lstm, nfg = r["models"]["rnn"], r["models"]["lstm"], r["models"]["nfg_lstm"]
    s = r["setup"]
    losses = ", ".join(f"{m} {g(v['test_loss'], 3)}" for m, v in r["models"].items())
    lr = f"{s['lr']:.0e}".replace("e-0", "e-")
    return (
        f"**The documented run** (`make documented-run` makes it, `make test-slow` repeats it): adding task, "
        f"T={s['seq_len']}, H={s['hidden_size']}, B={s['batch_size']}, Adam {lr}, {steps_text(s['max_steps'])}, "
        f"seed {s['seed']}, then `analyze.py` on {s['probe_batch']} test sequences; measured on "
        f"{machine_line(r['machine'])} (`docs/results/documented_run.json`; bitwise on that machine and software "
        f"only: `tests/test_science.py::test_the_documented_run_reproduces_readme_figures` asks for equality there, "
        f"and elsewhere for the spread of seeds). ‖∂ℓ/∂h_0‖/‖∂ℓ/∂h_{{T−1}}‖ is {g(rnn['h_ratio'])} for the tanh RNN "
        f"(measured rate {g(rnn['decay_rate'])}/step; mean-field prediction {g(rnn['decay_rate_predicted'])}, "
        f"Pascanu bound {g(rnn['decay_rate_bound'])}), {g(lstm['h_ratio'])} for the LSTM "
        f"(‖∂ℓ/∂c_t‖: {g(lstm['c_ratio'])}, rate {g(lstm['decay_rate'])}/step; slowest-unit prediction "
        f"max_j mean_t ln f_t[j] = {g(lstm['decay_rate_predicted'])}), and the NFG's "
        f"‖∂ℓ/∂c_t‖ does not vanish: ‖∂ℓ/∂c_0‖/‖∂ℓ/∂c_{{T−1}}‖ = {g(nfg['c_ratio'])}, max/min over t "
        f"{g(nfg['c_max_over_min'])} (rate {g(nfg['decay_rate_c'])}/step). The direct cell path is the identity; "
        f"what varies is the total derivative through h and the gates. Test MSE after {steps_text(s['max_steps'])}: "
        f"{losses} (baseline {g(r['baseline_loss'], 3)}). The LSTM's hidden states across samples lie "
        f"{g(lstm['hidden_angle_mean_deg'], 3)}° apart on average (random vectors in {s['hidden_size']} dimensions: "
        f"90° ± {g(lstm['hidden_random_sd_deg'], 2)}°), its W_hh contributions from different steps "
        f"{g(lstm['dW_hh_angle_mean_deg'], 3)}° ± {g(lstm['dW_hh_angle_sd_deg'], 2)}° (random in "
        f"{lstm['dW_hh_dim']} dimensions: 90° ± {g(lstm['dW_hh_random_sd_deg'], 2)}°).\n"
        f"\n![per-step gradient norms after training, adding T=100](docs/bptt_adding_T100.png)\n\n"
        f"The same RNN's ‖∂ℓ/∂h_t‖ over training (`figures/bptt_heatmap_dL_dh_norm_l0.png`; the probe computes "
        f"in {s['probe_dtype']}, and the smallest value it measured is {g(rnn['h_min_training'])}): at the start "
        f"the gradient from t=T−1 falls below 1e-3 of its value within "
        f"{rnn['horizon_at_start']:.0f} steps back, after training within {rnn['horizon_at_end']:.0f}.\n"
        f"\n![heatmap of log10 ‖∂ℓ/∂h_t‖ over training, rnn](docs/bptt_heatmap_rnn_T100.png)\n")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def render_repro_time(r: dict[str, Any]) -> str:
    """One line for README's commands: how long `make repro` took from a fresh clone, and on what."""
    par = r["parallel"]
    return (f"`make repro` took {_minutes(par['wall_s_since_make'])} from a fresh clone to the report (cpu profile, "
            f"JOBS={par['jobs']}, installing `.venv` included) on {machine_line(r['machine'])}.")


def _study_run(r: dict[str, Any]) -> str:
    """How a recorded study ran: its grid, its wall time, and (where recorded) the serial runs beside it."""
    s, par = r["setup"], r["parallel"]
    models = ", ".join(f"{m['name']} (H={m['hidden_size']})" for m in s["models"])
    lr = f"{s['lr']:.0e}".replace("e-0", "e-")
    threads = f"{par['threads']} thread{'s' if par['threads'] != 1 else ''}"
    record = r.get("record", "docs/results/cpu_profile.json")
    commit = f" of commit {r['commit']}" if r.get("commit") else ""
    text = (f"**The cpu profile** as `make repro` ran it from a fresh clone{commit} on {machine_line(r['machine'])} "
            f"(`{record}`, written by `pipelines/record_study.py` from the clone's "
            f"`results/repro.json` and summary): {' and '.join(s['tasks'])} task, "
            f"T ∈ {{{', '.join(map(str, s['seq_lens']))}}}, {models}, clip {', '.join(s['clips'])}, "
            f"seeds {', '.join(map(str, s['seeds']))}: {s['runs']} runs of "
            f"{steps_text(s['max_steps'], s['seq_lens'])}, B={s['batch_size']}, Adam {lr}. With JOBS={par['jobs']} "
            f"and {threads} per stage it took {_minutes(par['wall_s_since_make'])} from `make repro` to the report, "
            f"installing `.venv` included ({_minutes(par['wall_s'])} for the {par['stages']} stages).")
    if "serial" in r:
        ser = r["serial"]
        text += (f" The same grid with `make repro JOBS=1` (a plain `dvc repro`, {ser['threads']} threads) in "
                 f"another clone of the same commit took {_minutes(ser['wall_s'])} for the stages: "
                 + _compare(r["compare"], "."))
    if "serial_same_threads" in r:
        ser = r["serial_same_threads"]
        text += (f" With {threads} per run there as well (`make repro JOBS=1 THREADS={ser['threads']}`, "
                 f"{_minutes(ser['wall_s'])}): " + _compare(r["compare_same_threads"], ": what differs at "
                                                            "default threads is the thread count, not the runner."))
    return text


def _compare(c: dict[str, Any], end: str) -> str:
    return (f"the parallel study took {c['wall_ratio']:.2f}x its time. metrics.json was byte-identical between the "
            f"two in {c['metrics_json_identical']} of {c['metrics_json_runs']} runs, and summary.csv "
            f"{'was identical' if c['summary_csv_identical'] else 'differed'}{end}")


def render_study_runner(r: dict[str, Any]) -> str:
    """A recorded study's run and its comparison with the serial runner, without the headline and table (the
    README's cpu_profile block shows those)."""
    return _study_run(r) + " The per-run figures are bitwise only on that CPU and software.\n"


def render_cpu_profile(r: dict[str, Any]) -> str:
    """The cpu profile as `make repro` ran it from a fresh clone (pipelines/record_study.py wrote the file)."""
    s = r["setup"]
    text = _study_run(r)
    text += (" The per-run figures are bitwise only on that CPU and software; across machines what holds is the "
             "pattern over seeds. The headline, as the summary computes it:\n\n> " + r["headline"] + "\n\n")
    longest = max(s["seq_lens"])
    rows = [c for c in r["cells"] if c["T"] == longest]
    lines = [f"| T={longest}, median over seeds | " + " | ".join(f"{c['model']} {c['clip']}" for c in rows) + " |",
             "|---|" + "---|" * len(rows),
             "| solved | " + " | ".join(c["solved"] for c in rows) + " |",
             "| test MSE / baseline | " + " | ".join(g(c["loss/baseline"]) for c in rows) + " |",
             "| solved at step (val < 1%) | " + " | ".join(
                 "–" if c["steps_to_solve"] is None else f"{c['steps_to_solve']:.0f}" for c in rows) + " |",
             "| steps clipped | " + " | ".join(
                 "–" if c["clip"] == "none" else f"{c['clip_fraction']:.0%}" for c in rows) + " |",
             "| ‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_T−1‖ while training | " + " | ".join(
                 g(c["h_0/h_T-1 (training)"]) for c in rows) + " |",
             "| λ_1, trained (ln per step) | " + " | ".join(g(c.get("lyapunov_max")) for c in rows) + " |",
             "| decay of ‖∂ℓ/∂h_t‖: measured / predicted | " + " | ".join(
                 f"{g(c.get('decay_rate'))} / {g(c.get('predicted'))}" for c in rows) + " |"]
    text += "\n".join(lines) + "\n"
    for T in [t for t in s["seq_lens"] if t != longest]:
        short = [c for c in r["cells"] if c["T"] == T]
        text += (f"\nAt T={T}: " + "; ".join(f"{c['model']} {c['clip']} solved {c['solved']} "
                                             f"({g(c['loss/baseline'])} of the baseline)" for c in short) + ".\n")
    return text


def render_reproduction(r: dict[str, Any]) -> str:
    """The reproduction table of the recorded study (rows as the summarize stage computed them, verdicts included)."""
    rows = r.get("reproduction")
    if not rows:
        return "The recorded study has no reproduction table (recorded before the `paper` stage existed).\n"
    import pandas as pd

    from gradlab.study.verdicts import REPRODUCTION_KEYS, reproduction_markdown

    table = reproduction_markdown(pd.DataFrame(rows).fillna(""), [k for k in REPRODUCTION_KEYS if k != "seeds"])
    if any("ours" in x for x in rows):
        how = ". " + VERDICT_RULE
    elif any("band" in x for x in rows):
        how = (" with a margin (recorded before verdicts were intervals: reproduced or not only when no seed is in "
               "the band).")
    else:
        how = " (recorded before verdicts had a margin: reproduced when most seeds' outcome is the paper's)."
    return (f"From the same recorded study ({machine_line(r['machine'])}; `results/summary/reproduction.md`), one row "
            f"per published claim, in the setups of commit {r.get('commit', '?')}; the verdict is computed from the "
            f"runs{how}\n\n" + table)


def render_lyapunov(r: dict[str, Any]) -> str:
    """λ_1 against the probe's measured decay rate, per model, over the recorded study's runs."""
    rows = r.get("lyapunov")
    if not rows:
        return "The recorded study has no Lyapunov spectra (recorded before the analyze stage computed them).\n"
    lines = ["| model | runs | λ_1 trained | λ_1 at init | measured decay rate | median gap / rate |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {x['model']} | {x['runs']} | {g(x['lyapunov_max'], 3)} | {g(x['lyapunov_max_init'], 3)} | "
              f"{g(x['decay_rate'], 3)} | {x['rel_gap']:.0%} |" for x in rows]
    return (f"Medians over the recorded cpu-profile runs ({machine_line(r['machine'])}), ln per step:\n\n"
            + "\n".join(lines) + "\n")


def render_geometry(r: dict[str, Any]) -> str:
    """The geometry stage's measurements against theory, from the recorded study's results/geometry/reference.csv."""
    rows = r.get("geometry")
    if not rows:
        return "The recorded study has no geometry table.\n"

    def value(dist: str, D: int, stat: str, key: str = "value") -> float | None:
        hit = [x[key] for x in rows if x["distribution"] == dist and x["D"] == D and x["statistic"] == stat]
        return hit[0] if hit else None

    def worst(stat: str) -> float:
        return max(abs(x["value"] / x["theory"] - 1) for x in rows if x["statistic"] == stat and x["theory"])

    dims = sorted({x["D"] for x in rows if x["distribution"] == "sphere"})
    sd = [D for D in dims if value("sphere", D, "angle_sd_deg") is not None and D <= 1000]
    cube = [D for D in dims if value("cube", D, "relative_contrast") is not None]
    big = [D for D in cube if D >= 100]
    shell = [D for D in (2, 3) if value("ball", D, "shell_fraction_mc") is not None]
    return (f"Measured with the study's defaults ({machine_line(r['machine'])}; `results/geometry/reference.csv`): the "
            f"largest gap to theory over all distributions and dimensions is {worst('cos_var_times_D'):.1%} for "
            f"D·Var(cos), {worst('angle_sd_deg'):.1%} for the angle sd and {worst('dist_sq_mean_over_D'):.1%} for "
            f"E‖x−y‖²/D; the sphere's angle sd is "
            + ", ".join(f"{value('sphere', D, 'angle_sd_deg'):.4g}°" for D in sd)
            + f" at D = {', '.join(map(str, sd))} (exact "
            + ", ".join(f"{value('sphere', D, 'angle_sd_deg', 'theory'):.4g}°" for D in sd) + "); shell fractions "
            + " and ".join(f"{value('ball', D, 'shell_fraction'):.3g} (D={D})" for D in shell)
            + " as in the curse-of-dimensionality article, Monte Carlo "
            + " and ".join(f"{value('ball', D, 'shell_fraction_mc'):.4g} ± "
                           f"{value('ball', D, 'shell_fraction_mc_se'):.2g}" for D in shell)
            + "; the cube's relative contrast falls "
            + ", ".join(f"{value('cube', D, 'relative_contrast'):.3g}" for D in cube)
            + f" over D = {', '.join(map(str, cube))} (an earlier simulation of the same kind, 100 uniform points, "
            "gave 1.69, 0.322, 0.091 at D = 10, 100, 1000; these are not numbers from Aggarwal et al.'s paper) and "
            "RC·√D = "
            + ", ".join(f"{value('cube', D, 'relative_contrast_times_sqrtD'):.3g}" for D in big)
            + f" at D = {', '.join(map(str, big))}.\n")


def _identical(o: dict[str, Any]) -> str:
    """'k of n paper runs (every seed of <setups>)': the runs another thread count left bitwise unchanged."""
    runs, differ = o["paper_runs"], set(o["metrics_json_differ"])
    setup = lambda run: run.rsplit("-s", 1)[0].removeprefix("paper-")  # noqa: E731
    whole = sorted({setup(r) for r in runs} - {setup(r) for r in differ})
    return (f"{len(runs) - len(differ)} of {len(runs)} paper runs"
            + (f" (every seed of {', '.join(whole)})" if whole else ""))


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two recorded reproductions (results/repro.json) ran at the same time."""
    from datetime import datetime

    def span(x: dict[str, Any]) -> tuple[float, float]:
        end = datetime.strptime(x["finished"], "%Y-%m-%dT%H:%M:%SZ").timestamp()
        return end - x["wall_s"], end

    (a0, a1), (b0, b1) = span(a), span(b)
    return a0 < b1 and b0 < a1


def render_papers(r: dict[str, Any]) -> str:
    """The papers-cpu profile's reproduction table: each row run, its verdict from two fresh clones with different
    thread counts (other rounding), the seeds in the band, the time a seed; then each seed's value against the band,
    and the setups left to a GPU with their estimated time here."""
    rows = [x for x in r.get("reproduction", []) if x.get("seeds")]
    if not rows:
        return "The recorded study ran no paper setup.\n"
    this, other = r["parallel"], r.get("other", {}).get("repro")
    agree = sum(bool(x.get("verdicts agree")) for x in rows)

    def minutes(rep: dict[str, Any]) -> str:
        return f"{rep['wall_s'] / 60:.1f} min (JOBS={rep['jobs']}, THREADS={rep['threads']})"

    text = (f"Recorded from fresh clones of `{r.get('commit', '?')}` on {machine_line(r['machine'])}: `make repro "
            f"PROFILE={r['setup']['profile']}` took {minutes(this)}"
            + (f" and {minutes(other)}; the verdicts agree in {agree} of {len(rows)} rows" if other else "")
            + (" (the two ran at the same time on the same cores: each time includes the other's load)"
               if other and _overlap(this, other) else "")
            + (f"; each run's metrics.json was byte-identical between the two in {_identical(r['other'])}"
               if other and "paper_runs" in r["other"] else "")
            + " (`docs/results/papers_cpu.json`). "
            + (VERDICT_RULE if any("ours" in x for x in rows) else
               "Recorded before verdicts were intervals: verdicts with a margin, every seed clearly on one side of the "
               "paper's line, else inconclusive (`make repro PROFILE=papers-cpu` again gives today's).") + "\n\n")
    head = ["published", "model", "T", "seeds", "solved", "theirs", "ours", f"verdict, THREADS={this['threads']}"]
    head += [f"THREADS={other['threads']}"] if other else []
    head += ["would decide", "in the band", "seconds a seed", "ours differs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for x in rows:
        t = x.get("seconds per seed")
        cells = [x["source"], x["model"], str(x["T"]), str(x["seeds"]), x["solved"], x["theirs"] or "–",
                 x.get("ours") or "–", x["verdict"]]
        cells += [f"{x.get('other verdict')}" + (f" ({x['other in the band']})" if x.get("other in the band") else "")
                  ] if other else []
        cells += [x.get("would decide") or "–", x["in the band"] or "–",
                  f"{t['median']:.0f} [{t['min']:.0f}-{t['max']:.0f}]" if t else "–", x["ours differs"]]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    text += "\n".join(lines) + "\n\nEach seed against its row's band:\n\n"
    text += "".join(f"- {x['source']}, {x['model']} T={x['T']}: {x['band']}. {x['seed values']}.\n" for x in rows)
    est = [e for e in r.get("estimates", [])]
    if est:
        text += ("\nLeft to a GPU (`make repro PROFILE=paper`), with the time a seed would take here: its budget at "
                 "the time a step took above, scaled by T: "
                 + "; ".join(f"{e['name']} {e['model']} T={e['T']}: "
                             + (f"{e['max_steps']:,} steps, ~{_duration(e['seconds'])}" if e["seconds"] else
                                "not estimated (no CPU run of that setup)") for e in est) + ".\n")
    return text
