"""Experiment presets ``conf/experiment/*.yaml`` (the reference reports' recipes), and report
000's fixed-sigma noise that one of them needs.

Every file found in ``conf/experiment`` is covered automatically: it must compose, carry a header
citing its report, and complete ``debug=fast`` (one batch of fit / validate / test) through
``train.py`` on generated audio.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from ser_lightning.features.augment import AddWhiteNoise, build_wave_augment
from ser_lightning.features.geometry import spectrogram_geometry
from ser_lightning.hardware import resolve_hardware
from ser_lightning.modules.optim import check_optim_config
from tests.conftest import REPO, run_script
from tests.metric_checks import LABEL_SETS, assert_test_metrics_match_split, split_rows

EXPERIMENTS = sorted(p.stem for p in (REPO / "ser_lightning" / "conf" / "experiment").glob("*.yaml"))
#: Recipes an encoder model names in its own defaults (``conf/model/<model>.yaml`` → ``<model>_probe``): they come
#: with ``model=<model>`` and carry no network of their own.
PROBES = {name: name.removesuffix("_probe") for name in EXPERIMENTS if name.endswith("_probe")}


def _selection(name: str) -> list[str]:
    """The overrides that select experiment ``name``: a probe recipe with the model that names it."""
    return [f"model={PROBES[name]}"] if name in PROBES else [f"experiment={name}"]


def _compose(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=str(REPO / "ser_lightning" / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


def _sweep_jobs(params) -> list[list[str]]:
    """The jobs Hydra's basic sweeper launches for ``hydra.sweeper.params`` (``-m`` with no other sweep)."""
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return BasicSweeper.split_arguments(parsed, max_batch_size=None)[0]


def _experiment_file(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(REPO / "ser_lightning" / "conf" / "experiment" / f"{name}.yaml"))


def _parents(name: str) -> list[str]:
    """The experiments ``name`` extends (plain names in its defaults list)."""
    return [e for e in _experiment_file(name).get("defaults", []) if isinstance(e, str) and e != "_self_"]


def _experiment_group(name: str, group: str) -> str:
    """The ``group`` option an experiment selects, read from the files without Hydra: its own
    ``override /group``, else that of the experiment it extends, else ``conf/train.yaml``'s default (a probe
    recipe's model: the model that names it)."""
    if group == "model" and name in PROBES:
        return PROBES[name]
    for entry in _experiment_file(name).get("defaults", []):
        if isinstance(entry, dict) and f"override /{group}" in entry:
            return entry[f"override /{group}"]
    parents = _parents(name)
    if parents:
        return _experiment_group(parents[0], group)
    train = OmegaConf.to_container(OmegaConf.load(REPO / "ser_lightning" / "conf" / "train.yaml"))["defaults"]
    return next(e[group] for e in train if isinstance(e, dict) and group in e)


def _experiment_optim(name: str) -> dict:
    """``optim`` as the files write it: the selected ``conf/optim`` file, updated by the extended
    experiment's ``optim:`` keys and then by the experiment's own."""
    def own_keys(n: str) -> dict:
        inherited = {}
        for parent in _parents(n):
            inherited.update(own_keys(parent))
        return {**inherited, **_experiment_file(n).get("optim", {})}

    base = OmegaConf.to_container(OmegaConf.load(REPO / "ser_lightning" / "conf" / "optim" / f"{_experiment_group(name, 'optim')}.yaml"))
    return {**base, **own_keys(name)}


def test_experiments_are_found():
    assert {"ravdess_homebrew", "report000", "report001", "report002", "report003", "report004"} <= set(EXPERIMENTS)


