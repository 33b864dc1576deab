"""The provenance footer: commit, profile, parameters and the device as the computation used it."""

import torch

from paramspace.provenance import Provenance, device_description


def test_cpu_description_reports_the_threads_the_report_asked_for():
    assert device_description("cpu", 1).endswith(", 1 torch threads")
    assert device_description("cpu", 0).endswith(f", {torch.get_num_threads()} torch threads")


def test_footer_lists_profile_parameters_and_device():
    p = Provenance("toy", {"profile": "smoke", "device": "cpu", "cpu_threads": 1, "epochs": 3})
    md = p.markdown()
    assert "| profile | `smoke` |" in md and "`epochs` = `3`" in md and "1 torch threads" in md
    assert "git commit" in md and p.record()["parameters"]["epochs"] == 3
