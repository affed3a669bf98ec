"""Evaluation figures and publishing them into examples/."""
from birdseg.figures import publish_figures


def test_publish_figures_last_epoch_only_and_never_temporaries(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("history.png", "results_epoch_2.png", "results_epoch_10.png", ".tmp-1-history.png"):
        (run / name).write_bytes(b"png")
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "results_epoch_7.png").write_bytes(b"old")
    copied = publish_figures(run, tmp_path / "examples")
    assert sorted(p.name for p in copied) == ["history.png", "results_epoch_10.png"]
    assert sorted(p.name for p in (tmp_path / "examples").iterdir()) == ["history.png", "results_epoch_10.png"]