# ----------------------------------------------------------------------------- composition (cheap)
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_with_valid_settings(name):
    cfg = _compose(*_selection(name))
    OmegaConf.resolve(cfg.data)  # data.seed=${seed} etc.
    check_optim_config(OmegaConf.to_container(cfg.optim))  # raises on a bad optim setting
    wave = OmegaConf.to_container(cfg.augment).get("wave") or {}
    build_wave_augment(cfg.data.sample_rate, **wave)  # raises on a bad augmentation setting
    if cfg.data.split == "kfold":
        assert 0 <= cfg.data.fold < cfg.data.n_folds
    assert OmegaConf.to_container(cfg.optim) == _experiment_optim(name)
    if cfg.model.get("input_size"):  # timm backbones: the frontend is sized for the backbone
        h, w = cfg.model.input_size
        geo = spectrogram_geometry(cfg.data.sample_rate, cfg.data.duration_s, cfg.features.n_fft, w, h)
        assert (geo["n_mels"], geo["frames"]) == (h, w)


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n.startswith("report")])
def test_report_experiment_header_cites_its_report_and_differences(name):
    text = (REPO / "ser_lightning" / "conf" / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    header = text.split("\ndefaults:")[0]
    number = name[len("report") : len("report") + 3]
    assert f"Report {number}" in header and "§" in header
    assert f"experiment={name}" in header  # the command
    if "differ" not in header.lower():  # a backbone variant points to its base file for that
        assert "experiment=report003" in header and "differs" in (REPO / "ser_lightning/conf/experiment/report003.yaml").read_text()


def test_experiment_settings_override_the_defaults_and_the_command_line_overrides_them():
    # conf/train.yaml lists _self_ before experiment: an experiment can set optim / seed ...
    cfg = _compose("experiment=report000")
    assert (cfg.optim.name, cfg.optim.scheduler) == ("adam", "cosine_warm_restarts")
    # The report's FP16 comes from the default trainer: 16-mixed wherever a GPU is found.
    settings = resolve_hardware(OmegaConf.to_container(cfg.trainer), detected="gpu")
    assert (settings["accelerator"], settings["precision"]) == ("gpu", "16-mixed")
    # ... and the command line still wins, group choices included.
    cfg = _compose("experiment=report000", "optim.lr=0.5", "trainer=cpu")
    assert cfg.optim.lr == 0.5 and cfg.trainer.accelerator == "cpu" and str(cfg.trainer.precision) == "32"
    assert cfg.trainer.gradient_clip_val == 1.0  # the experiment's own trainer keys stay


def test_report000_recipe():
    cfg = _compose("experiment=report000")
    assert cfg.model.name == "joint_ensemble" and cfg.data.label_set == "ekman7"
    assert (cfg.data.sample_rate, cfg.data.duration_s, cfg.features.n_mels) == (16000, 3.0, 128)
    chain = build_wave_augment(cfg.data.sample_rate, **OmegaConf.to_container(cfg.augment.wave))
    noise = [s for s in chain.stages if isinstance(s, AddWhiteNoise)]
    assert len(noise) == 1 and noise[0].sigma == 0.005 and noise[0].snr_db is None
    assert cfg.augment.wave.shift_max_frac == 0.1 and cfg.augment.wave.speed_p > 0
    assert (cfg.optim.lr, cfg.data.batch_size, cfg.callbacks.early_stopping.patience) == (1e-3, 256, 10)


def test_report002_multirun_is_the_lr_grid_times_four_folds():
    cfg = _compose("experiment=report002", hydra=True)
    jobs = _sweep_jobs(cfg.hydra.sweeper.params)
    assert len(jobs) == 16
    combos = {tuple(sorted(job)) for job in jobs}
    assert len(combos) == 16
    lrs = {float(o.split("=")[1]) for job in jobs for o in job if o.startswith("optim.lr=")}
    folds = {int(o.split("=")[1]) for job in jobs for o in job if o.startswith("data.fold=")}
    assert lrs == {0.01, 0.005, 0.001, 0.0005} and folds == {0, 1, 2, 3}
    assert (cfg.data.split, cfg.data.n_folds, cfg.data.duration_s, cfg.features.deltas) == ("kfold", 4, 2.0, 2)


def test_report004_multirun_is_five_folds():
    cfg = _compose("experiment=report004", hydra=True)
    jobs = _sweep_jobs(cfg.hydra.sweeper.params)
    assert sorted(job[0] for job in jobs) == [f"data.fold={k}" for k in range(5)]
    assert (cfg.data.label_set, cfg.data.n_folds, cfg.data.batch_size, cfg.model.attention_lambda) == ("quad4", 5, 51, 0.8)


def test_report003_backbones_share_the_pipeline_and_differ_in_input_size():
    base = _compose("experiment=report003")
    assert (base.data.sample_rate, base.data.duration_s, base.features.n_fft) == (24414, 2.618, 2048)
    assert (base.optim.scheduler, base.optim.anneal_strategy, base.augment.wave.shift_max_frac) == ("onecycle_half", "linear", 0.3)
    sizes = {}
    for name in [n for n in EXPERIMENTS if n.startswith("report003_")]:
        cfg = _compose(f"experiment={name}")
        assert cfg.data == base.data and cfg.optim == base.optim and cfg.augment == base.augment
        sizes[cfg.model.name] = list(cfg.model.input_size)
    assert sizes.get("inception_v3") == [299, 299] and sizes.get("mobilenetv3_large_100") == [224, 224]


# ----------------------------------------------------------------------------- train.py debug=fast
def _tiny_overrides(cfg) -> list[str]:
    """What a CPU run on the tiny generated corpus needs, beyond ``debug=fast`` and the data paths."""
    out = [
        "trainer=cpu",  # the CPU even where a GPU is visible: these are CPU smoke tests
        "trainer.precision=32",
        "data.val_speakers=2",  # 8 generated actors: the default 4 + 4 would leave too few to train
        "data.test_speakers=2",
        "data.batch_size=2",  # a 299 x 299 Inception-v3 step on 2 CPU cores stays in seconds
        "callbacks.progress_bar=null",
    ]
    if cfg.model.get("pretrained") not in (None, False):
        out.append("model.pretrained=false")  # hub weights need internet; offline ones are tested elsewhere
        if cfg.model.get("trainable_blocks") is not None:
            out.append("model.trainable_blocks=null")  # freezing random weights is refused
    return out


@pytest.fixture(scope="module")
def experiment_cache(tmp_path_factory):
    """One decode cache for all experiment runs (keyed by sample rate and duration inside)."""
    return tmp_path_factory.mktemp("experiment_cache")


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n not in PROBES])  # probes: test_default_model etc.
def test_experiment_completes_fast_dev_run(name, tiny_ravdess, experiment_cache, tmp_path):
    cfg = _compose(f"experiment={name}")
    run = tmp_path / "run"
    r = run_script("train.py", f"experiment={name}", "debug=fast", f"data.root={tiny_ravdess}",
                   f"data.cache_dir={experiment_cache}", *_tiny_overrides(cfg), cwd=run)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == OmegaConf.load(REPO / "ser_lightning" / "conf" / "model" / f"{_experiment_group(name, 'model')}.yaml").name
    # debug=fast tests one batch: the first 2 (data.batch_size) test clips.
    assert_test_metrics_match_split(metrics, split_rows(run), LABEL_SETS[cfg.data.label_set], first=2)
    if cfg.model.get("input_size"):
        assert metrics["input_shape"][1:] == list(cfg.model.input_size)
    resolved = OmegaConf.to_container(OmegaConf.load(run / "config_resolved.yaml").optim)
    assert resolved == _experiment_optim(name)  # the experiment's recipe, as its files write it, is what ran


