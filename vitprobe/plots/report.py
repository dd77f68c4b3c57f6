"""Self-contained HTML pages: a run's report and a comparison of runs (figures inline as SVG)."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from vitprobe.plots.style import protocol_caption

if TYPE_CHECKING:
    from vitprobe.results import Result, Run

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;border-bottom:1px solid #ddd;margin-top:2em}
figure{margin:0.5em 0}figure img{max-width:100%}figcaption{font-size:0.85em;color:#444}
table{border-collapse:collapse;font-size:0.8em}td,th{border:1px solid #ddd;padding:2px 6px}
pre{font-size:0.75em;background:#f6f6f6;padding:0.5em;overflow:auto}
dl{font-size:0.85em}dt{font-weight:bold}
"""


def _page(title: str, body: list[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _figure(name: str, svg: str, caption: str) -> str:
    """A figure embedded as a base64 SVG image (keeps element ids of figures apart)."""
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return (
        f'<figure id="figure-{html.escape(name)}"><img alt="{html.escape(name)} figure" '
        f'src="data:image/svg+xml;base64,{data}">'
        f"<figcaption>Figure <a href=\"{html.escape(name)}.svg\">{html.escape(name)}</a>: "
        f"{html.escape(caption)}</figcaption></figure>"
    )


def frame_html(table: pd.DataFrame, **options: Any) -> str:
    """``table`` as HTML (``options`` go to ``to_html``), floats to 4 significant digits, ``-``
    where there is no such number, as the command line's summary prints it (pandas' ``na_rep``
    passes over the NA of nullable integer and object columns, such as ``head`` where a metric
    is per layer)."""
    shown = table.copy()
    for column in shown.columns:
        if not pd.api.types.is_float_dtype(shown[column].dtype):
            shown[column] = shown[column].astype(object).where(shown[column].notna(), "-")
    return shown.to_html(index=False, na_rep="-", float_format="{:.4g}".format, **options)


def _table(result: "Result") -> str:
    """The result's table, folded under its name, row count and units."""
    return (
        f"<details><summary>table {html.escape(result.name)}.csv ({len(result.table)} rows"
        + (f"; values: {html.escape(str(result.protocol['value_units']))}" if result.protocol.get("value_units") else "")
        + ")</summary>"
        + frame_html(result.table, border=0)
        + "</details>"
    )


def _protocol(protocol: Mapping) -> str:
    from vitprobe.json_safe import jsonable

    text = json.dumps(jsonable(protocol), indent=1, sort_keys=True)
    return f"<details><summary>protocol</summary><pre>{html.escape(text)}</pre></details>"


def _checkpoint(label: str, checkpoint: Mapping, analysis_warnings: Sequence[str] = ()) -> str:
    """A checkpoint's path, format, hash and architecture, each collapse its training warned
    of (vitprobe's own checkpoints record them), and each warning its analyses gave."""
    from vitprobe.models.loading import training_summary, training_warnings

    fields = [(k, checkpoint[k]) for k in ("path", "format", "sha256") if k in checkpoint]
    arch = checkpoint.get("arch")
    if isinstance(arch, Mapping):
        fields.append(("arch", ", ".join(f"{k}={v}" for k, v in arch.items())))
    elif arch:
        fields.append(("arch", arch))
    report = checkpoint.get("report")
    if isinstance(report, Mapping) and "training" in report:
        fields.append(("trained", training_summary(report["training"])))
    fields += [("training warned", w) for w in training_warnings(report if isinstance(report, Mapping) else {})]
    fields += [("analysis warned", w) for w in analysis_warnings]
    items = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in fields)
    return f"<h3>{html.escape(label)}</h3><dl>{items}</dl>"


def run_report(run: "Run", svgs: Mapping[str, str]) -> str:
    """The report of one run: checkpoint, then per analysis its figure, table and protocol."""
    body = [_checkpoint(run.label, run.checkpoint, run.meta.get("analysis_warnings", []))]
    for name, result in run.items():
        body += [
            f'<section id="{html.escape(name)}"><h2>{html.escape(name)}</h2>',
            _figure(name, svgs[name], protocol_caption([result.protocol])),
            _table(result),
            _protocol(result.protocol),
            "</section>",
        ]
    return _page(f"vitprobe report: {run.label}", body)


def compare_report(runs: Sequence["Run"], labels: Sequence[str], names: Sequence[str],
                   svgs: Mapping[str, str], links: Mapping[str, str] | None = None,
                   warned: Sequence[str] = ()) -> str:
    """A report of several runs (titled a comparison; of one run, a report): what comparing
    them warned of (``warned``: different data or settings), their checkpoints, then per
    analysis the overlaid figure and each run's table. ``links`` maps a run label to its own
    report page, if there is one."""
    body = ([f"<h2>comparison warned</h2><ul>{''.join(f'<li>{html.escape(w)}</li>' for w in warned)}</ul>"]
            if warned else [])
    body.append("<h2>checkpoints</h2>")
    for label, run in zip(labels, runs):
        body.append(_checkpoint(label, run.checkpoint, run.meta.get("analysis_warnings", [])))
        if links and label in links:
            body.append(f'<p><a href="{html.escape(links[label])}">report of {html.escape(label)}</a></p>')
    for name in names:
        present = [(label, run[name]) for label, run in zip(labels, runs) if name in run]
        body.append(f'<section id="{html.escape(name)}"><h2>{html.escape(name)}</h2>')
        body.append(_figure(name, svgs[name], protocol_caption([r.protocol for _, r in present],
                                                               labels=[label for label, _ in present])))
        for label, result in present:
            body.append(f"<h4>{html.escape(label)}</h4>" + _table(result) + _protocol(result.protocol))
        body.append("</section>")
    kind = "comparison" if len(labels) > 1 else "report"  # analyze of one checkpoint compares nothing
    return _page(f"vitprobe {kind}: " + ", ".join(labels), body)
