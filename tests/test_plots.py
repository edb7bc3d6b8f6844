import matplotlib

matplotlib.use("Agg")
import pytest
import torch

from course_lib.plots import plot_losses, show_images, show_reconstructions
from course_lib.train import History


def test_show_images_grey_and_rgb():
    fig = show_images(torch.rand(7, 1, 28, 28), titles=[str(i) for i in range(7)], ncols=4)
    assert len(fig.axes) == 8  # 2 rows x 4 columns, the last one blank
    fig = show_images(torch.rand(3, 3, 24, 24))
    assert fig.axes[0].images[0].get_array().shape == (24, 24, 3)


def test_show_reconstructions_rows():
    x = torch.rand(5, 1, 28, 28)
    fig = show_reconstructions(x, {"pca": x, "ae": x}, n=5)
    assert len(fig.axes) == 15


def test_plot_losses_accepts_lists_and_histories():
    fig = plot_losses({"a": [3.0, 2.0, 1.0] * 20, "b": History(loss=[1.0] * 50)}, smooth=5)
    assert len(fig.axes[0].lines) == 2


def test_bad_images_are_reported():
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1 or 3, H, W\); got shape \(2, 2, 5, 5\)"):
        show_images(torch.rand(2, 2, 5, 5))
    with pytest.raises(ValueError, match=r"images must have 4 dimensions; got shape \(5, 5\)"):
        show_images(torch.rand(5, 5))