# ----------------------------------------------------------------------------- report 000's noise
def test_fixed_sigma_noise_has_that_std_whatever_the_loudness():
    torch.manual_seed(0)
    quiet = 0.01 * torch.sin(torch.linspace(0, 2000, 32000)).repeat(4, 1)
    loud = 50 * quiet
    aug = AddWhiteNoise(sigma=0.005, p=1.0)
    for x in (quiet, loud):
        added = aug(x) - x
        assert added.std(dim=-1).tolist() == pytest.approx([0.005] * 4, rel=0.03)
        assert added.mean().abs() < 1e-3
    # last_snr_db holds the realised SNR: the loud clips' is 20·log10(50) ≈ 34 dB higher.
    aug(quiet)
    quiet_snr = aug.last_snr_db.clone()
    aug(loud)
    assert (aug.last_snr_db - quiet_snr).mean().item() == pytest.approx(20 * math.log10(50), abs=0.3)


def test_fixed_sigma_noise_probability_and_silence():
    torch.manual_seed(1)
    x = torch.zeros(400, 100)
    out = AddWhiteNoise(sigma=0.1, p=0.5)(x)
    noisy = (out != 0).any(dim=-1).float().mean().item()
    assert 0.4 < noisy < 0.6  # about half the items, silent ones included (the noise is absolute)
    assert torch.equal(AddWhiteNoise(sigma=0.1, p=0.0)(x), x)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"noise_snr_db": [15, 30], "noise_sigma": 0.005, "noise_p": 0.5},
         r"augment\.wave\.noise_snr_db=\[15, 30\] and augment\.wave\.noise_sigma=0\.005 are alternatives"),
        ({"noise_sigma": 0.0, "noise_p": 0.5}, r"augment\.wave\.noise_sigma=0\.0 must be a finite noise std > 0"),
        ({"noise_sigma": float("inf"), "noise_p": 0.5}, r"augment\.wave\.noise_sigma=inf"),
        ({"noise_sigma": -0.1, "noise_p": 0.0}, r"augment\.wave\.noise_sigma=-0\.1"),  # checked even when off
    ],
)
def test_bad_noise_sigma_settings_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_wave_augment(16000, **kwargs)


