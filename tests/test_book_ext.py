"""book/_ext/per_page_numbers.py: figure and table numbers restart at 1 on every page."""

import importlib.util

from paramspace.data import project_root

_spec = importlib.util.spec_from_file_location("per_page_numbers",
                                               project_root() / "book" / "_ext" / "per_page_numbers.py")
ppn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ppn)


def test_numbers_restart_on_every_page_in_document_order():
    # Sphinx's shared counter over an unnumbered toctree: intro, then report 1, then report 5
    shared = {"intro": {"table": {"tab-scorecard-profiles": (1,)}},
              "reports/metric_analysis": {"figure": {"fig-r1-b": (2,), "fig-r1-a": (1,)},
                                          "table": {"tab-r1-claims": (2,)}},
              "reports/parameter_relevance": {"figure": {"fig-r5-x": (3,), "fig-r5-y": (5,), "fig-r5-z": (4,)},
                                              "table": {"tab-r5-auc": (3,), "tab-r5-claims": (4,)}}}
    out = ppn.per_page(shared)
    assert out["intro"] == {"table": {"tab-scorecard-profiles": (1,)}}
    assert out["reports/metric_analysis"] == {"figure": {"fig-r1-a": (1,), "fig-r1-b": (2,)},
                                              "table": {"tab-r1-claims": (1,)}}
    assert out["reports/parameter_relevance"] == {"figure": {"fig-r5-x": (1,), "fig-r5-z": (2,), "fig-r5-y": (3,)},
                                                  "table": {"tab-r5-auc": (1,), "tab-r5-claims": (2,)}}


def test_a_section_number_prefix_is_kept_and_counted_apart():
    shared = {"ch": {"figure": {"a": (2, 1, 4), "b": (2, 1, 5), "c": (2, 2, 6)}}}
    assert ppn.per_page(shared) == {"ch": {"figure": {"a": (2, 1, 1), "b": (2, 1, 2), "c": (2, 2, 1)}}}


def test_config_registers_the_extension():
    import yaml

    conf = yaml.safe_load((project_root() / "book" / "_config.yml").read_text())["sphinx"]
    assert conf["local_extensions"]["per_page_numbers"] == "_ext"
    assert "per_page_numbers" in conf["config"]["extensions"] and conf["config"]["numfig"] is True
