"""End to end: `vitprobe analyze` / `compare` / `analyses` and `vitprobe.analyze` on tiny ViTs."""

from __future__ import annotations

import json
import re
import warnings

import pandas as pd
import pytest
import timm
import torch
from torch.utils.data import DataLoader, Dataset

from vitprobe.analysis import ShardSampler, analyze, prepare_analysis, run_analysis
from vitprobe.analyzers import list_analyzers
from vitprobe.cli import main
from vitprobe.errors import CheckpointError, ConfigError, DataError, OutputExistsError
from vitprobe.models import ArchSpec
from vitprobe.models.own_format import save_encoder


def tiny_vit(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=0).eval()


class DictImages(Dataset):
    """Random images as vitprobe item dicts, with or without labels."""

    def __init__(self, n: int = 10, labels: bool = True, size: int = 32) -> None:
        generator = torch.Generator().manual_seed(1)
        self.images = torch.randn(n, 3, size, size, generator=generator)
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        item = {"image": self.images[index], "index": index}
        if self.labels:
            item["labels"] = {"parity": index % 2}
        return item


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """tiny_vit in vitprobe's own format, which records its 2 heads (a bare state dict of
    width 32 says nothing of them, and would load with the guess width // 64 = 1)."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_encoder(path, tiny_vit(), ArchSpec(patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=32), {})
    return str(path)


@pytest.fixture(scope="module")
def two_runs(checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    codes = [main(["analyze", "--checkpoint", checkpoint, "--data", "synthetic:24", "--analyses", "all",
                   "--out", str(root / name), "--batch-size", "8", "--no-progress"]) for name in ("a", "b")]
    return root, codes


@pytest.mark.slow
def test_analyze_writes_every_file_and_a_report_naming_every_figure(two_runs, capsys):
    root, codes = two_runs
    assert codes == [0, 0]
    run_dir = root / "a" / "tiny"
    names = list_analyzers()
    for name in names:
        for ext in ("csv", "json", "png", "svg"):
            assert (run_dir / f"{name}.{ext}").stat().st_size > 0, (name, ext)
        assert (root / "a" / f"{name}.png").is_file()
    assert (run_dir / "attention_jaccard.npz").is_file()
    for report in (run_dir / "report.html", root / "a" / "report.html"):
        html = report.read_text(encoding="utf-8")
        for name in names:
            assert f'id="figure-{name}"' in html, (report, name)
    assert "tiny/report.html" in (root / "a" / "report.html").read_text(encoding="utf-8")
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_same_inputs_give_byte_identical_tables(two_runs):
    root, _ = two_runs
    for name in list_analyzers():
        assert (root / "a" / "tiny" / f"{name}.csv").read_bytes() == (root / "b" / "tiny" / f"{name}.csv").read_bytes()


@pytest.mark.slow
def test_compare_two_runs(two_runs, tmp_path, capsys):
    root, _ = two_runs
    assert main(["compare", str(root / "a" / "tiny"), str(root / "b"), "--out", str(tmp_path / "c")]) == 0
    stacked = pd.read_csv(tmp_path / "c" / "fourier.csv")
    assert set(stacked["run"]) == {"tiny (a)", "tiny (b)"}  # one label, told apart by the folder that differs
    html = (tmp_path / "c" / "report.html").read_text(encoding="utf-8")
    assert all(f'id="figure-{name}"' in html for name in list_analyzers())
    assert "attention_distance.csv (" in html and "rows; values: pixels)</summary>" in html  # units by each table
    assert f"compared tiny (a), tiny (b): {tmp_path / 'c'}/report.html" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--analyses", "attention_distance,telepathy"], "unknown analysis 'telepathy'; choose from"),
        (["--analyses", "telepathy"], "(one of your own: import its module first, or --plugin FILE.py on the command line)"),
        (["--analyses", "knn,fourier,"], "analyses 'knn,fourier,' has an empty name between commas; separate"),
        (["--analyses", "all,knn"], "analyses all, knn: 'all' runs every analysis and stands alone; give 'all', or"),
        (["--data", "synthetc:4"], "dataset spec 'synthetc:4'"),
        (["--data", "digits", "--analyses", "attention_jaccard"], "needs foreground masks"),
        (["--seed", "-1"], "--seed (Python: seed=) must be a whole number in [0, 2**63), got -1"),
        (["--img-size", "8"], "--img-size 8: vitprobe's datasets are read at 16 px or more; choose --img-size 16"),
    ],
)
def test_user_mistakes_fail_in_one_line_before_any_work(checkpoint, tmp_path, capsys, argv, message):
    data = [] if "--data" in argv else ["--data", "synthetic:4"]  # an option is given once
    base = ["analyze", "--checkpoint", checkpoint, *data, "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(base + argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "o").exists() and list(tmp_path.iterdir()) == []


def test_a_folder_without_class_folders_is_told_how_to_label_it(checkpoint, tmp_path, capsys):
    from PIL import Image

    for i in range(4):
        Image.new("RGB", (32, 32), (40 * i, 0, 0)).save(tmp_path / f"{i}.png")
    argv = ["analyze", "--checkpoint", checkpoint, "--data", f"folder:{tmp_path}", "--analyses", "knn",
            "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert f"analysis 'knn' needs labels, which folder:{tmp_path} lacks; put its images into one sub-folder " \
           "per class, or use a labelled dataset" in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_a_misspelt_option_is_named_by_its_command_with_the_closest_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", "--checkpoint", "x.pth", "--data", "synthetic:4", "--bach-size", "3"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: vitprobe analyze")
    assert "unrecognized arguments: --bach-size 3 (did you mean --batch-size?)" in err
    with pytest.raises(SystemExit):  # the --option=value form is matched by its option alone
        main(["analyze", "--checkpoint", "x.pth", "--data", "synthetic:4", "--lable=dino-vitb16-teacher"])
    assert "unrecognized arguments: --lable=dino-vitb16-teacher (did you mean --label?)" in capsys.readouterr().err


def test_a_vitprobe_warning_is_printed_once_per_command(capsys):
    from vitprobe.cli import _warning_printer
    from vitprobe.errors import VitprobeWarning

    show = _warning_printer()
    for _ in range(2):
        show(VitprobeWarning("only 6 held-out images"), VitprobeWarning, "x.py", 1)
    show(VitprobeWarning("another text"), VitprobeWarning, "x.py", 1)
    assert capsys.readouterr().err == ("vitprobe: warning: only 6 held-out images\n"
                                       "vitprobe: warning: another text\n")


def test_existing_output_is_refused_before_loading(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "x").write_text("keep")
    argv = ["analyze", "--checkpoint", str(tmp_path / "missing.pth"), "--data", "synthetic:4", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_overwriting_one_run_of_an_analysis_output_is_refused_before_loading(checkpoint, tmp_path, capsys):
    """analyze --out writes a folder of runs: written over one run of an earlier output, it would
    nest a run inside it and leave that output without the run (compare could no longer read it)."""
    argv = ["analyze", "--checkpoint", checkpoint, "--data", "synthetic:8", "--analyses", "fourier",
            "--batch-size", "8", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 0
    [run] = [p for p in (tmp_path / "o").iterdir() if (p / "run.json").is_file()]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    capsys.readouterr()
    assert main(["analyze", "--checkpoint", str(tmp_path / "missing.pth"), "--data", "synthetic:8",
                 "--out", str(run), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{run}: is one run of the analysis output {run.parent}" in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert main([*argv, "--out", str(tmp_path / "o"), "--overwrite"]) == 0  # the whole output may be replaced


def test_analyses_lists_needs_and_parameters(capsys):
    assert main(["analyses"]) == 0
    out = capsys.readouterr().out
    for name in list_analyzers():
        assert f"\n{name}\n" in f"\n{out}"
    assert "needs: masks" in out and "keep_mass = 0.6 (finite number)" in out
    knn = out.split("\nknn\n", 1)[1].split("\nlinear_probe\n", 1)[0]
    assert "  needs: labels\n" in knn and "final_norm = false (true|false)" in knn and 'pooling = "cls"' in knn
    assert "layers = null (block numbers" in knn and "; 0 is the patch embedding)" in knn
    assert "; from 1, the first block)" in out.split("\nattention_nmi\n", 1)[1].split("\nfourier\n", 1)[0]
    from vitprobe.analyzers import analyzer_class, describe_analyzer

    class Documented(analyzer_class("knn")):
        """Its ``first`` paragraph,
        over two lines.

        A second paragraph, for the reader of the code."""

    about = describe_analyzer(Documented)
    assert about["about"] == "Its first paragraph, over two lines." and about["needs"] == ["labels"]
    assert describe_analyzer("knn") == describe_analyzer(analyzer_class("knn"))  # by name, from Python


def test_analyses_json_lists_each_analysis_with_its_parameters_defaults_and_metrics(capsys):
    import inspect
    import json

    from vitprobe.analyzers import analyzer_class

    assert main(["analyses", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [a["name"] for a in listing] == list_analyzers()
    for entry in listing:
        cls = analyzer_class(entry["name"])
        signature = inspect.signature(cls.__init__).parameters
        assert [p["name"] for p in entry["parameters"]] == [n for n in signature if n != "self"]
        assert all(p["default"] == signature[p["name"]].default for p in entry["parameters"])
        assert entry["metrics"] == list(cls.metrics) and entry["units"] == cls.value_units
    knn = next(a for a in listing if a["name"] == "knn")
    assert knn["needs"] == ["labels"] and {"name": "k", "takes": "integer", "default": 20} in knn["parameters"]
    assert next(a for a in listing if a["name"] == "fourier")["needs"] == ["images"]
    assert main(["analyses"]) == 0
    assert "  metrics: knn_top1 (% top-1, held out)\n" in capsys.readouterr().out


def test_images_of_another_size_than_the_model_takes_are_refused_before_the_pass():
    with pytest.raises(ConfigError, match="images are 64x64 px but the model takes 32x32; resize them"):
        analyze(tiny_vit(), DictImages(size=64), analyses="attention_distance", progress=False)


def test_a_dynamic_size_model_is_analysed_at_the_images_size_as_if_built_there():
    """timm's dynamic_img_size resamples the position table each forward, as a model built at
    the images' size with the table resampled once: same tables, at the images' grid."""
    from timm.layers import resample_abs_pos_embed

    torch.manual_seed(0)
    kwargs = dict(patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=0)
    dynamic = timm.models.vision_transformer.VisionTransformer(img_size=32, dynamic_img_size=True, **kwargs).eval()
    built = timm.models.vision_transformer.VisionTransformer(img_size=64, **kwargs).eval()
    weights = dict(dynamic.state_dict())
    weights["pos_embed"] = resample_abs_pos_embed(weights["pos_embed"], (8, 8), (4, 4), num_prefix_tokens=1)
    built.load_state_dict(weights)
    analyses = ["attention_distance", "attention_nmi", "fourier", "token_similarity"]
    runs = [analyze(m, DictImages(n=4, size=64), analyses=analyses, batch_size=4, progress=False)
            for m in (dynamic, built)]
    for name in analyses:
        pd.testing.assert_frame_equal(runs[0][name].table, runs[1][name].table)
    assert runs[0]["fourier"].protocol["image_size"] == 64
    assert runs[0]["fourier"].table["frequency"].nunique() == 4  # the 8 x 8 grid's (4 x 4 has 2)
    with pytest.raises(ConfigError, match="images are 60x60 px, not a multiple of the model's patch size 8"):
        analyze(dynamic, DictImages(size=60), analyses="attention_distance", progress=False)


def test_a_module_given_as_such_records_its_architecture():
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=0, reg_tokens=3).eval()
    run = analyze(model, DictImages(n=4), analyses="attention_distance", batch_size=4, progress=False)
    checkpoint = run["attention_distance"].protocol["checkpoint"]
    assert checkpoint["format"] == "module"
    assert checkpoint["arch"] == {"class": "VisionTransformer", "depth": 2, "num_heads": 2, "embed_dim": 32,
                                  "patch_size": 8, "img_size": 32, "class_token": True, "reg_tokens": 3}


def test_probes_without_labels_and_unknown_names_are_config_errors():
    with pytest.raises(ConfigError, match="needs labels"):
        analyze(tiny_vit(), DictImages(labels=False), analyses="knn", progress=False)
    with pytest.raises(ConfigError, match="choose from attention_distance"):
        analyze(tiny_vit(), DictImages(), analyses=["nope"], progress=False)
    for model, said in ((tiny_vit().half(), r"the model's .* is float16; vitprobe analyses float32 weights: pass "
                                             r"model.float\(\)"),
                        (tiny_vit().double(), "is float64"), (tiny_vit().to("meta"), "is on the meta device")):
        with pytest.raises(ConfigError, match=said):
            analyze(model, DictImages(), analyses="knn", progress=False)
    diverged = tiny_vit()
    with torch.no_grad():
        diverged.blocks[0].attn.qkv.weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"^the model: blocks.0.attn.qkv.weight holds 1 non-finite value "):
        analyze(diverged, DictImages(), analyses="knn", progress=False)
    for wrong in (None, 3, ["knn", None]):
        with pytest.raises(ConfigError, match=r"analyses must be 'all', a name or a list of names, got "):
            analyze(tiny_vit(), DictImages(), analyses=wrong, progress=False)
    with pytest.raises(DataError):
        analyze(tiny_vit(), "nonsense:1", progress=False)


def test_all_skips_what_the_data_cannot_feed():
    with pytest.warns(UserWarning, match="skipping attention_jaccard: it needs foreground masks") as caught:
        run = analyze(tiny_vit(), DictImages(n=4, labels=False), analyses=["all"], batch_size=4, progress=False)
    assert {str(w.message).split(":")[0] for w in caught} >= {"skipping knn", "skipping linear_probe"}
    assert "attention_jaccard" not in run and "knn" not in run and "attention_distance" in run
    from vitprobe.analyzers import analyzer_class, list_analyzers

    needy = {n for n in list_analyzers() if analyzer_class(n).requires_masks or analyzer_class(n).requires_labels}
    assert {"attention_jaccard", "knn", "linear_probe"} <= needy
    assert set(run.meta["skipped_analyses"]) == needy and not needy & set(run)


@pytest.mark.parametrize("reg_tokens", [0, 4])
def test_all_skips_what_a_model_without_a_class_token_cannot_feed(reg_tokens):
    """"all" on an avg-pool ViT without a class token: CLS-reading analyses are skipped with
    their one-line reason; named, or given parameters, they are the user's error to fix.
    Register tokens do not stand in for a class token."""
    torch.manual_seed(0)
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=0,
        class_token=False, global_pool="avg", reg_tokens=reg_tokens).eval()
    note = r" \(its 4 prefix tokens are registers\)" if reg_tokens else ""
    with pytest.warns(UserWarning, match=r"skipping knn: it cannot run on this model with its default "
                                         rf"parameters \(.*pooling 'cls' needs a class token and this model has none{note}; use pooling='mean'\)"):
        run = analyze(model, "synthetic:8", batch_size=8, progress=False)
    assert {"knn", "linear_probe", "attention_jaccard"} <= set(run.meta["skipped_analyses"])
    assert {"attention_distance", "attention_nmi", "fourier", "token_similarity"} <= set(run)
    assert set(run.meta["analyzer_params"]) == set(run)  # the record names only the analyses that ran
    mean_pooled = analyze(model, "synthetic:8", batch_size=8, progress=False,
                          analyzer_params={"knn": {"pooling": "mean"}})
    assert "knn" in mean_pooled and "knn" not in mean_pooled.meta["skipped_analyses"]
    with pytest.raises(ConfigError, match="pooling 'cls' needs a class token"):
        analyze(model, "synthetic:8", analyses="knn", progress=False)
    with pytest.raises(ConfigError, match="pooling 'cls' needs a class token"):
        analyze(model, "synthetic:8", progress=False, analyzer_params={"knn": {"k": 5}})


def assert_same_tables(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Means agree to float precision; the std (from running sums of squares, which cancel
    when the spread is small against the mean) to 1e-3 relative."""
    pd.testing.assert_frame_equal(left.drop(columns="std"), right.drop(columns="std"), rtol=1e-6, atol=1e-7)
    pd.testing.assert_series_equal(left["std"], right["std"], rtol=1e-3, atol=1e-7)


