"""The reward model's accuracy per selection strategy, each label judged prospectively."""

from __future__ import annotations

from research.analytics.selection import (
    LabelOnComparison,
    StoredScores,
    prospective_accuracy,
)


def test_each_label_is_judged_by_the_newest_model_trained_before_it():
    labels = [
        LabelOnComparison(label_id=10, comparison_id=1, choice=0, selection="uniform"),
        LabelOnComparison(label_id=20, comparison_id=2, choice=2, selection="uniform"),
        LabelOnComparison(label_id=30, comparison_id=3, choice=1, selection="uncertainty"),
        LabelOnComparison(label_id=40, comparison_id=4, choice=0, selection="uniform"),
    ]
    scores = {
        # v1 (trained on labels up to 5) got it right; v2 trained on label 10: never judges it.
        1: [StoredScores(1, 5, [2.0, 0.0, 1.0]), StoredScores(2, 10, [0.0, 3.0, 1.0])],
        # v1 wrong, v2 (up to 15, newer) right: v2 judges it.
        2: [StoredScores(1, 5, [2.0, 0.0, 1.0]), StoredScores(2, 15, [0.0, 1.0, 3.0])],
        # a tie: the first top score is the model's choice (index 0, the labeler chose 1).
        3: [StoredScores(2, 15, [1.0, 1.0, 0.0])],
        # comparison 4: never scored.
    }
    report = prospective_accuracy(labels, scores)
    uniform, uncertain = report["uniform"], report["uncertainty"]
    assert (uniform.labels, uniform.scored, uniform.correct) == (3, 2, 2)
    assert uniform.accuracy == 1.0
    assert (uncertain.labels, uncertain.scored, uncertain.correct) == (1, 1, 0)
    assert uncertain.accuracy == 0.0


def test_no_scored_labels_have_no_accuracy():
    labels = [LabelOnComparison(label_id=1, comparison_id=1, choice=3, selection="uniform")]
    report = prospective_accuracy(labels, {1: [StoredScores(1, 0, [1.0, 2.0])]})  # K mismatch
    assert report["uniform"].scored == 0 and report["uniform"].accuracy is None
    assert prospective_accuracy([], {}) == {}
