"""Reports: a run's results laid out as Markdown and as self-contained HTML."""

from kernelwright.report.run import Answer, NodeRow, RunReport, render_html, render_markdown, write_reports

__all__ = ["Answer", "NodeRow", "RunReport", "render_html", "render_markdown", "write_reports"]
