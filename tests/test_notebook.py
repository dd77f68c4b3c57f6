"""The quick-start notebook runs top to bottom in a real Jupyter kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "analyses" / "quickstart.ipynb"


def _save_tiny(path: Path, seed: int) -> None:
    import torch

    from vitprobe.models.architecture import ArchSpec, build_model
    from vitprobe.models.own_format import save_encoder

    arch = ArchSpec(patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=32)
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_encoder(path, build_model(arch), arch, {"objective": "random_init"})


def _execute(tmp_path: Path, kernel_dir: Path, checkpoint_a: str | None):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # A smaller data set than the default; everything else is the notebook as shipped.
    first = notebook.cells[1].source.replace("synthetic:128", "synthetic:24")
    if checkpoint_a is not None:
        first = first.replace("CHECKPOINT_A = None", f"CHECKPOINT_A = {checkpoint_a!r}")
    notebook.cells[1].source = first
    kernel_dir.mkdir(parents=True, exist_ok=True)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(kernel_dir)}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    stderr = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stderr")
    # No warning: neither tqdm's "IProgress not found" (ipywidgets is not installed here) nor
    # one that compares models of other depths or patch sizes as if settings differed.
    assert "IProgress not found" not in stderr and "Warning" not in stderr, stderr
    # Tables render as DataFrames (HTML) and figures as images, inline.
    assert any("text/html" in o.get("data", {}) for o in outputs)
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3
    # The summary shows each row's protocol whole (pandas cuts cells at 50 characters by default).
    summary = "".join(o.get("data", {}).get("text/html", "") for o in notebook.cells[-1].outputs)
    assert "mean over 2 heads (no std over images; se: the mean of the heads' se)" in summary, summary
    return "".join(o.get("data", {}).get("text/plain", "") for o in notebook.cells[2].outputs)


@pytest.mark.slow
def test_quickstart_notebook_executes_with_one_checkpoint_of_ones_own(tmp_path: Path) -> None:
    """Only CHECKPOINT_A given: B becomes an untrained stand-in."""
    mine = tmp_path / "mine.safetensors"
    _save_tiny(mine, 0)
    chosen = _execute(tmp_path, tmp_path, str(mine))
    assert "mine.safetensors" in chosen and "stand_in_1.safetensors" in chosen


@pytest.mark.slow
def test_quickstart_notebook_finds_the_quick_checkpoints_from_analyses(tmp_path: Path) -> None:
    """Started in analyses/ (where Jupyter opens the notebook), the checkpoints that
    `reproduce --quick` wrote one folder up are found."""
    models = tmp_path / "vitprobe-out" / "reproduce" / "cl_vs_mim" / "models"
    for seed, name in enumerate(("mocov3", "simmim")):
        _save_tiny(models / name / "final.safetensors", seed)
    chosen = _execute(tmp_path, tmp_path / "analyses", None)
    assert "cl_vs_mim/models/mocov3/final.safetensors" in chosen
    assert "cl_vs_mim/models/simmim/final.safetensors" in chosen
