import json

from tests.training.ml.test_reward import synthetic_labels
from training.ml.cli import main


def test_cli_reward_policy_sample(tiny_model_dir, tmp_path, capsys):
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in synthetic_labels(24)))
    queries = tmp_path / "queries.txt"
    queries.write_text('The movie was\nIt is a nice day\n{"query": "Dogs and"}\n')
    base = str(tiny_model_dir)
    tiny = ["--preset", "cpu-tiny"]
    assert (
        main(
            [
                "reward",
                "--labels",
                str(labels),
                "--base",
                base,
                "--out",
                str(tmp_path / "rm"),
                "--queries",
                str(queries),
                *tiny,
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "rm" / "reward.json").read_text())["metrics"]["labels_train"]
    assert (
        main(
            [
                "policy",
                "--base",
                base,
                "--reward",
                str(tmp_path / "rm"),
                "--queries",
                str(queries),
                "--out",
                str(tmp_path / "policy"),
                "--episodes",
                "16",
                *tiny,
            ]
        )
        == 0
    )
    capsys.readouterr()
    out = tmp_path / "samples.jsonl"
    assert (
        main(
            [
                "sample",
                "--model",
                str(tmp_path / "policy"),
                "--queries",
                str(queries),
                "-k",
                "3",
                "--out",
                str(out),
                *tiny,
            ]
        )
        == 0
    )
    samples = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["query"] for s in samples] == ["The movie was", "It is a nice day", "Dogs and"]
    assert all(len(s["response_token_ids"]) == 3 for s in samples)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"ppo": {"nope": 1}}))
    assert main(["sample", "--model", base, "--queries", str(queries), "--config", str(bad)]) == 2
    assert "ppo.nope: unknown key" in capsys.readouterr().err
