"""The provenance footer: commit, profile, parameters and the device as the computation used it."""

import torch

from paramspace.provenance import Provenance, device_description


def test_cpu_description_reports_the_threads_the_report_asked_for():
    assert device_description("cpu", 1).endswith(", 1 torch threads")
    assert device_description("cpu", 0).endswith(f", {torch.get_num_threads()} torch threads")


def test_footer_lists_profile_parameters_and_device():
    from paramspace.reports import resolve

    params = resolve("importance_dropconnect", "smoke")  # a real report: the footer's input key needs one
    assert (params["device"], params["cpu_threads"], params["epochs"]) == ("cpu", 1, 3)
    p = Provenance("importance_dropconnect", params)
    md = p.markdown()
    assert "| profile | `smoke` |" in md and "`epochs` = `3`" in md and "1 torch threads" in md
    assert "git commit" in md and p.record()["parameters"]["epochs"] == 3


def test_footer_gives_the_input_key_the_rerun_command_and_the_source(monkeypatch, tmp_path):
    from paramspace import runner
    from paramspace.reports import resolve

    params = resolve("parameter_relevance", "smoke", {"n_seeds": 3})
    p = Provenance("parameter_relevance", params)
    md = p.markdown()
    assert f"| runner input key | `{runner.input_key('parameter_relevance', params)}` |" in md
    assert '| rerun this page | `make report NAME=parameter_relevance PROFILE=smoke SET="n_seeds=3"` |' in md
    assert "{download}`parameter_relevance.py`" in md
    # show() places the jupytext source beside the executed notebook, where the download link points
    monkeypatch.setenv("PARAMSPACE_OUTPUT_DIR", str(tmp_path))
    p.show()
    from paramspace.data import project_root

    assert (tmp_path / "parameter_relevance.py").read_bytes() == \
        (project_root() / "notebooks" / "parameter_relevance.py").read_bytes()
