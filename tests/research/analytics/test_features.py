import numpy as np
import pytest

from research.analytics.features import ComparisonView, raw_features


def test_raw_features_follow_the_display_order():
    view = ComparisonView(
        prompt="the cat sat on the mat",
        samples=["the cat sat on it", "a dog", "great wonderful joy", "x y z w v"],
        display_order=[2, 0, 3, 1],  # slot 0 showed sample 2, ...
    )
    x = raw_features(view)
    assert x.shape == (4, 4)
    assert list(x[:, 0]) == [1, 3, 0, 2]  # the screen position of each sample
    assert list(x[:, 1]) == [5, 2, 3, 5]
    assert x[0, 2] == pytest.approx(2 / 3) and x[1, 2] == 0
    assert x[2, 3] > 0.5
    tokens = raw_features(ComparisonView("p", ["a", "b"], [0, 1], token_lengths=[7, 9]))
    assert np.array_equal(tokens[:, 1], [7, 9])
    with pytest.raises(ValueError):
        raw_features(ComparisonView("p", ["a", "b"], [0, 0]))
