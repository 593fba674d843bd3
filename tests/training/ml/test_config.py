import pytest

from training.ml.config import TrainingConfig
from training.ml.presets import PRESETS, preset


@pytest.mark.parametrize("name", PRESETS)
def test_presets_validate_and_round_trip(name):
    config = preset(name)
    config.validate()
    assert TrainingConfig.from_dict(config.to_dict()) == config


def test_from_dict_defaults_and_overrides():
    config = TrainingConfig.from_dict({"ppo": {"batch_size": 64, "minibatch_size": 16}})
    assert config.ppo.batch_size == 64 and config.ppo.init_kl_coef == 0.15
    assert config.sampling.temperature == 0.7
    base = TrainingConfig.from_dict({"sampling": {"temperature": 1}}, base="cpu-tiny")
    assert base.sampling.temperature == 1.0 and isinstance(base.sampling.temperature, float)
    assert base.ppo.batch_size == preset("cpu-tiny").ppo.batch_size


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ppo": {"bogus": 1}}, "ppo.bogus: unknown key"),
        ({"nope": {}}, "nope: unknown key"),
        ({"sampling": {"temperature": 0}}, "sampling.temperature: must be > 0"),
        ({"sampling": {"temperature": "hot"}}, "sampling.temperature: expected"),
        ({"ppo": {"batch_size": True}}, "ppo.batch_size: expected"),
        ({"ppo": {"batch_size": 10, "minibatch_size": 4}}, "ppo.batch_size: must be a multiple"),
        ({"reward": {"holdout_fraction": 1.5}}, "reward.holdout_fraction"),
        ({"sampling": []}, "sampling: expected an object"),
        ({"sampling": {"truncate_token": None, "truncate_after": 99}}, "truncate_after"),
    ],
)
def test_from_dict_rejects_bad_input(data, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.", 1)):
        TrainingConfig.from_dict(data)


def test_config_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, training.ml, training.ml.config; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("name", ["cpu-summarization", "paper-summarization"])
def test_summarization_presets_have_a_fixed_beta(name):
    config = preset(name)
    # The paper's summaries end at a newline; the CPU preset's after one sentence.
    assert config.sampling.truncate_token == ("\n" if name.startswith("paper") else ".")
    assert config.ppo.adaptive_kl is False and 0.01 <= config.ppo.init_kl_coef <= 0.03
    assert config.sampling.response_length > config.sampling.truncate_after


def test_the_paper_summarization_preset_is_the_papers():
    sampling = preset("paper-summarization").sampling
    assert (sampling.response_length, sampling.truncate_after) == (75, 55)
    # The CPU preset keeps cpu-small's reward model and PPO sizes.
    small, summary = preset("cpu-small"), preset("cpu-summarization")
    assert summary.reward == small.reward and summary.ppo.batch_size == small.ppo.batch_size