def test_a_custom_datasets_first_item_is_read_once_before_the_pass():
    """The checks before the pass (labels, masks, image size) share one read of item 0; the
    pass reads it once more. An empty custom dataset is a one-line error."""
    class Counting(DictImages):
        reads = 0

        def __getitem__(self, index: int) -> dict:
            Counting.reads += index == 0
            return super().__getitem__(index)

    analyze(tiny_vit(), Counting(), analyses="fourier", progress=False)
    assert Counting.reads == 2
    with pytest.raises(ConfigError, match="dataset Counting is empty"):
        analyze(tiny_vit(), Counting(n=0), analyses="fourier", progress=False)


def test_batching_and_loader_do_not_change_the_tables(tmp_path):
    names = "attention_distance,attention_nmi,fourier"
    one = analyze(tiny_vit(), DictImages(), analyses=names, batch_size=10, progress=False)
    loader = DataLoader(DictImages(), batch_size=3)
    three = analyze(tiny_vit(), loader, analyses=names, progress=False, out=tmp_path / "r")
    for name in names.split(","):
        assert_same_tables(one[name].table, three[name].table)
    assert one["fourier"].protocol["dataset"]["spec"] == "DictImages"
    assert three["fourier"].protocol["batch_size"] == 3  # the loader's
    with pytest.raises(ConfigError, match="batch_size=10 is for data vitprobe batches itself; this DataLoader "
                                          "batches by 3: leave batch_size out"):
        analyze(tiny_vit(), loader, analyses=names, batch_size=10, progress=False)
    assert analyze(tiny_vit(), loader, analyses="fourier", batch_size=3, progress=False)["fourier"].protocol["batch_size"] == 3
    with pytest.raises(OutputExistsError):
        analyze(tiny_vit(), loader, analyses=names, progress=False, out=tmp_path / "r")
    with pytest.raises(ConfigError, match=r"yields no batch: drop_last=True drops a last batch smaller than "
                                          r"batch_size=16, and that is all of it"):
        analyze(tiny_vit(), DataLoader(DictImages(n=8), batch_size=16, drop_last=True), analyses=names, progress=False)


