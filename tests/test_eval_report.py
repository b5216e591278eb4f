"""report.md's sentence on the held-out loss says which way the temporal layers moved it."""

from sdvideo.eval.report import loss_verdict

BUCKETS = [[0, 500], [500, 1000]]


def test_loss_verdict_lower_everywhere():
    text = loss_verdict({"buckets": BUCKETS, "video": [0.08, 0.02], "independent": [0.10, 0.03],
                         "video/mean": 0.05, "independent/mean": 0.065})
    assert text.startswith("Temporal layers lower the mean held-out loss by 0.0150 (23.1% ")
    assert text.endswith("lower in every timestep bucket.")


def test_loss_verdict_raise_names_the_buckets_where_it_is_lower():
    # the H100 experiment's pattern: worse at low noise, better at high noise
    text = loss_verdict({"buckets": BUCKETS, "video": [0.19, 0.01], "independent": [0.09, 0.02],
                         "video/mean": 0.10, "independent/mean": 0.055})
    assert text.startswith("Temporal layers raise the mean held-out loss by 0.0450 (81.8% ")
    assert text.endswith("lower only at timesteps 500-1000.")
    text = loss_verdict({"buckets": BUCKETS, "video": [0.2, 0.1], "independent": [0.1, 0.05],
                         "video/mean": 0.15, "independent/mean": 0.075})
    assert text.endswith("higher in every timestep bucket.")
