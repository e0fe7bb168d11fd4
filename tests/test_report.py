"""Run reports rendered from hand-built RunReports: no GPU, no evaluator, no store."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from kernelwright.report import Answer, NodeRow, RunReport, render_html, render_markdown, write_reports
from kernelwright.report import svg

HOSTILE_SOURCE = 'import torch\n# </script><script>alert(1)</script>\nx = "{{ x }}"\n'


def node(seq: int, status: str, speedup: float | None = None, reason: str = "", parents: list[str] | None = None) -> NodeRow:
    passed = status == "passed"
    return NodeRow(
        seq=seq,
        candidate_id=f"cand{seq:04d}abcd",
        name=f"kernel_{seq}",
        status=status,
        reason=reason or ("ok" if passed else f"{status} at step {seq}"),
        time_ms=(0.5 / speedup) if passed and speedup else None,
        speedup_eager=speedup if passed else None,
        speedup_compile=(speedup / 1.2) if passed and speedup else None,
        sol_fraction=0.42 if passed else None,
        parents=parents or [],
        intent=f"try idea {seq}",
        technique="tiling" if seq % 2 else None,
        generator="fake",
        backends=["triton"],
    )


def report(nodes: list[NodeRow], answer: Answer | None, source: str | None = None, **extra) -> RunReport:
    return RunReport(
        run_id="run-1234",
        task_name="softmax",
        task_path="tasks/softmax.py",
        strategy="greedy",
        generator="fake",
        seed=7,
        status="finished",
        stop_reason="budget",
        created_at=1_700_000_000.0,
        elapsed_s=123.4,
        environment={"device_name": "Test GPU", "torch": "2.11.0", "triton": "3.6.0", "python": "3.11.9"},
        budget={"candidates": 20, "max_tokens": None},
        nodes=nodes,
        answer=answer,
        best_source=source,
        usage={"calls": 3, "tokens": 4567, "cost": 0.0123, "latency_s": 12.5},
        **extra,
    )


@pytest.fixture
def mixed() -> RunReport:
    nodes = [
        node(0, "compile_error"),
        node(1, "passed", 0.8),
        node(2, "incorrect"),
        node(3, "passed", 1.5, parents=["cand0001abcd"]),
        node(4, "passed", 1.2, parents=["cand0003abcd"]),
        node(5, "timeout"),
        node(6, "passed", 2.25, parents=["cand0003abcd", "cand0004abcd"]),
    ]
    answer = Answer(
        kind="candidate",
        time_ms=0.2222,
        baselines_ms={"eager": 0.5, "compile": 0.41},
        candidate_id="cand0006abcd",
        note="candidate kernel_6 is the fastest verified kernel.",
    )
    return report(nodes, answer, source=HOSTILE_SOURCE, duplicates=2, generator_errors=["reply had no code"])


def svgs(html: str) -> list[ET.Element]:
    """Every inline <svg> of the page, parsed as XML (a parse error fails the test)."""
    return [ET.fromstring(chunk) for chunk in re.findall(r"<svg\b.*?</svg>", html, flags=re.S)]


def test_mixed_run_html(mixed: RunReport) -> None:
    html = render_html(mixed)
    for n in mixed.nodes:
        assert n.candidate_id in html
    charts = svgs(html)
    assert len(charts) == 1
    assert charts[0].tag == "svg" and charts[0].find("path") is not None
    assert "eager = 1.0x" in html
    assert "fastest verified kernel" in html


def test_trajectory_and_counts(mixed: RunReport) -> None:
    trajectory = mixed.trajectory()
    assert [seq for seq, _ in trajectory] == list(range(7))
    assert trajectory[0] == (0, None)
    bests = [best for _, best in trajectory if best is not None]
    assert bests == sorted(bests)
    assert bests[0] == 0.8 and bests[-1] == 2.25
    assert mixed.status_counts() == {"passed": 4, "compile_error": 1, "timeout": 1, "incorrect": 1}
    assert list(mixed.status_counts()) == ["passed", "compile_error", "timeout", "incorrect"]


def test_hostile_source_is_escaped_in_html_and_verbatim_in_markdown(mixed: RunReport) -> None:
    html = render_html(mixed)
    assert "<script>alert(1)" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "{{ x }}" in html  # shown as data, never evaluated as a template
    assert html.count("<script>") == 1  # only the report's own sorting script

    markdown = render_markdown(mixed)
    assert "```python\n" + HOSTILE_SOURCE in markdown


def test_empty_run_renders(tmp_path) -> None:
    empty = report([], None)
    empty.status, empty.stop_reason = "failed", "generator unavailable"
    assert empty.trajectory() == [] and empty.status_counts() == {}
    markdown, html = render_markdown(empty), render_html(empty)
    assert "No candidates were proposed." in markdown and "No candidates were proposed." in html
    assert "no answer" in markdown and "no answer" in html
    paths = write_reports(empty, tmp_path / "out")
    assert paths["markdown"].read_text(encoding="utf-8") == markdown
    assert paths["html"].read_text(encoding="utf-8") == html


def test_compile_answer_shows_note_and_no_source() -> None:
    note = "no candidate beat the reference; the answer is torch.compile (0.41 ms vs 0.52 ms eager)"
    answer = Answer(kind="compile", time_ms=0.41, baselines_ms={"eager": 0.52, "compile": 0.41}, note=note)
    run = report([node(0, "passed", 0.9), node(1, "runtime_error")], answer, source="def kernel(): pass\n")
    html, markdown = render_html(run), render_markdown(run)
    for text in (html, markdown):
        assert note in text
        assert "the answer is torch.compile of the reference" in text
        assert "def kernel" not in text
    assert "<pre" not in html
    assert "```python" not in markdown
    assert "1.27x" in markdown  # 0.52 ms eager / 0.41 ms


def test_html_is_self_contained(mixed: RunReport) -> None:
    html = render_html(mixed)
    assert "http://" not in html and "https://" not in html
    assert "<link" not in html and " src=" not in html


@pytest.mark.parametrize(
    "series",
    [
        [],
        [("empty", [])],
        [("one", [(3.0, 1.5)])],
        [("flat", [(0.0, 2.0), (1.0, 2.0), (2.0, 2.0)])],
        [("a & <b>", [(0.0, 0.0), (10.0, 3.0)]), ("c", [(5.0, 1.0)])],
    ],
)
@pytest.mark.parametrize("step", [False, True])
def test_line_chart_edge_cases(series, step: bool) -> None:
    chart = svg.line_chart(series, x_label="x <seq>", y_label="y & co", step=step, reference_line=("ref", 1.0))
    root = ET.fromstring(chart)
    assert root.tag == "svg"
    assert "nan" not in chart.lower() and "inf" not in chart.lower()  # no division by a zero span


@pytest.mark.parametrize(
    "bars",
    [[], [("only", 2.0)], [("same", 1.0), ("same too", 1.0)], [("neg", -0.5), ("a very long label indeed", 3.0)]],
)
def test_bar_chart_edge_cases(bars) -> None:
    root = ET.fromstring(svg.bar_chart(bars, y_label="speedup", reference_line=("eager = 1.0x", 1.0)))
    assert root.tag == "svg"


def test_nice_ticks_are_round_and_enclose_the_data() -> None:
    ticks = svg.nice_ticks(0.13, 2.7)
    assert ticks[0] <= 0.13 and ticks[-1] >= 2.7
    assert 3 <= len(ticks) <= 7
    assert svg.nice_ticks(5.0, 5.0)[0] < 5.0 < svg.nice_ticks(5.0, 5.0)[-1]


def test_markdown_table_has_a_row_per_node_and_escapes_pipes() -> None:
    nodes = [
        node(0, "runtime_error", reason="shape a|b does not match\nsecond line"),
        node(1, "passed", 1.1),
        node(2, "static_rejected", reason="x" * 400),
    ]
    markdown = render_markdown(report(nodes, None))
    table = markdown.split("## Candidates", 1)[1].split("## Source", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "cand" in line]
    assert len(rows) == len(nodes)
    assert "shape a\\|b does not match second line" in rows[0]
    assert "…" in rows[2] and "x" * 200 not in rows[2]
    header = next(line for line in table.splitlines() if line.startswith("| seq"))
    # Escaped pipes do not split cells: every row has as many columns as the header.
    assert all(len(re.split(r"(?<!\\)\|", row)) == len(header.split("|")) for row in rows)


def test_formatting() -> None:
    from kernelwright.report.run import format_ms, format_percent, format_speedup

    assert format_ms(0.012345) == "0.01235"
    assert format_ms(1.23456) == "1.235"
    assert format_ms(1234.6) == "1235"
    assert format_ms(None) == "-"
    assert format_speedup(1.234) == "1.23x" and format_speedup(None) == "-"
    assert format_percent(0.4567) == "45.7%" and format_percent(None) == "-"


def test_unfinished_run_shows_the_best_source_so_far_and_unknown_statuses() -> None:
    nodes = [node(0, "passed", 1.3), node(1, "not evaluated", reason="the run stopped first")]
    run = report(nodes, None, source="def kernel(): return 1\n")
    run.status = "interrupted"
    assert run.status_counts() == {"passed": 1, "not evaluated": 1}
    markdown, html = render_markdown(run), render_html(run)
    assert "no answer yet" in markdown and "no answer yet" in html
    assert "```python\ndef kernel(): return 1\n```" in markdown
    assert "<pre" in html and "def kernel(): return 1" in html