class Unindexed(DictImages):
    """Items without an "index": the pass numbers them by their place in it."""

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        del item["index"]
        return item


@pytest.mark.parametrize("dataset", [DictImages, Unindexed])
def test_shards_cover_every_index_once_and_merge_to_the_whole(dataset):
    assert [list(ShardSampler(10, r, 3)) for r in range(3)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    names = ["attention_distance", "token_similarity", "knn"]
    whole = run_analysis(prepare_analysis(tiny_vit(), dataset(n=30), names, batch_size=4), progress=False)
    plans = []
    for rank in range(2):
        plan = prepare_analysis(tiny_vit(), dataset(n=30), names, batch_size=4)
        plan.loader = DataLoader(plan.loader.dataset, batch_size=4, sampler=ShardSampler(30, rank, 2))
        run_analysis(plan, progress=False)
        plans.append(plan)
    for mine, theirs in zip(plans[0].analyzers, plans[1].analyzers):
        mine.merge(theirs)
        assert_same_tables(mine.compute().table, whole[mine.name].table)


def test_a_mistyped_data_spec_fails_before_the_checkpoint_is_read(tmp_path, capsys):
    """A file without a head count is warned of when read; a typo in --data must not wait for that."""
    path = tmp_path / "bare.pth"
    torch.save(timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=1,
                                 num_heads=2, num_classes=0).state_dict(), path)
    assert main(["analyze", "--checkpoint", str(path), "--data", "synthtic:64", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vitprobe: error: dataset spec 'synthtic:64': unknown dataset kind") and "\n" not in err


def test_two_checkpoints_with_one_stem_get_distinct_folders(checkpoint, tmp_path, capsys):
    argv = ["analyze", "--checkpoint", checkpoint, "--checkpoint", checkpoint, "--data", "synthetic:4",
            "--analyses", "attention_distance", "--out", f"{tmp_path / 'o'}/", "--no-progress"]
    assert main(argv) == 0
    assert (tmp_path / "o" / "tiny" / "run.json").is_file() and (tmp_path / "o" / "tiny-2" / "run.json").is_file()
    out = capsys.readouterr().out
    assert f"report: {tmp_path / 'o' / 'report.html'}\n" in out  # one separator, not two
    assert "synthetic:4 (n=4)" in out and "attention_distance_px" in out
    rows = [line for line in out.splitlines() if "attention_distance_px" in line]
    assert len(rows) == 2 and all(row.endswith("[1]") for row in rows)  # one protocol, noted once below
    assert re.search(r"^\[1\] mean over \d+ heads \(no std over images; se: the mean of the heads' se\) · image size \d+",
                     out, re.M)
    assert all(re.search(r" - +\d", row) and "NaN" not in row for row in rows)  # the std column: no such number
    assert "\nse: std / sqrt(n) over the n images; for a top-1 accuracy, Agresti and Coull's plus-four" in out
    assert main([*argv[:-3], "--overwrite", "--no-progress"]) == 0  # replaces no --out: said, not passed over
    assert "vitprobe: warning: --overwrite replaces an --out folder, and none was given: nothing is written" in \
        capsys.readouterr().err


def test_a_gpu_that_is_not_there_is_a_config_error(monkeypatch):
    """One GPU: cuda:1, or a second torchrun process per node, is refused in one line (torch
    would fail later with 'invalid device ordinal', NCCL with 'duplicate GPU')."""
    from vitprobe.distributed import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda", local_rank=0) == torch.device("cuda", 0)
    assert resolve_device("auto", local_rank=0) == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match=r"--device cuda:1: there is no GPU 1 here \(1 GPU visible\); use cuda:0$"):
        resolve_device("cuda:1")
    with pytest.raises(ConfigError, match=r"--device auto: local process 1 has no GPU of its own \(1 GPU visible "
                                          r"here\); start at most 1 per node \(torchrun --nproc_per_node 1\)"):
        resolve_device("auto", local_rank=1)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)  # each local process its own GPU
    with pytest.raises(ConfigError, match=r"there is no GPU 2 here \(2 GPUs visible\); use cuda:0 to cuda:1$"):
        resolve_device("cuda:2")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^--device cuda \(Python: device=.cuda.\): CUDA is not available here; use --device cpu"):
        analyze(tiny_vit(), DictImages(), device="cuda", progress=False)


@pytest.mark.parametrize("device", ["mps", "meta", "xpu", "gpu"])
def test_devices_other_than_cpu_and_cuda_are_one_config_error(device):
    with pytest.raises(ConfigError, match=rf"unknown --device '{device}' \(Python: device='{device}'\); use cpu, cuda, cuda:N or auto"):
        analyze(tiny_vit(), DictImages(), device=device, progress=False)