def test_wave_chain_uses_sigma_noise_and_default_snr_noise_is_unchanged():
    chain = build_wave_augment(16000, noise_sigma=0.005, noise_p=1.0)
    assert len(chain) == 1 and chain.stages[0].sigma == 0.005
    assert len(build_wave_augment(16000, noise_sigma=0.005, noise_p=0.0)) == 0
    assert AddWhiteNoise().snr_db == (15.0, 30.0) and AddWhiteNoise().sigma is None


# ----------------------------------------------------------------------------- model = network, recipe = experiment
@pytest.mark.parametrize("path", sorted((REPO / "ser_lightning" / "conf" / "model").glob("*.yaml")), ids=lambda p: p.stem)
def test_model_configs_hold_network_settings_only(path):
    """``conf/model/<name>.yaml`` is the network's settings (package ``model``): no ``@package _global_``, no
    optimiser, trainer, data, loss or refit keys; besides the network it extends (a deprecated alias), the only
    thing it may name is its recipe in ``conf/experiment/``."""
    text = path.read_text()
    assert "@package _global_" not in text, f"{path.name}: a recipe belongs in conf/experiment/"
    own = OmegaConf.to_container(OmegaConf.load(path))
    for entry in own.pop("defaults", []):
        if isinstance(entry, str):
            assert entry == "_self_" or (path.parent / f"{entry}.yaml").is_file(), (path.name, entry)
            continue
        assert list(entry) == ["/experiment"], (path.name, entry)
        assert (REPO / "ser_lightning" / "conf" / "experiment" / f"{entry['/experiment']}.yaml").is_file()
    assert not {"optim", "trainer", "data", "loss", "refit", "augment", "model"} & set(own), path.name
    assert own.get("name"), f"{path.name}: no model.name"


def test_the_default_is_whisper_tiny_with_its_probe_recipe():
    """``make train`` (no arguments), ``model=whisper_tiny`` and ``experiment=whisper_tiny_probe`` are one run: the
    frozen Whisper tiny.en encoder, whole clips, L-BFGS linear probe, class-weighted loss, refit; a recipe named on
    the command line wins over the model's own."""
    default = OmegaConf.to_container(_compose())
    assert default == OmegaConf.to_container(_compose("model=whisper_tiny"))
    assert default == OmegaConf.to_container(_compose("experiment=whisper_tiny_probe"))
    cfg = _compose()
    assert (cfg.model.name, cfg.optim.name, cfg.data.clip_length, cfg.loss.class_weights, cfg.refit) == (
        "whisper_tiny", "lbfgs", "whole", "balanced", True)
    assert cfg.augment.wave.noise_p == 0.0  # frozen + no waveform augmentation: the pooled states are cached
    cfg = _compose("model=whisper_tiny", "experiment=report003")  # the experiment's recipe wins, the named model stays
    assert (cfg.model.name, cfg.optim.scheduler, cfg.data.sample_rate) == ("whisper_tiny", "onecycle_half", 24414)
    cfg = _compose("model=homebrew_cnn")  # a network with no recipe of its own: conf/train.yaml's defaults
    assert (cfg.optim.name, cfg.data.get("clip_length", "fixed"), cfg.refit) == ("adamw", "fixed", False)