def test_parameters_for_an_analysis_that_does_not_run_are_refused():
    with pytest.raises(ConfigError, match="will not run"):
        analyze(tiny_vit(), DictImages(), analyses="fourier", analyzer_params={"knn": {"k": 5}}, progress=False)
    with pytest.raises(ConfigError, match="no parameter"):
        analyze(tiny_vit(), DictImages(), analyses="fourier", analyzer_params={"fourier": {"bogus": 1}}, progress=False)
    with pytest.raises(ConfigError, match=r"'k' is not an analysis; .*\{'knn': \{'k': 10\}\}"):
        analyze(tiny_vit(), DictImages(), analyses="knn", analyzer_params={"k": 3}, progress=False)


def test_every_result_says_when_the_position_embedding_was_resampled(checkpoint):
    native = analyze(checkpoint, DictImages(), analyses="fourier", progress=False)["fourier"].protocol
    assert "resampled" not in native["checkpoint"]
    larger = analyze(checkpoint, DictImages(size=48), analyses="fourier", progress=False,
                     load_options={"img_size": 48})["fourier"].protocol
    assert larger["checkpoint"]["resampled"] == {"pos_embed": [[1, 17, 32], [1, 37, 32]]}
    assert larger["image_size"] == 48


@pytest.mark.parametrize("model,kwargs,message", [
    ("module", dict(load_options={"img_size": 64}), r"load_options \['img_size'\] apply when a checkpoint path"),
    (None, {}, "an nn.Module or a checkpoint path, got NoneType"),
    ("path", dict(load_options={"imgsize": 64}), r"unknown load option\(s\) \['imgsize'\]; known: "),
    ("path", dict(load_options={"img_size": "64"}), "img_size must be a whole number, got '64'"),
    ("module", dict(seed="a"), r"seed \(Python: seed=\) must be a whole number in \[0, 2\*\*63\), got 'a'"),
    ("module", dict(seed=-1), r"seed \(Python: seed=\) must be a whole number in \[0, 2\*\*63\), got -1"),
])
def test_python_misuse_is_one_config_error(checkpoint, model, kwargs, message):
    model = {"module": tiny_vit(), "path": checkpoint, None: None}[model]
    with pytest.raises(ConfigError, match=message):
        analyze(model, DictImages(), analyses="fourier", progress=False, **kwargs)


def test_compare_refuses_one_run_given_twice(two_runs, tmp_path, capsys):
    root, _ = two_runs
    assert main(["compare", str(root / "a"), str(root / "a" / "tiny"), str(root / "b"), "--out", str(tmp_path / "c")]) == 2
    assert "tiny is given twice" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_compare_refuses_a_folder_without_runs(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty"), "--out", str(tmp_path / "c")]) == 2
    assert "no run.json" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    assert main(["compare", str(tmp_path / "missing"), "--out", str(tmp_path / "c")]) == 2
    assert "missing: no such folder" in capsys.readouterr().err


def test_training_files_are_named_after_their_run_folder_and_labels_can_be_given(checkpoint, tmp_path, capsys):
    import shutil

    from vitprobe.analysis import checkpoint_label

    assert checkpoint_label("runs/mae/final.safetensors") == "mae"
    assert checkpoint_label("runs/mae/checkpoint.safetensors") == "mae-checkpoint"  # told from the final one
    assert checkpoint_label("runs/mae/dino_vitbase16.pth") == "dino_vitbase16"
    assert checkpoint_label("mocov3/vit-b-300ep.pth.tar") == "vit-b-300ep"  # MoCo v3's file names
    from vitprobe.commands.analyze import folder_name

    assert folder_name("mödel ü") == "mödel_ü" and folder_name("a/../b") == "a_.._b"
    assert folder_name("..") == "run" and folder_name(".hidden") == "hidden"  # never the parent, never hidden
    # never where the output's own files go: runs.json, report.html, an analysis's table or figure
    assert [folder_name(label) for label in ("runs.json", "report.HTML", "knn.png", "v1.0", "a.json.b")] == \
        ["runs_json", "report_HTML", "knn_png", "v1.0", "a.json.b"]
    for name in ("mae", "dino"):
        (tmp_path / name).mkdir()
        shutil.copy(checkpoint, tmp_path / name / "final.safetensors")
    common = ["--data", "synthetic:16", "--analyses", "knn", "--batch-size", "8", "--no-progress"]
    assert main(["analyze", "--checkpoint", str(tmp_path / "mae" / "final.safetensors"),
                 "--checkpoint", str(tmp_path / "dino" / "final.safetensors"), *common,
                 "--out", str(tmp_path / "auto")]) == 0
    assert sorted(p.name for p in (tmp_path / "auto").iterdir() if p.is_dir()) == ["dino", "mae"]
    from vitprobe.models import load_model  # Python names a loaded model the same way

    loaded = load_model(tmp_path / "mae" / "final.safetensors")
    assert analyze(loaded, "synthetic:16", analyses="knn", batch_size=8, progress=False).label == "mae"
    assert main(["analyze", "--checkpoint", checkpoint, "--checkpoint", checkpoint, *common,
                 "--label", "before", "--label", "after", "--out", str(tmp_path / "named")]) == 0
    assert sorted(p.name for p in (tmp_path / "named").iterdir() if p.is_dir()) == ["after", "before"]
    assert f"{checkpoint} (before) and {checkpoint} (after) hold the same bytes (sha256 " in capsys.readouterr().err
    # a label that is no folder name keeps its spelling in legends, tables and run.json
    assert main(["analyze", "--checkpoint", checkpoint, "--checkpoint", checkpoint, *common,
                 "--label", "SimMIM 800ep", "--label", "SimMIM_800ep", "--out", str(tmp_path / "spaced")]) == 0
    spaced = tmp_path / "spaced"
    assert sorted(p.name for p in spaced.iterdir() if p.is_dir()) == ["SimMIM_800ep", "SimMIM_800ep-2"]
    assert json.loads((spaced / "SimMIM_800ep" / "run.json").read_text())["label"] == "SimMIM 800ep"
    assert set(pd.read_csv(spaced / "knn.csv")["run"]) == {"SimMIM 800ep", "SimMIM_800ep"}
    assert 'href="SimMIM_800ep-2/report.html"' in (spaced / "report.html").read_text()
    assert "SimMIM 800ep" in capsys.readouterr().out
    # labels named like the output's own files: their folders stand beside those files
    assert main(["analyze", "--checkpoint", checkpoint, "--checkpoint", checkpoint, *common,
                 "--label", "runs.json", "--label", "knn.png", "--out", str(tmp_path / "files")]) == 0
    files = tmp_path / "files"
    assert sorted(p.name for p in files.iterdir() if p.is_dir()) == ["knn_png", "runs_json"]
    assert json.loads((files / "runs.json").read_text())[0]["label"] == "runs.json"
    assert (files / "knn.png").is_file() and (files / "knn_png" / "knn.png").is_file()
    assert main(["analyze", "--checkpoint", checkpoint, "--checkpoint", checkpoint, *common,
                 "--label", "only-one"]) == 2
    assert "one --label per --checkpoint" in capsys.readouterr().err
    assert main(["analyze", "--checkpoint", checkpoint, "--checkpoint", checkpoint, *common,
                 "--label", "X", "--label", "X", "--out", str(tmp_path / "twice")]) == 2
    assert ("vitprobe: error: --label 'X' is given 2 times; give each --checkpoint its own label"
            in capsys.readouterr().err) and not (tmp_path / "twice").exists()


def test_sigterm_cleans_up_like_ctrl_c(checkpoint, tmp_path, capsys, monkeypatch):
    """A batch scheduler's SIGTERM mid-write stops the command through its clean-up: exit 143,
    one line, and neither the output folder nor its staging folder is left behind."""
    import os
    import signal
    import time

    import vitprobe.results

    def terminated_while_writing(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler raises here

    monkeypatch.setattr(vitprobe.results, "write_comparison", terminated_while_writing)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["analyze", "--checkpoint", checkpoint, "--data", "synthetic:16", "--analyses", "knn",
                 "--batch-size", "8", "--no-progress", "--out", str(tmp_path / "out")]) == 143
    assert capsys.readouterr().err.endswith("vitprobe: terminated\n")
    assert list(tmp_path.iterdir()) == [] and signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("rank", ["0", "1"])
def test_ctrl_c_while_the_command_line_starts_is_one_line(capsys, monkeypatch, rank):
    """Ctrl-C during start-up (the parsers import torch; under torchrun every rank is hit) gives
    one line from rank 0 and exit 130, not a traceback per process."""
    import vitprobe.cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setenv("RANK", rank)
    monkeypatch.setattr(vitprobe.cli, "build_parser", interrupted)
    assert main(["analyze", "--help"]) == 130
    assert capsys.readouterr().err == ("vitprobe: interrupted\n" if rank == "0" else "")


def test_an_interrupted_command_line_ignores_a_second_ctrl_c_while_the_process_ends(monkeypatch):
    """A second Ctrl-C during the interpreter's shutdown (torch's atexit hooks) printed a
    traceback after the one-line message; the process now ignores SIGINT once main returns 130.
    main(argv) called in a program (as here, in-process) leaves the program's SIGINT alone."""
    import signal
    import subprocess
    import sys

    script = ("import signal, sys, vitprobe.cli as cli\n"
              "def stop():\n    raise KeyboardInterrupt\n"
              "cli.build_parser = stop\nsys.argv = ['vitprobe', 'analyses']\n"
              "code = cli.main()\nprint(code, signal.getsignal(signal.SIGINT) is signal.SIG_IGN)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (done.stdout, done.stderr) == ("130 True\n", "vitprobe: interrupted\n")
    import vitprobe.cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(vitprobe.cli, "build_parser", interrupted)
    before = signal.getsignal(signal.SIGINT)
    assert main(["analyses"]) == 130 and signal.getsignal(signal.SIGINT) is before


def test_only_rank_zero_prints_warnings(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")  # what torchrun sets in the second process
    assert main(["analyze", "--checkpoint", checkpoint, "--data", "synthetic:16", "--analyses", "knn",
                 "--batch-size", "8", "--no-progress", "--out", str(tmp_path / "o")]) == 0
    assert "warning" not in capsys.readouterr().err  # rank 0 prints the same ones once


def test_under_torchrun_an_error_of_the_shared_options_is_printed_by_rank_zero_alone(checkpoint, tmp_path,
                                                                                      capsys, monkeypatch):
    """Every rank meets a bad option or file: rank 0 says it once. An error in reading one
    rank's own shard of the data is said by that rank, named."""
    import vitprobe.analysis
    from vitprobe.distributed import own_shard

    argv = ["analyze", "--checkpoint", str(tmp_path / "nope.pth"), "--data", "synthetic:16", "--analyses", "knn"]
    for rank, said in (("0", "vitprobe: error: checkpoint "), ("1", "")):
        monkeypatch.setenv("RANK", rank)
        assert main(argv) == 2
        assert capsys.readouterr().err.startswith(said) if said else capsys.readouterr().err == ""

    def a_file_of_this_shard_is_gone(*args, **kwargs):
        with own_shard():
            raise DataError("cannot read /data/b/299.jpg: the file is gone")

    monkeypatch.setattr(vitprobe.analysis, "run_analysis", a_file_of_this_shard_is_gone)
    assert main(["analyze", "--checkpoint", checkpoint, "--data", "synthetic:16", "--analyses", "knn"]) == 2
    assert capsys.readouterr().err == "vitprobe: error (rank 1): cannot read /data/b/299.jpg: the file is gone\n"


def test_meaningless_probe_splits_are_warned_in_one_line(checkpoint, tmp_path, capsys):
    assert main(["analyze", "--checkpoint", checkpoint, "--checkpoint", checkpoint, "--data", "synthetic:16",
                 "--analyses", "knn", "--batch-size", "8", "--no-progress", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert err.count("vitprobe: warning: knn on label 'shape': only") == 1  # once, not per checkpoint
    assert "only 1 held-out image," in err
    shown = "<dt>analysis warned</dt><dd>knn on label &#x27;shape&#x27;: only 1 held-out image"
    for page in ("tiny/report.html", "tiny-2/report.html", "report.html"):  # each run's page, the comparison's
        assert shown in (tmp_path / "o" / page).read_text(encoding="utf-8")
    from vitprobe.results import Run

    assert any(w.startswith("knn on label 'shape': only 1") for w in Run.load(tmp_path / "o" / "tiny").meta["analysis_warnings"])
    assert "vitprobe: warning: knn on label 'shape': k = 20 neighbours of only" in err
    assert "UserWarning" not in err

    class OneClass(DictImages):
        def __getitem__(self, index: int) -> dict:
            return {**super().__getitem__(index), "labels": {"parity": 0}}

    for probe in ("linear_probe", "knn"):  # every image would be given the one class: 100%, telling nothing
        with pytest.warns(UserWarning, match=rf"{probe} on label 'parity': the training split holds 1 class, so "
                                             r"every image would be given it and there is no accuracy \(NaN\)"):
            table = analyze(tiny_vit(), OneClass(n=40), analyses=[probe], batch_size=20, progress=False)[probe].table
        assert table["value"].isna().all() and (table["n"] > 0).all()
    with pytest.warns(UserWarning, match="knn on label 'shape': no image fell in the held-out split") as caught:
        table = analyze(tiny_vit(), "synthetic:3", analyses=["knn"], progress=False)["knn"].table
    assert {w.filename for w in caught} == {__file__}  # the user's line, not vitprobe's
    assert (table["n"] == 0).all() and table["value"].isna().all()
    from vitprobe.analyzers._split import heldout_mask

    assert heldout_mask(torch.arange(3), 0.95, 0).all()  # every image held out: none to train on
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        analyze(tiny_vit(), "synthetic:3", analyses=["knn"], analyzer_params={"knn": {"heldout_fraction": 0.95}},
                progress=False)
    said = [str(w.message) for w in caught if "knn on label 'shape'" in str(w.message)]
    assert said == ["knn on label 'shape': no image fell in the training split (all 3 images held out), so there "
                    "is no accuracy (NaN); use more images or a smaller heldout_fraction"]


def test_the_probes_protocol_and_caption_say_how_many_images_the_split_held_out():
    from vitprobe.analyzers._split import heldout_mask
    from vitprobe.plots.style import protocol_caption

    with pytest.warns(UserWarning, match="only"):
        result = analyze(tiny_vit(), "synthetic:16", analyses=["linear_probe"], progress=False)["linear_probe"]
    held = int(heldout_mask(torch.arange(16), 0.2).sum())
    assert held != round(0.2 * 16)  # on few images the hash holds out another share than the fraction
    assert result.protocol["held_out"] == f"{held} of 16 images"
    assert (result.table["n"] == held).all()
    assert f"heldout fraction 0.2 · held out {held} of 16 images" in protocol_caption([result.protocol])


def test_analysis_parameters_from_the_command_line_reach_the_protocol(checkpoint, tmp_path, capsys):
    import json

    out = tmp_path / "out"
    assert main(["analyze", "--checkpoint", checkpoint, "--data", "synthetic:16", "--analyses", "knn",
                 "--param", "knn.pooling=mean", "--param", "knn.k=3", "--batch-size", "8",
                 "--no-progress", "--out", str(out)]) == 0
    protocol = json.loads((out / "tiny" / "knn.json").read_text(encoding="utf-8"))
    assert json.dumps(protocol).count('"pooling": "mean"') >= 1 and '"k": 3' in json.dumps(protocol)
    meta = json.loads((out / "tiny" / "run.json").read_text(encoding="utf-8"))["meta"]
    assert meta["analyzer_params"] == {"knn": {"pooling": "mean", "k": 3}}  # the run's record of what was given
    capsys.readouterr()
    for bad, message in ((["--param", "pooling=mean"], "name the analysis and its parameter"),
                         (["--param", "knn.kk=3"], "has no parameter kk"),
                         (["--param", "knn.k=abc"], "k takes integer, got 'abc'"),
                         (["--param", "knn.final_norm=no"], "final_norm takes true|false, got 'no'"),
                         (["--param", "knn.layers=1.5"], "layers takes block numbers"),
                         (["--param", "knn.pooling=max"], "pooling"),
                         (["--param", "knn.k=0"], "analysis 'knn': k must be a whole number >= 1"),
                         (["--param", "linear_probe.C=-1"], "C must be a finite number > 0"),
                         (["--param", "linear_probe.C=0"], "C must be a finite number > 0"),
                         (["--param", "linear_probe.max_iter=0"], "analysis 'linear_probe': max_iter must be a whole number >= 1")):
        analysis = bad[1].split(".")[0] if "." in bad[1] else "knn"
        assert main(["analyze", "--checkpoint", checkpoint, "--data", "synthetic:16", "--analyses", analysis,
                     "--no-progress", *bad]) == 2, bad
        err = capsys.readouterr().err.strip()
        assert err.startswith("vitprobe: error:") and message in err and "\n" not in err, (bad, err)


class NoisyImages(DictImages):
    """Images with fresh noise from torch's global generator at every read (as a random
    transform would add)."""

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        return {**item, "image": item["image"] + torch.rand(item["image"].shape)}


def test_the_pass_is_seeded_and_leaves_the_callers_generators_as_they_were():
    import random

    import numpy as np

    model = tiny_vit()  # (seeds torch itself)
    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    before = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    first = analyze(model, NoisyImages(), analyses="fourier", progress=False, seed=3)
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[2]
    after = np.random.get_state()
    assert np.array_equal(after[1], before[1][1]) and after[2:] == before[1][2:]
    torch.manual_seed(8)
    again = analyze(model, NoisyImages(), analyses="fourier", progress=False, seed=3)
    pd.testing.assert_frame_equal(first["fourier"].table, again["fourier"].table)  # the data's noise repeats
    other = analyze(model, NoisyImages(), analyses="fourier", progress=False, seed=4)
    assert not first["fourier"].table["value"].equals(other["fourier"].table["value"])


def test_a_module_is_analysed_in_eval_mode_and_left_in_its_own_modes():
    """A model in training mode (dropout on) gives the tables of the same model in eval mode,
    and afterwards every submodule has the mode it had (one block frozen in eval)."""
    reference = analyze(tiny_vit(), DictImages(), analyses="fourier", progress=False)
    torch.manual_seed(0)
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=0,
        drop_rate=0.5, proj_drop_rate=0.5).train()
    model.blocks[0].eval()
    modes = [m.training for m in model.modules()]
    run = analyze(model, DictImages(), analyses="fourier", progress=False)
    pd.testing.assert_frame_equal(run["fourier"].table, reference["fourier"].table)
    assert [m.training for m in model.modules()] == modes and model.training
    assert run["fourier"].protocol["device"] == "cpu"  # where the module's parameters are


def test_items_without_an_index_are_numbered_by_their_place_in_the_pass():
    names = ["knn", "linear_probe"]
    given = analyze(tiny_vit(), DictImages(n=40), analyses=names, batch_size=8, progress=False)
    numbered = analyze(tiny_vit(), Unindexed(n=40), analyses=names, batch_size=8, progress=False)
    for name in names:
        pd.testing.assert_frame_equal(given[name].table, numbered[name].table)
    assert "index" in numbered["knn"].protocol["dataset"] and "index" not in given["knn"].protocol["dataset"]


@pytest.mark.slow
def test_unusual_terminals_and_environments_do_not_lose_the_work(checkpoint, tmp_path):
    """An ASCII-only terminal, a closed stderr and a matplotlib backend that does not exist."""
    import os
    import subprocess
    import sys

    analyze_ = [sys.executable, "-m", "vitprobe", "analyze", "--checkpoint", checkpoint,
                "--data", "synthetic:8", "--analyses", "fourier", "--batch-size", "8"]
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}
    ascii_run = subprocess.run(analyze_, env=env, capture_output=True, timeout=300)
    assert ascii_run.returncode == 0, ascii_run.stderr[-500:]
    assert b"delta_log_amplitude" in ascii_run.stdout and b"\\xb7" in ascii_run.stdout  # ' · ' escaped
    closed = subprocess.run([*analyze_, "--out", str(tmp_path / "closed")], stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, capture_output=False, timeout=300,
                            preexec_fn=lambda: os.close(2))
    assert closed.returncode == 0 and (tmp_path / "closed" / "report.html").is_file()
    bad = subprocess.run([*analyze_, "--out", str(tmp_path / "bad")], env={**os.environ, "MPLBACKEND": "nonsense"},
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "MPLBACKEND='nonsense'" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_checkpoints_of_different_image_sizes_are_warned_about(checkpoint, tmp_path, capsys):
    torch.manual_seed(0)
    larger = tmp_path / "larger.safetensors"
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=48, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=0).eval()
    save_encoder(larger, model, ArchSpec(patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=48), {})
    argv = ["analyze", "--checkpoint", checkpoint, "--checkpoint", str(larger), "--data", "synthetic:8",
            "--analyses", "fourier", "--no-progress"]
    assert main(argv) == 0
    said = capsys.readouterr()
    assert "vitprobe: warning: the checkpoints take different image sizes (tiny 32 px, larger 48 px)" in said.err
    assert said.out.startswith("dataset synthetic:8 (n=8) · image size 32 (tiny) | 48 (larger) · each value at")
    assert main(argv + ["--img-size", "48"]) == 0  # one size for both: nothing to warn about
    assert "different image sizes" not in capsys.readouterr().err


def test_among_several_checkpoints_errors_and_warnings_say_whose_they_are(checkpoint, tmp_path, capsys):
    """A warning every run gave (about the data) is said once; one run's own warning names
    that run; an error names the --checkpoint it arose with."""
    torch.manual_seed(0)
    deeper = tmp_path / "deeper.safetensors"
    spec = ArchSpec(patch_size=8, embed_dim=32, depth=4, num_heads=2, img_size=32)
    save_encoder(deeper, timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=4, num_heads=2, num_classes=0).eval(), spec, {})
    argv = ["analyze", "--checkpoint", checkpoint, "--checkpoint", str(deeper), "--data", "synthetic:16",
            "--no-progress", "--analyses", "linear_probe", "--param", "linear_probe.max_iter=1"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("vitprobe: warning: linear_probe on label 'shape': only 1 held-out image") == 1
    assert "vitprobe: warning: tiny: linear_probe: 4 of 4 fits stopped at max_iter 1" in err
    assert "vitprobe: warning: deeper: linear_probe: 8 of 8 fits stopped at max_iter 1" in err
    assert main([*argv[:-4], "--analyses", "attention_distance", "--param", "attention_distance.layers=3"]) == 2
    assert capsys.readouterr().err == (f"vitprobe: error: with --checkpoint {checkpoint}: analysis 'attention_distance': "
                                       "layers [3] must be a non-empty subset of 1..2 for this model\n")


@pytest.mark.parametrize("params", [["k"], {"knn": 5}, "knn.k=5"])
def test_analyzer_params_of_the_wrong_shape_are_one_config_error(params):
    with pytest.raises(ConfigError, match=r"analyzer_params maps an analysis to a dict of its parameters, e.g. "
                                          r"\{'knn': \{'k': 10\}\}, got "):
        analyze(tiny_vit(), DictImages(), analyses="knn", analyzer_params=params, progress=False)


@pytest.mark.slow
def test_one_checkpoints_comparison_figures_are_its_own_figures_as_drawing_them_gives(two_runs, tmp_path):
    """analyze copies a lone run's figures into the comparison instead of drawing them twice:
    the copies are byte-identical to drawing that comparison afresh from the saved run."""
    from vitprobe.results import Run, write_comparison

    root, _ = two_runs
    write_comparison([Run.load(root / "a" / "tiny")], tmp_path)
    for name in list_analyzers():
        for ext in ("png", "svg"):
            copied = (root / "a" / f"{name}.{ext}").read_bytes()
            assert copied == (root / "a" / "tiny" / f"{name}.{ext}").read_bytes(), (name, ext)
            assert copied == (tmp_path / f"{name}.{ext}").read_bytes(), (name, ext)


def test_a_dataset_normalised_otherwise_than_the_model_expects_is_warned():
    """A vitprobe dataset built with ImageNet's mean/std, given (in a Subset) to a model whose
    pretrained_cfg says 0.5/0.5: one warning naming both; the model's own values: none."""
    import warnings

    from torch.utils.data import Subset

    from vitprobe.data import resolve_dataset

    model = tiny_vit()
    model.pretrained_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    imagenet = Subset(resolve_dataset("synthetic:8", 32), range(4))
    with pytest.warns(UserWarning, match=r"dataset 'synthetic:8' is normalised with mean \(0\.485, 0\.456, 0\.406\) "
                                         r"and std \(0\.229, 0\.224, 0\.225\), but the model expects mean "
                                         r"\(0\.5, 0\.5, 0\.5\) and std \(0\.5, 0\.5, 0\.5\); pass the spec string"):
        analyze(model, imagenet, analyses="fourier", progress=False)
    own = resolve_dataset("synthetic:8", 32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        analyze(model, own, analyses="fourier", progress=False)
        analyze(model, "synthetic:8", analyses="fourier", progress=False)


def test_a_label_given_to_analyze_names_the_run():
    run = analyze(tiny_vit(), DictImages(), analyses="fourier", progress=False, label="DINO")
    assert run.label == "DINO"
    assert analyze(tiny_vit(), DictImages(), analyses="fourier", progress=False).label == "VisionTransformer"


def test_version_names_vitprobe_torch_and_timm_and_matches_pyproject(capsys):
    import re
    from pathlib import Path

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M)[1]
    out = capsys.readouterr().out
    assert re.fullmatch(rf"vitprobe {re.escape(version)} \(torch {re.escape(torch.__version__.split('+')[0])}\S*, "
                        rf"timm {re.escape(timm.__version__)}\)\n", out), out


def test_what_the_data_warned_of_is_kept_with_the_run(checkpoint, tmp_path, capsys):
    """A file left out of the data is said once and kept in the run's record and report page."""
    import html

    from PIL import Image

    from vitprobe.results import Run

    for name in ("cats", "dogs"):
        for i in range(3):
            (tmp_path / "imgs" / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 32), (40 * i, 80, 120)).save(tmp_path / "imgs" / name / f"{i}.png")
    (tmp_path / "imgs" / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    assert main(["analyze", "--checkpoint", checkpoint, "--data", f"folder:{tmp_path / 'imgs'}", "--analyses",
                 "attention_distance", "--no-progress", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    said = f"dataset 'folder:{tmp_path / 'imgs'}': skipped 1 unreadable file(s): {tmp_path / 'imgs' / 'dogs' / 'broken.jpg'}"
    assert err.count(said) == 1
    kept = Run.load(tmp_path / "o" / "tiny").meta["analysis_warnings"]
    assert [w for w in kept if w.startswith("dataset ")] == [kept[0]] and kept[0].startswith(said)
    assert f"<dt>analysis warned</dt><dd>{html.escape(said)}" in (tmp_path / "o" / "tiny" / "report.html").read_text(encoding="utf-8")


def test_a_plan_runs_once_since_its_analyzers_keep_what_they_saw():
    """A second run_analysis of one plan reported n = 128 for 64 images."""
    plan = prepare_analysis(tiny_vit(), DictImages(n=6), ["attention_distance"], batch_size=4)
    first = run_analysis(plan, progress=False)
    assert set(first["attention_distance"].table["n"]) == {6}
    with pytest.raises(ConfigError, match="this plan has run already.* call prepare_analysis again"):
        run_analysis(plan, progress=False)


class Uneven(DictImages):
    """Items 4 on are 16 px larger, or lack labels (``change``), as a user's list may be."""

    def __init__(self, change: str) -> None:
        super().__init__(n=8)
        self.change = change

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        if index >= 4 and self.change == "size":
            item["image"] = torch.zeros(3, 48, 48)
        if index >= 3 and self.change == "labels":
            del item["labels"]
        return item


@pytest.mark.parametrize("batch_size", [4, 3])
def test_items_that_change_part_way_are_named_whatever_the_batching(batch_size):
    """A whole batch of larger images reached the model ("images are 48x48 px", naming no item);
    an item without the first one's labels broke torch's collate with a bare KeyError."""
    plan = prepare_analysis(tiny_vit(), Uneven("size"), ["attention_distance"], batch_size=batch_size)
    with pytest.raises(DataError, match=r"Uneven: the (images at index 4\.\.|image of the item at index 4 has shape)"):
        run_analysis(plan, progress=False)
    plan = prepare_analysis(tiny_vit(), Uneven("labels"), ["attention_distance"], batch_size=4)
    with pytest.raises(DataError, match=r"the item at index 3 has keys \['image', 'index'\] and the batch's first "
                                        r"\['image', 'index', 'labels'\]; give every item the same keys"):
        run_analysis(plan, progress=False)


def test_data_normalised_with_another_std_alone_is_warned_of() -> None:
    from vitprobe.data import resolve_dataset

    model = tiny_vit()
    model.pretrained_cfg = {"mean": (0.485, 0.456, 0.406), "std": (0.5, 0.5, 0.5)}  # ImageNet's mean, not its std
    with pytest.warns(UserWarning, match=r"normalised with mean .* and std \(0\.229, 0\.224, 0\.225\), but the model"):
        analyze(model, resolve_dataset("synthetic:8", 32), analyses="fourier", progress=False)


def test_compare_overwrite_replaces_an_earlier_comparison(tmp_path, capsys):
    analyze(tiny_vit(), DictImages(n=8), analyses="attention_distance", batch_size=8, progress=False,
            out=tmp_path / "run")
    command = ["compare", str(tmp_path / "run"), "--out", str(tmp_path / "cmp")]
    assert main(command) == 0
    (tmp_path / "cmp" / "attention_distance.csv").write_text("stale\n")
    assert main(command) == 2 and "pass --overwrite" in capsys.readouterr().err
    assert main([*command, "--overwrite"]) == 0
    assert (tmp_path / "cmp" / "attention_distance.csv").read_text(encoding="utf-8").startswith("metric,")


def test_compare_prints_the_summary_of_every_run_under_its_own_dataset(tmp_path, capsys):
    from vitprobe.data.resolve import resolve_dataset
    from vitprobe.results import load_runs

    for name, spec, seed in (("a", "synthetic:8", 0), ("b", "synthetic:12", 1)):
        analyze(tiny_vit(seed), resolve_dataset(spec, 32), analyses="attention_distance", batch_size=8,
                progress=False, out=tmp_path / name)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    runs = [run for name in ("a", "b") for run in load_runs(tmp_path / name)]
    labels = ["VisionTransformer (a)", "VisionTransformer (b)"]  # one label, told apart by their folders
    assert out.startswith(f"dataset synthetic:8 (n=8) ({labels[0]}) | synthetic:12 (n=12) ({labels[1]}) · ")
    rows = [line.split() for line in out.splitlines() if "attention_distance_px" in line]
    for row, run, label in zip(rows, runs, labels, strict=True):
        expected = run.summary().iloc[0]
        assert " ".join(row[:2]) == label and float(row[5]) == pytest.approx(expected["value"], rel=1e-3)
        assert row[-1] == "[1]" and int(row[-2]) == expected["n"]
    assert re.search(r"^\[1\] mean over 2 heads", out, re.M) and "\nse: std / sqrt(n) over the n images" in out
    assert out.rstrip().endswith(f"compared {', '.join(labels)}: {tmp_path / 'cmp'}/report.html")


@pytest.mark.parametrize("argv, said", [
    (["inspect", "--checkpoint", "a.pth", "--checkpoint", "b.pth"], "argument --checkpoint: given twice (a.pth, then b.pth)"),
    (["analyze", "--checkpoint", "a.pth", "--data=digits", "--data", "synthetic:8"],
     "argument --data: given twice (digits, then synthetic:8)"),
    (["train", "--method", "mae", "--data", "digits", "--epochs", "1", "--epochs", "2"],
     "argument --epochs: given twice (1, then 2)"),
])
def test_a_single_value_option_given_twice_is_a_usage_error(argv, said, capsys):
    """argparse would keep the last value without a word (inspect would read b.pth alone)."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"vitprobe {argv[0]}: error: {said}; give it once" in err and "no such" not in err


def test_main_puts_back_the_sigterm_handler_it_found(capsys):
    import signal

    def own_handler(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, own_handler)
    try:
        assert main(["analyses"]) == 0
        assert signal.getsignal(signal.SIGTERM) is own_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_output_to_a_reader_that_stopped_early_exits_141_without_a_traceback():
    """`vitprobe analyses | head -1`: the reader closes the pipe; exit 141 (as a shell's SIGPIPE), no second error."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "vitprobe", "analyses"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # before the command prints anything (it imports torch first)
    err = process.stderr.read()
    assert process.wait() == 141 and err == b""


def test_the_least_image_size_the_datasets_read_is_accepted(checkpoint, capsys):
    assert main(["analyze", "--checkpoint", checkpoint, "--data", "synthetic:8", "--analyses", "fourier",
                 "--img-size", "16", "--no-progress"]) == 0
    assert "image size 16" in capsys.readouterr().out


def test_no_progress_hides_the_bar_and_num_workers_reaches_the_loader(checkpoint, capsys, monkeypatch):
    import vitprobe.analysis

    argv = ["analyze", "--checkpoint", checkpoint, "--data", "synthetic:8", "--analyses", "fourier", "--batch-size", "4"]
    assert main(argv) == 0
    assert "analysing tiny" in capsys.readouterr().err
    assert main([*argv, "--no-progress"]) == 0
    assert "analysing" not in capsys.readouterr().err
    workers = []

    def stop_before_the_pass(plan, progress=True):
        workers.append(plan.loader.num_workers)
        raise ConfigError("stopped before the pass")

    monkeypatch.setattr(vitprobe.analysis, "run_analysis", stop_before_the_pass)
    assert main([*argv, "--num-workers", "2"]) == 2 and workers == [2]


def test_key_value_options_are_read_key_by_key():
    from vitprobe.commands._key_values import parse_analysis_params, parse_key_values

    assert parse_analysis_params(["knn.k=10", " knn.pooling=mean", "linear_probe.layers=[1, 2]",
                                  "knn.final_norm=true", "fourier.layers=null"]) == {
        "knn": {"k": 10, "pooling": "mean", "final_norm": True}, "linear_probe": {"layers": [1, 2]},
        "fourier": {"layers": None}}
    assert parse_key_values(["dino=a=b.pth", "mae=3"], "--model", "dino=x.pth", as_json=False) == {
        "dino": "a=b.pth", "mae": "3"}  # paths stay strings, split at the first =
    for items, flag, message in ((["knn.k=1", "knn.k =2"], "--param", "--param knn.k= is given twice"),
                                 (["knn.=3"], "--param", "name the analysis and its parameter"),
                                 ([".k=3"], "--param", "name the analysis and its parameter")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_analysis_params(items)
    with pytest.raises(ConfigError, match=re.escape("--model 'dino=' is not key=value; e.g. --model dino=x.pth")):
        parse_key_values(["dino="], "--model", "dino=x.pth", as_json=False)


def test_the_protocol_records_the_seed_the_device_and_the_loaders_batch_size():
    run = analyze(tiny_vit(), DataLoader(DictImages(), batch_size=5), analyses="fourier", device="auto",
                  progress=False, seed=3)
    protocol = run["fourier"].protocol
    device = "cuda" if torch.cuda.is_available() else "cpu"  # auto is recorded as what it chose
    assert (protocol["seed"], protocol["batch_size"], protocol["device"], protocol["world_size"]) == (3, 5, device, 1)


def test_an_analysis_named_twice_runs_once():
    plan = prepare_analysis(tiny_vit(), DictImages(), "fourier,knn,fourier")
    assert [analyzer.name for analyzer in plan.analyzers] == ["fourier", "knn"]


def test_a_collapse_its_training_warned_of_is_kept_in_the_checkpoint_record_alone(tmp_path):
    path = tmp_path / "final.safetensors"
    said = "epoch 12: contrastive collapse (feature std 0.001)"
    save_encoder(path, tiny_vit(), ArchSpec(patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=32),
                 {"objective": "mocov3", "warnings": [said]})
    with pytest.warns(UserWarning, match="contrastive collapse"):  # said when it loads
        run = analyze(str(path), DictImages(), analyses="fourier", progress=False)
    assert run["fourier"].protocol["checkpoint"]["training_warnings"] == [said]
    assert not [text for text in run.meta["analysis_warnings"] if "collapse" in text]  # not twice on its page


def test_error_and_warning_helpers_keep_one_line_each_said_once():
    from vitprobe.errors import abbreviate, check_whole

    worker = DataError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                       "  File \"x.py\", line 1\nvitprobe.errors.DataError: cannot read /data/3.jpg")
    assert str(worker) == "cannot read /data/3.jpg"
    with pytest.raises(ConfigError, match="batch size must be a whole number >= 1, got True"):
        check_whole(True, "batch size")
    assert abbreviate(["a", "b", "c", "d"], 3) == "a, b, c, ... (+1 more)" and abbreviate(["a", "b"], 3) == "a, b"
    assert abbreviate(["ok", "tab\there"]) == "ok, 'tab\\there'"  # a control character cannot break the line
    from vitprobe.errors import brief_reason, collected_warnings, errors_naming, warn_user

    assert brief_reason(OSError("No space left\n on device. Try again later.")) == "No space left on device"

    with collected_warnings() as said:
        for _ in range(2):
            warn_user("only 6 held-out images")
    assert said == ["only 6 held-out images"]
    with pytest.raises(CheckpointError) as named:  # a message naming the file already is not prefixed again
        with errors_naming("with --checkpoint a.pth", name="a.pth"):
            raise CheckpointError("checkpoint a.pth: not found")
    assert str(named.value) == "checkpoint a.pth: not found"


def test_a_matplotlib_backend_that_does_not_exist_is_one_line_before_any_work(tmp_path):
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "vitprobe", "models"], capture_output=True, text=True,
                          env={**os.environ, "MPLBACKEND": "nonsense"}, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("vitprobe: error: the environment variable MPLBACKEND='nonsense' names no matplotlib "
                           "backend; unset it or set it to agg\n")
